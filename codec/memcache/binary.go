package memcache

import "encoding/binary"

// memcached's binary protocol (deprecated by memcached since 1.6, still
// spoken by many clients): every packet, request or response, is a 24-byte
// header followed by its body, in order: extras (ExtLen bytes), key
// (KeyLen bytes), value (the rest of BodyLen). Integers are big-endian.
//
//	byte  0     magic: 0x80 request, 0x81 response
//	byte  1     opcode
//	bytes 2-3   key length
//	byte  4     extras length
//	byte  5     data type (0: raw bytes)
//	bytes 6-7   request: vbucket id (ignored); response: status
//	bytes 8-11  total body length (extras + key + value)
//	bytes 12-15 opaque: copied from request to response
//	bytes 16-23 CAS

// BinaryHeaderLen is the size of a binary packet's header.
const BinaryHeaderLen = 24

// Magic bytes.
const (
	BinaryRequest  = 0x80 // PROTOCOL_BINARY_REQ
	BinaryResponse = 0x81 // PROTOCOL_BINARY_RES
)

// BinaryOp is a binary protocol opcode.
type BinaryOp uint8

// The opcodes memcached 1.6 knows (PROTOCOL_BINARY_CMD_*).
const (
	OpGet           BinaryOp = 0x00
	OpSet           BinaryOp = 0x01
	OpAdd           BinaryOp = 0x02
	OpReplace       BinaryOp = 0x03
	OpDelete        BinaryOp = 0x04
	OpIncrement     BinaryOp = 0x05
	OpDecrement     BinaryOp = 0x06
	OpQuit          BinaryOp = 0x07
	OpFlush         BinaryOp = 0x08
	OpGetQ          BinaryOp = 0x09
	OpNoop          BinaryOp = 0x0a
	OpVersion       BinaryOp = 0x0b
	OpGetK          BinaryOp = 0x0c
	OpGetKQ         BinaryOp = 0x0d
	OpAppend        BinaryOp = 0x0e
	OpPrepend       BinaryOp = 0x0f
	OpStat          BinaryOp = 0x10
	OpSetQ          BinaryOp = 0x11
	OpAddQ          BinaryOp = 0x12
	OpReplaceQ      BinaryOp = 0x13
	OpDeleteQ       BinaryOp = 0x14
	OpIncrementQ    BinaryOp = 0x15
	OpDecrementQ    BinaryOp = 0x16
	OpQuitQ         BinaryOp = 0x17
	OpFlushQ        BinaryOp = 0x18
	OpAppendQ       BinaryOp = 0x19
	OpPrependQ      BinaryOp = 0x1a
	OpVerbosity     BinaryOp = 0x1b // known to the protocol; memcached 1.6 answers Unknown command
	OpTouch         BinaryOp = 0x1c
	OpGAT           BinaryOp = 0x1d
	OpGATQ          BinaryOp = 0x1e
	OpSASLListMechs BinaryOp = 0x20
	OpSASLAuth      BinaryOp = 0x21
	OpSASLStep      BinaryOp = 0x22
	OpGATK          BinaryOp = 0x23
	OpGATKQ         BinaryOp = 0x24
)

// quietOf maps each quiet opcode to its loud form.
var quietOf = [256]BinaryOp{
	OpSetQ: OpSet, OpAddQ: OpAdd, OpReplaceQ: OpReplace, OpDeleteQ: OpDelete,
	OpIncrementQ: OpIncrement, OpDecrementQ: OpDecrement, OpQuitQ: OpQuit,
	OpFlushQ: OpFlush, OpAppendQ: OpAppend, OpPrependQ: OpPrepend,
	OpGetQ: OpGet, OpGetKQ: OpGetK, OpGATQ: OpGAT, OpGATKQ: OpGATK,
}

// Loud returns the loud form of a quiet opcode and true, or op and false
// when op is not quiet. A quiet command answers only what its loud form
// answers on failure (and a get's hit); success is silent.
func (op BinaryOp) Loud() (BinaryOp, bool) {
	if l := quietOf[op]; l != 0 || op == OpGetQ { // OpGet is 0
		return l, true
	}
	return op, false
}

// BinaryStatus is a response's status (PROTOCOL_BINARY_RESPONSE_*).
type BinaryStatus uint16

// Statuses memcached 1.6 sends.
const (
	StatusOK             BinaryStatus = 0x00
	StatusKeyNotFound    BinaryStatus = 0x01
	StatusKeyExists      BinaryStatus = 0x02
	StatusTooLarge       BinaryStatus = 0x03
	StatusInvalid        BinaryStatus = 0x04
	StatusNotStored      BinaryStatus = 0x05
	StatusNonNumeric     BinaryStatus = 0x06
	StatusAuthError      BinaryStatus = 0x20
	StatusAuthContinue   BinaryStatus = 0x21
	StatusUnknownCommand BinaryStatus = 0x81
	StatusOutOfMemory    BinaryStatus = 0x82
)

