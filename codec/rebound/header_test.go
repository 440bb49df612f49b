package rebound

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/rebound-net/rebound/codec"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The two examples of the protocol, byte for byte.
func TestProtocolExamples(t *testing.T) {
	t.Run("ping", func(t *testing.T) {
		wantReq := unhex(t, "b5 01 01 00 00 00 00 07 00 02 00 00 68 69")
		wantRep := unhex(t, "b5 01 01 01 00 00 00 07 00 02 00 00 68 69")
		buf := make([]byte, 64)
		n, err := EncodePing(buf, 7, []byte("hi"))
		if err != nil || !bytes.Equal(buf[:n], wantReq) {
			t.Fatalf("EncodePing = % x, %v; want % x", buf[:n], err, wantReq)
		}
		req := ParseDatagram(wantReq)
		if req.Check != Valid || req.Op != OpPing || req.Seq != 7 || string(req.Payload) != "hi" {
			t.Fatalf("ParseDatagram = %+v", req)
		}
		rep := make([]byte, HeaderLen+len(req.Payload))
		PutHeader(rep, Header{Op: req.Op, Flags: FlagResponse, Seq: req.Seq, Len: uint16(len(req.Payload))})
		copy(rep[HeaderLen:], req.Payload)
		if !bytes.Equal(rep, wantRep) {
			t.Fatalf("reply = % x, want % x", rep, wantRep)
		}
		m, err := DecodeReply(wantRep)
		if err != nil || m.Seq != 7 || string(m.Payload) != "hi" || m.Status != StatusOK {
			t.Fatalf("DecodeReply = %+v, %v", m, err)
		}
	})
	t.Run("get not found", func(t *testing.T) {
		wantReq := unhex(t, "b5 01 02 00 00 00 01 02 00 02 00 00 01 6b")
		wantRep := unhex(t, "b5 01 02 01 00 00 01 02 00 00 00 01")
		buf := make([]byte, 64)
		n, err := EncodeGet(buf, 0x0102, []byte("k"), 0)
		if err != nil || !bytes.Equal(buf[:n], wantReq) {
			t.Fatalf("EncodeGet = % x, %v; want % x", buf[:n], err, wantReq)
		}
		req := ParseDatagram(wantReq)
		if req.Check != Valid || req.Op != OpGet {
			t.Fatalf("ParseDatagram = %+v", req)
		}
		key, ok := ParseGet(req.Payload)
		if !ok || string(key) != "k" {
			t.Fatalf("ParseGet = %q, %v", key, ok)
		}
		rep := make([]byte, HeaderLen)
		PutErrorReply(rep, req.Header, StatusNotFound)
		if !bytes.Equal(rep, wantRep) {
			t.Fatalf("reply = % x, want % x", rep, wantRep)
		}
	})
}

// msg builds a raw message: header fields given, payload p, and a len field
// that may lie (lenField < 0 means "the truth").
func msg(magic, version byte, op Op, flags uint8, seq uint32, lenField int, status uint16, p []byte) []byte {
	if lenField < 0 {
		lenField = len(p)
	}
	b := make([]byte, HeaderLen+len(p))
	PutHeader(b, Header{Op: op, Flags: flags, Seq: seq, Len: uint16(lenField), Status: Status(status)})
	b[0], b[1] = magic, version
	copy(b[HeaderLen:], p)
	return b
}

