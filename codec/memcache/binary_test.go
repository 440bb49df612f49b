package memcache

import (
	"bytes"
	"testing"
)

func TestBinaryHeaderRoundTrip(t *testing.T) {
	h := BinaryHeader{Magic: BinaryRequest, Op: OpGATKQ, KeyLen: 0x0102, ExtLen: 4, DataType: 0,
		Status: 0x0304, BodyLen: 0x05060708, Opaque: 0x090a0b0c, CAS: 0x0d0e0f1011121314}
	b := AppendBinaryHeader([]byte{0xff}, h)
	want := []byte{0xff, 0x80, 0x24, 1, 2, 4, 0, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20}
	if !bytes.Equal(b, want) {
		t.Fatalf("encoded % x\nwant    % x", b, want)
	}
	got, ok := ParseBinaryHeader(b[1:])
	if !ok || got != h {
		t.Fatalf("parsed %+v %v, want %+v", got, ok, h)
	}
	if _, ok := ParseBinaryHeader(b[1:24]); ok {
		t.Fatal("23 bytes parsed as a header")
	}
	if h.PacketLen() != 24+0x05060708 {
		t.Fatal(h.PacketLen())
	}
}

func TestBinaryLoud(t *testing.T) {
	for q, l := range map[BinaryOp]BinaryOp{
		OpGetQ: OpGet, OpGetKQ: OpGetK, OpSetQ: OpSet, OpAddQ: OpAdd, OpReplaceQ: OpReplace,
		OpDeleteQ: OpDelete, OpIncrementQ: OpIncrement, OpDecrementQ: OpDecrement, OpQuitQ: OpQuit,
		OpFlushQ: OpFlush, OpAppendQ: OpAppend, OpPrependQ: OpPrepend, OpGATQ: OpGAT, OpGATKQ: OpGATK,
	} {
		if got, quiet := q.Loud(); got != l || !quiet {
			t.Errorf("%#x: %#x %v, want %#x", q, got, quiet, l)
		}
		if got, quiet := l.Loud(); got != l || quiet {
			t.Errorf("%#x is not quiet: %#x %v", l, got, quiet)
		}
	}
	for _, op := range []BinaryOp{OpNoop, OpVersion, OpStat, OpTouch, OpSASLAuth, 0x99} {
		if got, quiet := op.Loud(); got != op || quiet {
			t.Errorf("%#x: %#x %v", op, got, quiet)
		}
	}
}

// TestIsRequestBinary: over UDP a binary request (0x80) is a request; a
// binary response (0x81), like a text reply, never is (no reply loops).
func TestIsRequestBinary(t *testing.T) {
	for _, tc := range []struct {
		payload []byte
		want    bool
	}{
		{[]byte{BinaryRequest, 0, 0, 0}, true},
		{[]byte{BinaryResponse, 0, 0, 0}, false},
		{[]byte("get k\r\n"), true},
		{[]byte("VALUE k 0 1\r\n"), false},
		{[]byte("END\r\n"), false},
		{[]byte("1\r\n"), false},
		{[]byte{0x82}, false},
		{nil, false},
	} {
		if got := IsRequest(tc.payload); got != tc.want {
			t.Errorf("IsRequest(% x) = %v, want %v", tc.payload, got, tc.want)
		}
	}
}

func TestAppendBinaryError(t *testing.T) {
	req := BinaryHeader{Magic: BinaryRequest, Op: OpGet, Opaque: 7}
	b := AppendBinaryError(nil, req, StatusKeyNotFound)
	h, _ := ParseBinaryHeader(b)
	if h.Magic != BinaryResponse || h.Op != OpGet || h.Status != StatusKeyNotFound || h.Opaque != 7 || string(b[24:]) != "Not found" || int(h.BodyLen) != len(b)-24 {
		t.Fatalf("%+v %q", h, b[24:])
	}
}

func TestBinaryEncodeAllocs(t *testing.T) {
	buf := make([]byte, 0, 256)
	req := BinaryHeader{Magic: BinaryRequest, Op: OpGetK, Opaque: 7}
	key, val := []byte("key"), []byte("value")
	if n := testing.AllocsPerRun(100, func() {
		b := AppendBinaryResponse(buf[:0], req, StatusOK, 5, []byte{0, 0, 0, 0}, key, val)
		_, _ = ParseBinaryHeader(b)
		_ = AppendBinaryError(b, req, StatusKeyExists)
	}); n != 0 {
		t.Fatalf("%v allocs", n)
	}
}

// FuzzBinaryHeader: any 24 bytes parse, and encode back to themselves; a
// response built for any request parses back to what was asked.
func FuzzBinaryHeader(f *testing.F) {
	f.Add(AppendBinaryHeader(nil, BinaryHeader{Magic: BinaryRequest, Op: OpSet, KeyLen: 3, ExtLen: 8, BodyLen: 16, Opaque: 1}), []byte("key"), []byte("value"))
	f.Add(AppendBinaryHeader(nil, BinaryHeader{Magic: BinaryResponse, Op: OpGetK, Status: StatusKeyNotFound, KeyLen: 1, BodyLen: 1, CAS: 1 << 63}), []byte("k"), []byte(nil))
	f.Add([]byte{0x80}, []byte(nil), []byte(nil))
	f.Fuzz(func(t *testing.T, b, key, value []byte) {
		h, ok := ParseBinaryHeader(b)
		if ok != (len(b) >= BinaryHeaderLen) {
			t.Fatalf("ok %v with %d bytes", ok, len(b))
		}
		if ok {
			if re := AppendBinaryHeader(nil, h); !bytes.Equal(re, b[:BinaryHeaderLen]) {
				t.Fatalf("round trip % x -> % x", b[:BinaryHeaderLen], re)
			}
			_ = h.Consistent()
		}
		if len(key) > 0xffff {
			key = key[:0xffff]
		}
		r := AppendBinaryResponse(nil, h, StatusOK, h.CAS, nil, key, value)
		g, ok := ParseBinaryHeader(r)
		if !ok || g.Magic != BinaryResponse || g.Op != h.Op || g.Opaque != h.Opaque || g.CAS != h.CAS ||
			int(g.KeyLen) != len(key) || g.PacketLen() != len(r) || !g.Consistent() {
			t.Fatalf("response %+v for %+v, %d bytes", g, h, len(r))
		}
	})
}