// Message is the body memcached sends with an error status.
func (s BinaryStatus) Message() string {
	switch s {
	case StatusOutOfMemory:
		return "Out of memory"
	case StatusUnknownCommand:
		return "Unknown command"
	case StatusKeyNotFound:
		return "Not found"
	case StatusInvalid:
		return "Invalid arguments"
	case StatusKeyExists:
		return "Data exists for key."
	case StatusTooLarge:
		return "Too large."
	case StatusNonNumeric:
		return "Non-numeric server-side value for incr or decr"
	case StatusNotStored:
		return "Not stored."
	case StatusAuthError:
		return "Auth failure."
	}
	return ""
}

// BinaryHeader is a binary packet's header. Status is the vbucket id in a
// request.
type BinaryHeader struct {
	Magic    uint8
	Op       BinaryOp
	KeyLen   uint16
	ExtLen   uint8
	DataType uint8
	Status   BinaryStatus
	BodyLen  uint32
	Opaque   uint32
	CAS      uint64
}

// ParseBinaryHeader reads the header at the start of b; ok is false when b
// is shorter than a header. The magic is not checked.
func ParseBinaryHeader(b []byte) (h BinaryHeader, ok bool) {
	if len(b) < BinaryHeaderLen {
		return h, false
	}
	return BinaryHeader{
		Magic:    b[0],
		Op:       BinaryOp(b[1]),
		KeyLen:   binary.BigEndian.Uint16(b[2:]),
		ExtLen:   b[4],
		DataType: b[5],
		Status:   BinaryStatus(binary.BigEndian.Uint16(b[6:])),
		BodyLen:  binary.BigEndian.Uint32(b[8:]),
		Opaque:   binary.BigEndian.Uint32(b[12:]),
		CAS:      binary.BigEndian.Uint64(b[16:]),
	}, true
}

// PacketLen is the size of the whole packet (header and body).
func (h BinaryHeader) PacketLen() int { return BinaryHeaderLen + int(h.BodyLen) }

// Consistent reports whether the extras and key fit in the body, as
// memcached checks before anything else.
func (h BinaryHeader) Consistent() bool {
	return uint32(h.KeyLen)+uint32(h.ExtLen) <= h.BodyLen
}

// AppendBinaryHeader appends h to dst.
func AppendBinaryHeader(dst []byte, h BinaryHeader) []byte {
	var b [BinaryHeaderLen]byte
	PutBinaryHeader(b[:], h)
	return append(dst, b[:]...)
}

// PutBinaryHeader writes h into b[:BinaryHeaderLen] (which must be that
// long), in place: a response whose body length is only known once the
// body is written gets its header written last.
func PutBinaryHeader(b []byte, h BinaryHeader) {
	_ = b[BinaryHeaderLen-1]
	b[0] = h.Magic
	b[1] = byte(h.Op)
	binary.BigEndian.PutUint16(b[2:], h.KeyLen)
	b[4] = h.ExtLen
	b[5] = h.DataType
	binary.BigEndian.PutUint16(b[6:], uint16(h.Status))
	binary.BigEndian.PutUint32(b[8:], h.BodyLen)
	binary.BigEndian.PutUint32(b[12:], h.Opaque)
	binary.BigEndian.PutUint64(b[16:], h.CAS)
}

// AppendBinaryResponse appends a response to req with status s, extras,
// key and value, and CAS cas.
func AppendBinaryResponse(dst []byte, req BinaryHeader, s BinaryStatus, cas uint64, extras, key, value []byte) []byte {
	dst = AppendBinaryHeader(dst, BinaryHeader{
		Magic: BinaryResponse, Op: req.Op, KeyLen: uint16(len(key)), ExtLen: uint8(len(extras)),
		Status: s, BodyLen: uint32(len(extras) + len(key) + len(value)), Opaque: req.Opaque, CAS: cas,
	})
	dst = append(dst, extras...)
	dst = append(dst, key...)
	return append(dst, value...)
}

// AppendBinaryError appends memcached's error response for s: the status,
// its message as the body, CAS 0.
func AppendBinaryError(dst []byte, req BinaryHeader, s BinaryStatus) []byte {
	msg := s.Message()
	dst = AppendBinaryHeader(dst, BinaryHeader{
		Magic: BinaryResponse, Op: req.Op, Status: s, BodyLen: uint32(len(msg)), Opaque: req.Opaque,
	})
	return append(dst, msg...)
}
