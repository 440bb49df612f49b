package memcache

import (
	"bytes"
	"testing"
)

// drive parses every command in in and checks the invariants of Parse.
func drive(t *testing.T, in []byte) {
	var c Command
	for p := in; len(p) > 0; {
		st := Parse(p, 1000, &c)
		switch st {
		case NeedMore:
			if c.Need != 0 && c.Need <= len(p) {
				t.Fatalf("need %d with %d bytes", c.Need, len(p))
			}
			return
		case Complete, Invalid:
			if c.Consumed <= 0 || c.Consumed > len(p) {
				t.Fatalf("consumed %d of %d (%v %v)", c.Consumed, len(p), st, c.Err)
			}
			if st == Invalid && c.Err == ErrNone {
				t.Fatal("invalid without error")
			}
			if st == Complete && c.Kind.IsStorage() {
				checkStorageRoundTrip(t, &c)
			}
			for ks := c.Keys(); st == Complete; {
				k, ok := ks.Next()
				if !ok {
					break
				}
				if len(k) == 0 || len(k) > MaxKeyLen || bytes.IndexByte(k, ' ') >= 0 {
					t.Fatalf("bad key %q", k)
				}
			}
			for r := c.Meta.Returns(); ; {
				if _, _, ok := r.Next(); !ok {
					break
				}
			}
			p = p[c.Consumed:]
			if c.Swallow > 0 {
				p = p[min(c.Swallow, len(p)):]
			}
		default:
			t.Fatalf("status %d", st)
		}
	}
}

// checkStorageRoundTrip rebuilds a storage command from its fields and
// parses it again.
func checkStorageRoundTrip(t *testing.T, c *Command) {
	b := append([]byte(c.Kind.String()), ' ')
	b = append(b, c.Key...)
	b = append(b, ' ')
	b = AppendUint(b, uint64(c.Flags))
	b = append(b, ' ')
	b = AppendInt(b, int64(c.Exptime))
	b = append(b, ' ')
	b = AppendUint(b, uint64(len(c.Data)))
	if c.Kind == KindCas {
		b = AppendUint(append(b, ' '), c.CAS)
	}
	if c.NoReply {
		b = append(b, " noreply"...)
	}
	b = append(b, "\r\n"...)
	b = AppendData(b, c.Data)
	var d Command
	if Parse(b, 1000, &d) != Complete || d.Consumed != len(b) || d.Kind != c.Kind || !bytes.Equal(d.Key, c.Key) ||
		d.Flags != c.Flags || d.Exptime != c.Exptime || d.CAS != c.CAS || !bytes.Equal(d.Data, c.Data) || d.NoReply != c.NoReply {
		t.Fatalf("round trip of %q: %+v", b, d)
	}
}

func FuzzText(f *testing.F) {
	for _, s := range []string{
		"get a b c\r\n", "gets a\r\n", "gat 10 a b\r\n", "set k 1 2 3\r\nabc\r\n", "cas k 0 0 1 99 noreply\r\nx\r\n",
		"append k 0 0 2\r\nab\r\nprepend k 0 0 0\r\n\r\n", "delete k 0 noreply\r\n", "incr k 18446744073709551615\r\n",
		"decr k -0\r\n", "touch k -1\r\n", "flush_all 10 noreply\r\n", "version\r\nverbosity 1\r\nquit\r\n",
		"set k 0 0 2000\r\n", "set k 0 0 3\r\nabcde\r\n", "bogus\r\n", "\r\n", "set k 4294967296 4000000000 1\r\nx\r\n",
		"stats\r\nstats items\r\n", "get " + string(bytes.Repeat([]byte("k"), 251)) + "\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) { drive(t, in) })
}

func FuzzMeta(f *testing.F) {
	for _, s := range []string{
		"mg a v f t c k s h l O123 q\r\n", "mg a T30 v\r\n", "mg YQ== b k v\r\n", "ms k 2 T0 F5 c k O9 MA\r\nhi\r\n",
		"ms k 2 C12 I q\r\nhi\r\n", "md k q C3 O1 k\r\n", "ma k N0 J13 D2 MD v t c\r\n", "mn\r\n", "mg a v v\r\n",
		"ma k D-1\r\n", "ms k S2\r\nxx\r\n", "mg a v v v v v v v v v v v v v v v v v v v v\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		drive(t, in)
		var c Command
		if Parse(in, 0, &c) == Complete && c.Kind >= KindMetaGet {
			out := AppendMetaValue(nil, len(c.Data))
			for r := c.Meta.Returns(); ; {
				f, tok, ok := r.Next()
				if !ok {
					break
				}
				if f != tok[0] {
					t.Fatalf("flag %c of token %q", f, tok)
				}
				out = AppendMetaFlagBytes(out, 0, tok)
			}
			if bytes.IndexByte(out, '\n') >= 0 {
				t.Fatalf("reply line with a newline: %q", out)
			}
		}
	})
}

func FuzzUDPHeader(f *testing.F) {
	f.Add([]byte{0, 1, 0, 0, 0, 1, 0, 0, 'g'}, 5023)
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 0)
	f.Add([]byte{1, 2, 3}, 1392)
	f.Fuzz(func(t *testing.T, b []byte, n int) {
		h, ok := ParseUDPHeader(b)
		if ok != (len(b) >= UDPHeaderLen) {
			t.Fatal("ok")
		}
		if ok {
			var o [UDPHeaderLen]byte
			PutUDPHeader(o[:], h)
			if !bytes.Equal(o[:], b[:UDPHeaderLen]) || !bytes.Equal(AppendUDPHeader(nil, h), o[:]) {
				t.Fatal("round trip")
			}
		}
		n &= 1<<24 - 1
		prev := 0
		for i := range UDPDatagrams(n) {
			s, e := UDPChunk(n, i)
			if s != prev || e <= s || e-s > UDPMaxPayload {
				t.Fatalf("chunk %d of %d: %d..%d", i, n, s, e)
			}
			prev = e
		}
		if prev != n {
			t.Fatalf("chunks cover %d of %d", prev, n)
		}
	})
}
