package handler

import (
	"net/netip"

	"github.com/rebound-net/rebound/codec/rebound"
)

// Message is one valid Rebound-protocol request handed to a Handler, and
// the room for its reply. The engine has already checked the header
// (magic, version, flags, status, length, known op); the op's payload is
// the handler's to check.
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
	// The reply then carries status OK and an empty payload.
	Truncated bool
}

// Handler answers a batch of Rebound-protocol requests at once, writing
// each reply into its Message. It must not keep references to request or
// reply memory after it returns, must not allocate per request, and must
// be safe to call from several workers at once (one batch per worker at a
// time). The same value serves every transport.
type Handler interface {
	Serve(batch []Message)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(batch []Message)

// Serve calls f(batch).
func (f HandlerFunc) Serve(batch []Message) { f(batch) }

// Datagram answers a protocol of your own over UDP (the AF_XDP fast path
// and UDP sockets): one request per datagram, at most one reply datagram.
//
// ServeDatagram answers req, the request's UDP payload, from src: it
// writes the reply into out (len 0, cap the most the reply may carry: the
// amplification bound and the path MTU) and returns out[:n], or nil for
// no reply. A reply past cap(out) is dropped and counted, never sent. On
// the AF_XDP and socket paths out lies in the request's own buffer and
// overlaps req: read the request before writing the reply. The same rules
// as Handler hold: no references kept after return, no allocation per
// request, safe for concurrent use by several workers.
type Datagram interface {
	ServeDatagram(req []byte, src netip.Addr, out []byte) []byte
}

// DatagramFunc adapts a function to Datagram.
type DatagramFunc func(req []byte, src netip.Addr, out []byte) []byte

// ServeDatagram calls f.
func (f DatagramFunc) ServeDatagram(req []byte, src netip.Addr, out []byte) []byte {
	return f(req, src, out)
}

// Stream serves one TCP connection of a protocol of your own. Each call
// hands it what has arrived and not yet been consumed; it consumes whole
// requests from the front of in, appends their replies to out and returns
// the grown out, in request order. need > 0 says the next request is
// incomplete and at least need bytes from in[consumed:] must be buffered
// first (the engine grows its buffer up to Protocol.MaxRequest); close
// asks the engine to write out and close the connection. A Stream belongs
// to one connection and is never called concurrently.
type Stream interface {
	ServeStream(in, out []byte) (consumed int, reply []byte, need int, close bool)
}

// Protocol is a protocol of your own that the engine serves on a port of
// its own, next to the built-in ones: Datagram over UDP (steered into the
// AF_XDP sockets by port in xdp mode, UDP sockets otherwise), NewStream
// over TCP. Either may be nil.
type Protocol struct {
	// Name labels the protocol's metrics ("transport" label) and logs.
	Name string
	// Datagram answers UDP requests; nil: no UDP.
	Datagram Datagram
	// NewStream returns the state of a new TCP connection; nil: no TCP.
	NewStream func() Stream
	// MaxRequest bounds one request on TCP, in bytes (default 64 KiB): a
	// longer one closes the connection.
	MaxRequest int
}
