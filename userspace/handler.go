package userspace

import "github.com/rebound-net/rebound/codec/rebound"

// Message is one valid request handed to a Handler, and the room for its
// reply. The engine has already checked the header (magic, version, flags,
// status, length, known op); the op's payload is the handler's to check.
type Message struct {
	Op      rebound.Op
	Seq     uint32
	Payload []byte // the request payload: a view, valid only during Serve

	// Out is where the reply payload goes: len 0, cap the most this reply
	// may carry on this transport (UDP: the amplification bound and the
	// path MTU). Set Out = Out[:n] after writing n bytes. On the AF_XDP
	// path Out lies in the request's own frame and may overlap Payload:
	// read the request before writing the reply.
	Out []byte
	// Status of the reply (OK unless set). An error status sends a bare
	// header, whatever Out holds.
	Status rebound.Status
	// Truncated asks for the TRUNCATED flag: the answer does not fit Out.
	// The reply then carries status OK and an empty payload (rule 6).
	Truncated bool
}

// Handler answers a batch of requests at once, writing each reply into its
// Message. It must not keep references to request or reply memory after it
// returns, must not allocate per request, and must be safe to call from
// several workers at once (one batch per worker at a time). The same value
// serves every transport.
type Handler interface {
	Serve(batch []Message)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(batch []Message)

// Serve calls f(batch).
func (f HandlerFunc) Serve(batch []Message) { f(batch) }

// putReply writes the reply header for m at b[:HeaderLen] (the payload is
// already at b[HeaderLen:]) and returns the reply's size.
func putReply(b []byte, m *Message) int {
	h := rebound.Header{Op: m.Op, Flags: rebound.FlagResponse, Seq: m.Seq, Status: m.Status}
	switch {
	case m.Status != rebound.StatusOK:
		// Error replies are bare headers.
	case m.Truncated:
		h.Flags |= rebound.FlagTruncated
	default:
		h.Len = uint16(len(m.Out))
	}
	rebound.PutHeader(b, h)
	return rebound.HeaderLen + int(h.Len)
}
