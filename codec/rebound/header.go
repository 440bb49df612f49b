package rebound

import (
	"encoding/binary"
	"strconv"

	"github.com/rebound-net/rebound/codec"
)

// Protocol constants of the protocol, version 1.
const (
	Magic     = 0xB5 // first byte of every message
	Version   = 0x01 // second byte of every message
	HeaderLen = 12   // bytes of the fixed header

	// DefaultPort is the UDP and TCP port a server listens on by default.
	DefaultPort = 7000
	// MaxPayload is the largest payload a header can announce (len is u16).
	MaxPayload = 0xFFFF
	// MaxKeyLen is the longest key a request may carry.
	MaxKeyLen = 250
)

// Op is the operation byte of a message.
type Op uint8

// The operations of the protocol.
const (
	OpPing Op = 0x01
	OpGet  Op = 0x02
	OpSet  Op = 0x03
	OpDel  Op = 0x04
)

// Known reports whether op is in the protocol's table.
func (o Op) Known() bool { return o >= OpPing && o <= OpDel }

func (o Op) String() string {
	switch o {
	case OpPing:
		return "PING"
	case OpGet:
		return "GET"
	case OpSet:
		return "SET"
	case OpDel:
		return "DEL"
	}
	return "OP(" + strconv.Itoa(int(o)) + ")"
}

// Flag bits of the header's flags byte.
const (
	FlagResponse  uint8 = 0x01
	FlagTruncated uint8 = 0x02
)

// Status is the result code of a reply.
type Status uint16

// The status codes of the protocol.
const (
	StatusOK         Status = 0
	StatusNotFound   Status = 1
	StatusBadRequest Status = 2
	StatusUnknownOp  Status = 3
	StatusTooLarge   Status = 4
	StatusBusy       Status = 5
)

func (s Status) String() string {
	switch s {
	case StatusOK:
		return "OK"
	case StatusNotFound:
		return "NOT_FOUND"
	case StatusBadRequest:
		return "BAD_REQUEST"
	case StatusUnknownOp:
		return "UNKNOWN_OP"
	case StatusTooLarge:
		return "TOO_LARGE"
	case StatusBusy:
		return "BUSY"
	}
	return "STATUS(" + strconv.Itoa(int(s)) + ")"
}

// Header is the 12-byte message header, decoded.
type Header struct {
	Op     Op
	Flags  uint8
	Seq    uint32
	Len    uint16
	Status Status
}

// PutHeader writes h (with magic and version) into b[:HeaderLen].
// b must be at least HeaderLen bytes long.
func PutHeader(b []byte, h Header) {
	_ = b[HeaderLen-1]
	b[0] = Magic
	b[1] = Version
	b[2] = byte(h.Op)
	b[3] = h.Flags
	binary.BigEndian.PutUint32(b[4:8], h.Seq)
	binary.BigEndian.PutUint16(b[8:10], h.Len)
	binary.BigEndian.PutUint16(b[10:12], uint16(h.Status))
}

// DecodeHeader reads the header at the start of b. It reports ok=false when
// b is not a Rebound message at all: shorter than HeaderLen, or a magic or
// version that differs (rule 2). It does not check the other fields.
func DecodeHeader(b []byte) (h Header, ok bool) {
	if len(b) < HeaderLen || b[0] != Magic || b[1] != Version {
		return Header{}, false
	}
	return Header{
		Op:     Op(b[2]),
		Flags:  b[3],
		Seq:    binary.BigEndian.Uint32(b[4:8]),
		Len:    binary.BigEndian.Uint16(b[8:10]),
		Status: Status(binary.BigEndian.Uint16(b[10:12])),
	}, true
}

// Message is a decoded message: its header and a view of its payload inside
// the buffer it was decoded from (no copy).
type Message struct {
	Header
	Payload []byte
}

// Check is the outcome of validating a request.
type Check uint8

const (
	// Valid: answer the request with its op's handler.
	Valid Check = iota
	// Reject: answer with a bare error header carrying Status.
	Reject
	// Drop: send nothing (not a Rebound message, or a response).
	Drop
)

// Request is the result of ParseDatagram and ParseStream: what to do with a
// message, and why.
type Request struct {
	Message
	Check  Check
	Status Status       // with Reject: the status of the error reply
	Reason codec.Reason // with Drop or Reject: why, for counters
}

