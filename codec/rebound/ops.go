package rebound

import (
	"encoding/binary"
	"errors"
)

// ParseGet reads a GET payload: keylen u8, key, then optional padding that is
// ignored. ok is false when keylen is 0, above MaxKeyLen or runs past p.
func ParseGet(p []byte) (key []byte, ok bool) {
	if len(p) < 1 {
		return nil, false
	}
	kl := int(p[0])
	if kl == 0 || kl > MaxKeyLen || 1+kl > len(p) {
		return nil, false
	}
	return p[1 : 1+kl : 1+kl], true
}

// ParseDel reads a DEL payload: keylen u8 and key, nothing after it.
func ParseDel(p []byte) (key []byte, ok bool) {
	key, ok = ParseGet(p)
	if !ok || 1+len(key) != len(p) {
		return nil, false
	}
	return key, true
}

// setFixed is the size of a SET payload before its key: keylen u8, ttl u32.
const setFixed = 5

// ParseSet reads a SET payload: keylen u8, ttl u32 (seconds, 0 = none), key,
// value (the rest, possibly empty).
func ParseSet(p []byte) (key []byte, ttl uint32, value []byte, ok bool) {
	if len(p) < setFixed {
		return nil, 0, nil, false
	}
	kl := int(p[0])
	if kl == 0 || kl > MaxKeyLen || setFixed+kl > len(p) {
		return nil, 0, nil, false
	}
	ttl = binary.BigEndian.Uint32(p[1:5])
	return p[setFixed : setFixed+kl : setFixed+kl], ttl, p[setFixed+kl:], true
}

// Errors of the encoders. They are returned by client-side code only; the
// server's hot path never builds an error.
var (
	ErrShortBuffer = errors.New("rebound: buffer too small for message")
	ErrKeyLength   = errors.New("rebound: key must be 1 to 250 bytes")
	ErrTooLong     = errors.New("rebound: payload longer than 65535 bytes")
)

func checkKey(key []byte) error {
	if len(key) == 0 || len(key) > MaxKeyLen {
		return ErrKeyLength
	}
	return nil
}

// begin checks that a message with a payload of n bytes fits b and writes its
// request header.
func begin(b []byte, op Op, seq uint32, n int) error {
	if n > MaxPayload {
		return ErrTooLong
	}
	if len(b) < HeaderLen+n {
		return ErrShortBuffer
	}
	PutHeader(b, Header{Op: op, Seq: seq, Len: uint16(n)})
	return nil
}

// EncodePing writes a PING request carrying data into b and returns its size.
func EncodePing(b []byte, seq uint32, data []byte) (int, error) {
	if err := begin(b, OpPing, seq, len(data)); err != nil {
		return 0, err
	}
	return HeaderLen + copy(b[HeaderLen:], data), nil
}

// EncodeGet writes a GET request for key into b, followed by pad zero bytes
// of padding (rule 6: padding raises the reply size a UDP server may send).
func EncodeGet(b []byte, seq uint32, key []byte, pad int) (int, error) {
	if err := checkKey(key); err != nil {
		return 0, err
	}
	n := 1 + len(key) + max(pad, 0)
	if err := begin(b, OpGet, seq, n); err != nil {
		return 0, err
	}
	p := b[HeaderLen : HeaderLen+n]
	p[0] = byte(len(key))
	c := copy(p[1:], key)
	clear(p[1+c:])
	return HeaderLen + n, nil
}

// EncodeSet writes a SET request into b.
func EncodeSet(b []byte, seq uint32, key []byte, ttl uint32, value []byte) (int, error) {
	if err := checkKey(key); err != nil {
		return 0, err
	}
	n := setFixed + len(key) + len(value)
	if err := begin(b, OpSet, seq, n); err != nil {
		return 0, err
	}
	p := b[HeaderLen : HeaderLen+n]
	p[0] = byte(len(key))
	binary.BigEndian.PutUint32(p[1:5], ttl)
	copy(p[setFixed+copy(p[setFixed:], key):], value)
	return HeaderLen + n, nil
}

// EncodeDel writes a DEL request for key into b.
func EncodeDel(b []byte, seq uint32, key []byte) (int, error) {
	if err := checkKey(key); err != nil {
		return 0, err
	}
	n := 1 + len(key)
	if err := begin(b, OpDel, seq, n); err != nil {
		return 0, err
	}
	b[HeaderLen] = byte(len(key))
	copy(b[HeaderLen+1:], key)
	return HeaderLen + n, nil
}

// DecodeReply checks that b is exactly one reply (a Rebound message with the
// RESPONSE flag and a size of 12+len) and returns it with a view of its
// payload. It is the client-side twin of ParseDatagram.
func DecodeReply(b []byte) (Message, error) {
	h, ok := DecodeHeader(b)
	if !ok {
		return Message{}, errNotReply
	}
	if h.Flags&FlagResponse == 0 {
		return Message{}, errNoResponseFlag
	}
	if len(b) != HeaderLen+int(h.Len) {
		return Message{}, errReplyLength
	}
	return Message{Header: h, Payload: b[HeaderLen:]}, nil
}

var (
	errNotReply       = errors.New("rebound: not a Rebound v1 message")
	errNoResponseFlag = errors.New("rebound: message lacks the RESPONSE flag")
	errReplyLength    = errors.New("rebound: reply size does not match its len field")
)
