package memcache

import (
	"testing"
)

func TestParseStorageAndGet(t *testing.T) {
	var c Command
	in := []byte("set k 5 0 3 noreply\r\nabc\r\nget a  bb ccc\r\n")
	if st := Parse(in, 0, &c); st != Complete || c.Kind != KindSet || string(c.Key) != "k" || c.Flags != 5 ||
		string(c.Data) != "abc" || !c.NoReply || c.Consumed != 26 {
		t.Fatalf("set: %v %+v", st, c)
	}
	in = in[c.Consumed:]
	if st := Parse(in, 0, &c); st != Complete || c.Kind != KindGet {
		t.Fatalf("get: %v %+v", st, c)
	}
	var got []string
	for ks := c.Keys(); ; {
		k, ok := ks.Next()
		if !ok {
			break
		}
		got = append(got, string(k))
	}
	if len(got) != 3 || got[0] != "a" || got[1] != "bb" || got[2] != "ccc" {
		t.Fatalf("keys %q", got)
	}
}

func TestParseNeedMore(t *testing.T) {
	var c Command
	full := []byte("set k 0 0 10\r\n0123456789\r\n")
	for i := 0; i < len(full); i++ {
		st := Parse(full[:i], 0, &c)
		if st != NeedMore {
			t.Fatalf("%d bytes: %v", i, st)
		}
		if i >= 14 && c.Need != len(full) {
			t.Fatalf("%d bytes: need %d", i, c.Need)
		}
	}
	if Parse(full, 0, &c) != Complete {
		t.Fatal("full")
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		in      string
		err     Error
		swallow int
	}{
		{"bogus\r\n", ErrUnknown, 0},
		{"\r\n", ErrUnknown, 0},
		{"set k 0 0 2000000\r\n", ErrTooLarge, 2000002},
		{"set k 0 0 3\r\nabcde\r\n", ErrBadChunk, 0},
		{"set k x 0 1\r\n", ErrBadFormat, 0},
		{"incr k x\r\n", ErrInvalidDelta, 0},
		{"mg k v v\r\n", ErrDuplicateFlag, 0},
		{"mg k !\r\n", ErrInvalidFlag, 0},
		{"ms k 2 T\r\nab\r\n", ErrBadToken, 4},
	} {
		var c Command
		if st := Parse([]byte(tc.in), 0, &c); st != Invalid || c.Err != tc.err || c.Swallow != tc.swallow {
			t.Errorf("%q: %v %v swallow %d, want %v %d", tc.in, st, c.Err, c.Swallow, tc.err, tc.swallow)
		}
	}
}

func TestDeadline(t *testing.T) {
	const now = 1_800_000_000
	for _, tc := range []struct {
		exp  int32
		want int64
	}{
		{0, 0}, {-1, now - 1}, {10, now + 10}, {MaxRelativeExptime, now + MaxRelativeExptime},
		{MaxRelativeExptime + 1, now - 1}, {now + 5, now + 5}, {now, now - 1},
	} {
		if got := Deadline(tc.exp, now); got != tc.want {
			t.Errorf("Deadline(%d) = %d, want %d", tc.exp, got, tc.want)
		}
	}
}

func TestUDPSplit(t *testing.T) {
	if n := UDPDatagrams(5023); n != 4 {
		t.Fatalf("5023 bytes: %d datagrams", n)
	}
	if s, e := UDPChunk(5023, 3); s != 3*1392 || e != 5023 {
		t.Fatalf("chunk 3: %d %d", s, e)
	}
	var b [8]byte
	h := UDPHeader{1, 2, 3, 4}
	PutUDPHeader(b[:], h)
	if g, ok := ParseUDPHeader(b[:]); !ok || g != h || string(AppendUDPHeader(nil, h)) != string(b[:]) {
		t.Fatal("round trip")
	}
}

func TestParseAllocs(t *testing.T) {
	in := []byte("get a b c d e f\r\nms kk 2 T10 F3 c k O1 b\r\nab\r\n")
	var c Command
	out := make([]byte, 0, 512)
	n := testing.AllocsPerRun(100, func() {
		p := in
		for len(p) > 0 {
			Parse(p, 0, &c)
			for ks := c.Keys(); ; {
				k, ok := ks.Next()
				if !ok {
					break
				}
				out = AppendValue(out[:0], k, 1, k, 7, true)
			}
			p = p[c.Consumed:]
		}
	})
	if n != 0 {
		t.Fatalf("%v allocations", n)
	}
}