// ParseDatagram validates one UDP payload as a request, following the rules
// of the protocol in order: not a message or a response is Drop; a size that
// is not 12+len, unknown flags or a non-zero status is Reject with
// BAD_REQUEST; an unknown op is Reject with UNKNOWN_OP. The op's payload is
// checked by the handler (ParseGet, ParseSet, ParseDel). It allocates nothing.
func ParseDatagram(b []byte) Request {
	h, ok := DecodeHeader(b)
	if !ok {
		if len(b) < HeaderLen {
			return Request{Check: Drop, Reason: codec.ReasonShortMessage}
		}
		return Request{Check: Drop, Reason: codec.ReasonNotRebound}
	}
	r := Request{Message: Message{Header: h}}
	if h.Flags&FlagResponse != 0 {
		r.Check, r.Reason = Drop, codec.ReasonResponse
		return r
	}
	if len(b) != HeaderLen+int(h.Len) {
		r.Check, r.Status, r.Reason = Reject, StatusBadRequest, codec.ReasonBadLength
		return r
	}
	r.Payload = b[HeaderLen:len(b):len(b)]
	return checkFields(r)
}

// checkFields applies rules 5 and the op table to a message whose framing is
// already known to be right.
func checkFields(r Request) Request {
	switch {
	case r.Flags != 0:
		// Requests carry no flags: RESPONSE is handled by the caller and
		// TRUNCATED only has a meaning in replies.
		r.Check, r.Status, r.Reason = Reject, StatusBadRequest, codec.ReasonBadFlags
	case r.Header.Status != 0:
		r.Check, r.Status, r.Reason = Reject, StatusBadRequest, codec.ReasonBadStatus
	case !r.Op.Known():
		r.Check, r.Status, r.Reason = Reject, StatusUnknownOp, codec.ReasonUnknownOp
	default:
		r.Check = Valid
	}
	return r
}

// ParseStream looks at the front of a TCP byte stream. It returns n > 0, the
// size of the first complete message, with the Request for it; or n == 0
// when more bytes are needed (need says how many in all). A bad magic or
// version yields Reject with BAD_REQUEST and Fatal set: the connection must be
// closed after the reply (rule 4).
func ParseStream(b []byte) (r Request, n int, need int, fatal bool) {
	if len(b) < HeaderLen {
		// A wrong first byte can be rejected without waiting for more.
		if (len(b) >= 1 && b[0] != Magic) || (len(b) >= 2 && b[1] != Version) {
			return Request{Check: Reject, Status: StatusBadRequest, Reason: codec.ReasonNotRebound}, len(b), 0, true
		}
		return Request{}, 0, HeaderLen, false
	}
	h, ok := DecodeHeader(b)
	if !ok {
		// The header's op and sequence are still echoed when readable.
		r.Op = Op(b[2])
		r.Seq = binary.BigEndian.Uint32(b[4:8])
		r.Check, r.Status, r.Reason = Reject, StatusBadRequest, codec.ReasonNotRebound
		return r, len(b), 0, true
	}
	total := HeaderLen + int(h.Len)
	if len(b) < total {
		return Request{}, 0, total, false
	}
	r = Request{Message: Message{Header: h, Payload: b[HeaderLen:total:total]}}
	if h.Flags&FlagResponse != 0 {
		r.Check, r.Reason = Drop, codec.ReasonResponse
		return r, total, 0, false
	}
	return checkFields(r), total, 0, false
}

// PutErrorReply writes the bare error header that answers req with status st
// into b[:HeaderLen] and returns HeaderLen.
func PutErrorReply(b []byte, req Header, st Status) int {
	PutHeader(b, Header{Op: req.Op, Flags: FlagResponse, Seq: req.Seq, Status: st})
	return HeaderLen
}

// PutTruncated writes the reply of rule 6 for a request whose answer does not
// fit: status OK, flag TRUNCATED, empty payload. It returns HeaderLen.
func PutTruncated(b []byte, req Header) int {
	PutHeader(b, Header{Op: req.Op, Flags: FlagResponse | FlagTruncated, Seq: req.Seq})
	return HeaderLen
}