// Every status rule of the protocol, for UDP datagrams.
func TestParseDatagramRules(t *testing.T) {
	cases := []struct {
		name   string
		in     []byte
		check  Check
		status Status
		reason codec.Reason
	}{
		{"ping empty", msg(Magic, Version, OpPing, 0, 1, -1, 0, nil), Valid, StatusOK, codec.ReasonNone},
		{"ping data", msg(Magic, Version, OpPing, 0, 1, -1, 0, []byte("abc")), Valid, StatusOK, codec.ReasonNone},
		{"get", msg(Magic, Version, OpGet, 0, 1, -1, 0, []byte{1, 'k'}), Valid, StatusOK, codec.ReasonNone},
		{"empty datagram", nil, Drop, 0, codec.ReasonShortMessage},
		{"11 bytes", msg(Magic, Version, OpPing, 0, 1, -1, 0, nil)[:11], Drop, 0, codec.ReasonShortMessage},
		{"rule 2 bad magic", msg(0xB4, Version, OpPing, 0, 1, -1, 0, nil), Drop, 0, codec.ReasonNotRebound},
		{"rule 2 bad version", msg(Magic, 2, OpPing, 0, 1, -1, 0, nil), Drop, 0, codec.ReasonNotRebound},
		{"rule 3 response flag", msg(Magic, Version, OpPing, FlagResponse, 1, -1, 0, nil), Drop, 0, codec.ReasonResponse},
		{"rule 3 response with bad len", msg(Magic, Version, OpPing, FlagResponse, 1, 9, 0, nil), Drop, 0, codec.ReasonResponse},
		{"rule 4 len too big", msg(Magic, Version, OpPing, 0, 1, 5, 0, []byte("abc")), Reject, StatusBadRequest, codec.ReasonBadLength},
		{"rule 4 len too small", msg(Magic, Version, OpPing, 0, 1, 1, 0, []byte("abc")), Reject, StatusBadRequest, codec.ReasonBadLength},
		{"rule 5 unknown flag", msg(Magic, Version, OpPing, 0x04, 1, -1, 0, nil), Reject, StatusBadRequest, codec.ReasonBadFlags},
		{"rule 5 truncated flag in request", msg(Magic, Version, OpPing, FlagTruncated, 1, -1, 0, nil), Reject, StatusBadRequest, codec.ReasonBadFlags},
		{"rule 5 non-zero status", msg(Magic, Version, OpPing, 0, 1, -1, 3, nil), Reject, StatusBadRequest, codec.ReasonBadStatus},
		{"unknown op 0", msg(Magic, Version, 0, 0, 1, -1, 0, nil), Reject, StatusUnknownOp, codec.ReasonUnknownOp},
		{"unknown op 5", msg(Magic, Version, 5, 0, 1, -1, 0, nil), Reject, StatusUnknownOp, codec.ReasonUnknownOp},
		{"bad length wins over unknown op", msg(Magic, Version, 9, 0, 1, 3, 0, nil), Reject, StatusBadRequest, codec.ReasonBadLength},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := ParseDatagram(c.in)
			if r.Check != c.check || r.Status != c.status || r.Reason != c.reason {
				t.Fatalf("got check=%d status=%v reason=%v; want check=%d status=%v reason=%v",
					r.Check, r.Status, r.Reason, c.check, c.status, c.reason)
			}
			if r.Check == Reject && r.Seq != 1 {
				t.Fatalf("reject must keep the sequence to echo it, got %d", r.Seq)
			}
		})
	}
}

func TestErrorReplyIsBareHeader(t *testing.T) {
	req := ParseDatagram(msg(Magic, Version, 9, 0, 0xDEADBEEF, -1, 0, []byte("xyz")))
	b := make([]byte, 64)
	n := PutErrorReply(b, req.Header, req.Status)
	want := []byte{Magic, Version, 9, FlagResponse, 0xDE, 0xAD, 0xBE, 0xEF, 0, 0, 0, byte(StatusUnknownOp)}
	if !bytes.Equal(b[:n], want) {
		t.Fatalf("error reply % x, want % x", b[:n], want)
	}
}

func TestParseStream(t *testing.T) {
	ping := msg(Magic, Version, OpPing, 0, 1, -1, 0, []byte("hello"))
	stream := append(append([]byte{}, ping...), msg(Magic, Version, OpDel, 0, 2, -1, 0, []byte{1, 'x'})...)

	// Every prefix shorter than the first message asks for more.
	for i := 0; i < len(ping); i++ {
		_, n, need, fatal := ParseStream(stream[:i])
		if n != 0 || fatal || need <= i {
			t.Fatalf("prefix %d: n=%d need=%d fatal=%v", i, n, need, fatal)
		}
	}
	r, n, _, fatal := ParseStream(stream)
	if n != len(ping) || fatal || r.Check != Valid || string(r.Payload) != "hello" {
		t.Fatalf("first message: %+v n=%d fatal=%v", r, n, fatal)
	}
	r, n, _, _ = ParseStream(stream[n:])
	if n != 14 || r.Op != OpDel || r.Seq != 2 || r.Check != Valid {
		t.Fatalf("second message: %+v n=%d", r, n)
	}

	cases := []struct {
		name   string
		in     []byte
		check  Check
		status Status
		fatal  bool
	}{
		{"bad magic closes", msg(0x00, Version, OpPing, 0, 1, -1, 0, nil), Reject, StatusBadRequest, true},
		{"bad version closes", msg(Magic, 9, OpPing, 0, 1, -1, 0, nil), Reject, StatusBadRequest, true},
		{"bad first byte, short", []byte{0x47, 0x45}, Reject, StatusBadRequest, true},
		{"response flag dropped", msg(Magic, Version, OpPing, FlagResponse, 1, -1, 0, nil), Drop, 0, false},
		{"unknown flags", msg(Magic, Version, OpPing, 0x80, 1, -1, 0, nil), Reject, StatusBadRequest, false},
		{"unknown op", msg(Magic, Version, 0x7F, 0, 1, -1, 0, []byte("z")), Reject, StatusUnknownOp, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, n, _, fatal := ParseStream(c.in)
			if n == 0 || r.Check != c.check || r.Status != c.status || fatal != c.fatal {
				t.Fatalf("got n=%d check=%d status=%v fatal=%v", n, r.Check, r.Status, fatal)
			}
		})
	}
}

