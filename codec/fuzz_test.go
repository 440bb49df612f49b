package codec_test

import (
	"bytes"
	"testing"

	"github.com/rebound-net/rebound/codec"
	"github.com/rebound-net/rebound/codec/rebound"
	"github.com/rebound-net/rebound/internal/testutil"
)

func FuzzParseDatagram(f *testing.F) {
	f.Add(pingMsg(7, 2))
	f.Add([]byte{0xb5, 0x01, 0x02, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x02, 0x00, 0x00, 0x01, 0x6b})
	f.Add([]byte{0xb5, 0x01, 0x03, 0x00, 0, 0, 0, 1, 0, 8, 0, 0, 2, 0, 0, 0, 9, 'k', 'y', 'v'})
	f.Add([]byte{0xb5, 0x01, 0x04, 0x01, 0, 0, 0, 1, 0, 2, 0, 0, 1, 'k'})
	f.Fuzz(func(t *testing.T, b []byte) {
		r := rebound.ParseDatagram(b)
		switch r.Check {
		case rebound.Valid:
			if len(b) != rebound.HeaderLen+int(r.Len) || r.Flags != 0 || r.Header.Status != 0 || !r.Op.Known() {
				t.Fatalf("accepted a message that breaks the page: %+v", r)
			}
			switch r.Op {
			case rebound.OpGet:
				if k, ok := rebound.ParseGet(r.Payload); ok && (len(k) == 0 || len(k) > rebound.MaxKeyLen) {
					t.Fatalf("bad key %q", k)
				}
			case rebound.OpSet:
				if k, _, v, ok := rebound.ParseSet(r.Payload); ok && 5+len(k)+len(v) != len(r.Payload) {
					t.Fatalf("set lost bytes: key %d value %d payload %d", len(k), len(v), len(r.Payload))
				}
			case rebound.OpDel:
				if k, ok := rebound.ParseDel(r.Payload); ok && 1+len(k) != len(r.Payload) {
					t.Fatal("del with trailing bytes")
				}
			}
		case rebound.Reject:
			if r.Status == rebound.StatusOK {
				t.Fatal("reject with status OK")
			}
			var out [rebound.HeaderLen]byte
			rebound.PutErrorReply(out[:], r.Header, r.Status)
			if m, err := rebound.DecodeReply(out[:]); err != nil || m.Len != 0 || m.Seq != r.Seq {
				t.Fatalf("error reply does not decode: %v", err)
			}
		}
		// The stream parser must agree on complete messages.
		sr, n, _, _ := rebound.ParseStream(b)
		if n == len(b) && r.Check == rebound.Valid && (sr.Check != rebound.Valid || sr.Seq != r.Seq) {
			t.Fatalf("stream and datagram parsers disagree: %+v vs %+v", sr, r)
		}
	})
}

func FuzzParseFrame(f *testing.F) {
	for _, p := range []testutil.Packet{
		{Payload: pingMsg(1, 4)}, {IPv6: true, Payload: pingMsg(1, 4)},
		{VLAN: 9, IPOptions: true, Payload: pingMsg(1, 4)}, {MoreFragments: true, Payload: pingMsg(1, 4)},
	} {
		b, err := testutil.BuildFrame(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, uint16(20))
	}
	f.Fuzz(func(t *testing.T, frame []byte, n uint16) {
		fr, why := codec.ParseFrame(frame)
		if why != codec.ReasonNone {
			return
		}
		if fr.Payload+fr.PayloadLen > len(frame) || fr.L3 >= fr.L4 || fr.L4 >= fr.Payload {
			t.Fatalf("frame %+v outside %d bytes", fr, len(frame))
		}
		// Reply within a buffer with a guard zone after it: nothing may be
		// written past the capacity we hand over.
		const guard = 64
		capacity := len(frame) + int(n%512)
		buf := make([]byte, capacity+guard)
		copy(buf, frame)
		for i := capacity; i < len(buf); i++ {
			buf[i] = 0xEE
		}
		size := int(n) % 1600
		got := fr.Reply(buf[:capacity], size)
		if got != 0 && got != fr.Payload+size {
			t.Fatalf("Reply returned %d for payload %d", got, size)
		}
		if got == 0 && fr.Payload+size <= capacity && size < 60000 {
			t.Fatalf("Reply refused %d bytes that fit %d", size, capacity)
		}
		if !bytes.Equal(buf[capacity:], bytes.Repeat([]byte{0xEE}, guard)) {
			t.Fatal("Reply wrote past the buffer's capacity")
		}
		if got != 0 {
			// The reply parses as a frame with the new payload length.
			back, why := codec.ParseFrame(buf[:got])
			if why != codec.ReasonNone || back.PayloadLen != size {
				t.Fatalf("reply does not parse: %v %+v", why, back)
			}
		}
	})
}