func TestOps(t *testing.T) {
	long := bytes.Repeat([]byte("k"), 251)
	getCases := []struct {
		name string
		p    []byte
		key  string
		ok   bool
	}{
		{"key", []byte{3, 'a', 'b', 'c'}, "abc", true},
		{"key with padding", []byte{1, 'a', 0, 0, 0, 0}, "a", true},
		{"empty payload", nil, "", false},
		{"keylen 0", []byte{0, 'a'}, "", false},
		{"keylen past payload", []byte{5, 'a', 'b'}, "", false},
		{"keylen 251", append([]byte{251}, long...), "", false},
		{"keylen 250", append([]byte{250}, long[:250]...), string(long[:250]), true},
	}
	for _, c := range getCases {
		key, ok := ParseGet(c.p)
		if ok != c.ok || string(key) != c.key {
			t.Errorf("ParseGet %s = %q,%v; want %q,%v", c.name, key, ok, c.key, c.ok)
		}
	}
	if _, ok := ParseDel([]byte{1, 'a', 'x'}); ok {
		t.Error("ParseDel accepted bytes after the key")
	}
	if k, ok := ParseDel([]byte{2, 'a', 'b'}); !ok || string(k) != "ab" {
		t.Errorf("ParseDel = %q,%v", k, ok)
	}

	buf := make([]byte, 512)
	n, err := EncodeSet(buf, 9, []byte("key"), 300, []byte("value"))
	if err != nil {
		t.Fatal(err)
	}
	r := ParseDatagram(buf[:n])
	key, ttl, val, ok := ParseSet(r.Payload)
	if r.Check != Valid || !ok || string(key) != "key" || ttl != 300 || string(val) != "value" {
		t.Fatalf("SET round trip: %+v %q %d %q %v", r, key, ttl, val, ok)
	}
	n, _ = EncodeSet(buf, 9, []byte("key"), 0, nil)
	if _, _, val, ok := ParseSet(buf[HeaderLen:n]); !ok || len(val) != 0 {
		t.Fatalf("SET with empty value: %q %v", val, ok)
	}
	for _, bad := range [][]byte{nil, {1, 0, 0, 0}, {0, 0, 0, 0, 0, 'a'}, {4, 0, 0, 0, 0, 'a'}} {
		if _, _, _, ok := ParseSet(bad); ok {
			t.Errorf("ParseSet(% x) accepted", bad)
		}
	}
	if _, err := EncodeGet(buf, 1, nil, 0); err != ErrKeyLength {
		t.Errorf("EncodeGet empty key: %v", err)
	}
	if _, err := EncodeDel(buf, 1, long); err != ErrKeyLength {
		t.Errorf("EncodeDel long key: %v", err)
	}
	if _, err := EncodePing(buf[:12], 1, []byte("x")); err != ErrShortBuffer {
		t.Errorf("EncodePing short buffer: %v", err)
	}
	if _, err := EncodePing(make([]byte, 70000), 1, make([]byte, 65536)); err != ErrTooLong {
		t.Errorf("EncodePing 65536 bytes: %v", err)
	}
	n, _ = EncodeGet(buf, 1, []byte("k"), 10)
	if n != HeaderLen+12 {
		t.Errorf("padded GET size %d", n)
	}
}

func TestDecodeReplyErrors(t *testing.T) {
	for _, b := range [][]byte{
		nil,
		msg(Magic, Version, OpPing, 0, 1, -1, 0, nil),           // no RESPONSE flag
		msg(Magic, Version, OpPing, FlagResponse, 1, 4, 0, nil), // len lies
		msg(Magic, 7, OpPing, FlagResponse, 1, -1, 0, nil),      // version
	} {
		if _, err := DecodeReply(b); err == nil {
			t.Errorf("DecodeReply(% x) accepted", b)
		}
	}
}

func TestReplyLimit(t *testing.T) {
	cases := []struct{ req, a, path, want int }{
		{20, 4, 1472, 80},
		{400, 4, 1472, 1472},
		{20, 0, 1472, 1472},
		{20, 1, 1472, 20},
	}
	for _, c := range cases {
		if got := codec.ReplyLimit(c.req, c.a, c.path); got != c.want {
			t.Errorf("codec.ReplyLimit(%d,%d,%d) = %d, want %d", c.req, c.a, c.path, got, c.want)
		}
	}
	b := make([]byte, HeaderLen)
	PutTruncated(b, Header{Op: OpGet, Seq: 5})
	h, _ := DecodeHeader(b)
	if h.Flags != FlagResponse|FlagTruncated || h.Status != StatusOK || h.Len != 0 || h.Seq != 5 {
		t.Fatalf("truncated reply %+v", h)
	}
	if codec.UDPPayloadMax(1500, false) != 1472 || codec.UDPPayloadMax(1500, true) != 1452 {
		t.Fatal("codec.UDPPayloadMax does not match the protocol's limits")
	}
}

func TestStrings(t *testing.T) {
	if OpGet.String() != "GET" || Op(9).String() != "OP(9)" || StatusBusy.String() != "BUSY" ||
		Status(77).String() != "STATUS(77)" || codec.ReasonFragment.String() != "fragment" || codec.Reason(200).String() != "unknown" {
		t.Fatal("names")
	}
	for r := codec.Reason(0); r < codec.NumReasons; r++ {
		if r.String() == "" {
			t.Fatalf("reason %d has no name", r)
		}
	}
}
