package mcserve_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	mc "github.com/rebound-net/rebound/codec/memcache"
	"github.com/rebound-net/rebound/userspace/mcserve"
	"github.com/rebound-net/rebound/userspace/store"
)

func newHandler() *mcserve.Handler {
	return mcserve.New(mcserve.Config{Store: store.New(store.Config{MemoryLimit: 64 << 20})})
}

func TestGetAllocatesNothing(t *testing.T) {
	h := newHandler()
	c := h.NewConn()
	_, _, _, _ = c.Serve([]byte("set k 1 0 100\r\n"+strings.Repeat("v", 100)+"\r\nset m 0 0 1\r\nm\r\n"), nil)
	replies := serveAllocatesNothing(t, c, "get k\r\n", "gets k m nope\r\n", "mg k v f t c k s\r\n", "mg nope v\r\n")
	if last := replies[len(replies)-1]; !strings.HasPrefix(last, "EN") {
		t.Fatalf("last reply %q", last)
	}
}

// The write commands allocate nothing either, answered or noreply, text
// and meta.
func TestWritesAllocateNothing(t *testing.T) {
	h := newHandler()
	c := h.NewConn()
	_, _, _, _ = c.Serve([]byte("set n 0 0 1\r\n1\r\n"), nil)
	reqs := []string{
		"set k 1 0 5\r\nhello\r\n", "set k 1 0 5 noreply\r\nhello\r\n", "add k 0 0 1\r\nx\r\n",
		"append k 0 0 1\r\nx\r\nprepend k 0 0 1\r\ny\r\n", "incr n 1\r\ndecr n 1\r\n", "touch k 100\r\n",
		"ms m 5 T0 F3\r\nhello\r\n", "ma n D2\r\n", "delete k\r\nset k 0 0 1\r\nz\r\n", "md m q\r\nms m 1\r\nv\r\n",
	}
	for i, out := range serveAllocatesNothing(t, c, reqs...) {
		if strings.Contains(out, "ERROR") {
			t.Errorf("%q: %q", reqs[i], out)
		}
	}
}

// serveAllocatesNothing serves each request over and over on c, reports
// any that allocates, and returns each one's last reply.
func serveAllocatesNothing(t *testing.T, c *mcserve.Conn, reqs ...string) []string {
	t.Helper()
	out := make([]byte, 0, 4096)
	var replies []string
	for _, req := range reqs {
		in := []byte(req)
		n := testing.AllocsPerRun(200, func() {
			_, o, _, _ := c.Serve(in, out[:0])
			out = o
		})
		if n != 0 {
			t.Errorf("%q: %v allocations per run", req, n)
		}
		replies = append(replies, string(out))
	}
	return replies
}

func BenchmarkGet(b *testing.B) {
	h := newHandler()
	c := h.NewConn()
	_, _, _, _ = c.Serve([]byte("set k 1 0 100\r\n"+strings.Repeat("v", 100)+"\r\n"), nil)
	in := []byte("get k\r\n")
	out := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		_, out, _, _ = c.Serve(in, out[:0])
	}
}

// TestStreaming feeds a pipeline one byte at a time, as a slow network
// would, and checks that the replies equal those of one read, that need is
// honest, and that a refused 1 GiB value is swallowed without asking the
// transport to buffer it.
func TestStreaming(t *testing.T) {
	stream := "set a 0 0 5\r\nhello\r\nget a\r\nmg a v k\r\nincr a 1\r\nset b 0 0 2000000\r\n" +
		strings.Repeat("z", 2000000) + "\r\nget a b\r\nbogus\r\nmn\r\n"
	whole := func() []byte {
		c := newHandler().NewConn()
		n, out, need, closed := c.Serve([]byte(stream), nil)
		if n != len(stream) || need != 0 || closed {
			t.Fatalf("whole: consumed %d of %d, need %d, close %v", n, len(stream), need, closed)
		}
		return out
	}()
	c := newHandler().NewConn()
	var buf, out []byte
	for i := 0; i < len(stream); {
		step := 1
		if i > 100 && i < len(stream)-100 {
			step = 4096 // the swallowed value, in big chunks
		}
		buf = append(buf, stream[i:min(i+step, len(stream))]...)
		i += step
		n, o, need, closed := c.Serve(buf, out)
		out = o
		if closed {
			t.Fatal("closed")
		}
		buf = buf[:copy(buf, buf[n:])]
		if need > 0 && need <= len(buf) {
			t.Fatalf("need %d with %d buffered", need, len(buf))
		}
		if len(buf) > 100 {
			t.Fatalf("buffered %d bytes: the refused value is not swallowed as it streams", len(buf))
		}
	}
	if !bytes.Equal(out, whole) {
		t.Fatalf("byte at a time:\n%q\nwhole:\n%q", out, whole)
	}
	if !bytes.Contains(out, []byte(mc.ErrTooLarge.Reply())) {
		t.Fatalf("no too-large reply in %q", out)
	}

	// A 1 GiB length: swallowed as it comes, never buffered.
	c = newHandler().NewConn()
	n, o, need, _ := c.Serve([]byte("set big 0 0 1073741824\r\n"), nil)
	if need != 0 || n != 24 || string(o) != mc.ErrTooLarge.Reply() {
		t.Fatalf("1 GiB: consumed %d need %d reply %q", n, need, o)
	}
	chunk := make([]byte, 1<<20)
	for range 1024 {
		if n, _, _, _ := c.Serve(chunk, nil); n != len(chunk) {
			t.Fatalf("swallow consumed %d", n)
		}
	}
	if n, o, _, _ := c.Serve([]byte("\r\nmn\r\n"), nil); n != 6 || string(o) != "MN\r\n" {
		t.Fatalf("after swallow: %d %q", n, o)
	}
}

// TestNeed checks the need hints: the full size of a storage command once
// its line is in, and more than what is buffered for a partial line; and
// that a long line without a newline closes the connection.
func TestNeed(t *testing.T) {
	c := newHandler().NewConn()
	if n, _, need, _ := c.Serve([]byte("set a 0 0 10\r\nabc"), nil); n != 0 || need != 14+12 {
		t.Fatalf("storage: consumed %d need %d", n, need)
	}
	if n, _, need, _ := c.Serve([]byte("get a"), nil); n != 0 || need != 6 {
		t.Fatalf("line: consumed %d need %d", n, need)
	}
	if _, _, _, closed := c.Serve(bytes.Repeat([]byte("x"), 2049), nil); !closed {
		t.Fatal("2049 bytes without a newline must close")
	}
	if _, _, need, closed := c.Serve([]byte("get "+strings.Repeat("k ", 2000)), nil); closed || need == 0 {
		t.Fatal("a long get line must wait for more")
	}
	if _, out, _, closed := c.Serve([]byte("quit\r\nget a\r\n"), nil); !closed || len(out) != 0 {
		t.Fatalf("quit: close %v out %q", closed, out)
	}
}

// TestDifferenceGetBadKeyKeepsEarlierReplies is the first entry of
// DIFFERENCES: earlier replies of the same read survive.
func TestDifferenceGetBadKeyKeepsEarlierReplies(t *testing.T) {
	c := newHandler().NewConn()
	_, out, _, _ := c.Serve([]byte("set a 0 0 1\r\n1\r\nget a "+strings.Repeat("k", 251)+"\r\n"), nil)
	if string(out) != "STORED\r\nCLIENT_ERROR bad command line format\r\n" {
		t.Fatalf("%q", out)
	}
}

func TestDifferenceMe(t *testing.T) {
	c := newHandler().NewConn()
	_, out, _, _ := c.Serve([]byte("me a\r\nstats nosuch\r\n"), nil)
	if string(out) != "EN\r\nERROR\r\n" {
		t.Fatalf("%q", out)
	}
}

// TestFlushBoundsMultiGet: a get naming many large values streams them
// out through Flush, each piece at most FlushAt plus one value, and the
// bytes that come out are those of the same get without Flush.
func TestFlushBoundsMultiGet(t *testing.T) {
	h := newHandler()
	c := h.NewConn()
	value := strings.Repeat("v", 100<<10)
	var setup, get strings.Builder
	get.WriteString("get")
	for i := range 20 {
		k := string(rune('a' + i))
		setup.WriteString("set " + k + " 0 0 102400\r\n" + value + "\r\n")
		get.WriteString(" " + k)
	}
	get.WriteString("\r\nmn\r\n")
	if _, out, _, _ := c.Serve([]byte(setup.String()), nil); strings.Count(string(out), "STORED") != 20 {
		t.Fatalf("setup: %q", out[:min(len(out), 100)])
	}
	_, want, _, _ := h.NewConn().Serve([]byte(get.String()), nil)

	var got []byte
	largest := 0
	c.FlushAt = 64 << 10
	c.Flush = func(b []byte) error {
		largest = max(largest, len(b))
		got = append(got, b...)
		return nil
	}
	_, out, _, closed := c.Serve([]byte(get.String()), nil)
	got = append(got, out...)
	if closed || !bytes.Equal(got, want) {
		t.Fatalf("streamed reply differs: %d bytes, want %d (closed %v)", len(got), len(want), closed)
	}
	if limit := c.FlushAt + len(value) + 64; largest > limit || largest == 0 {
		t.Fatalf("largest piece %d bytes, want 1..%d", largest, limit)
	}

	// A failing Flush stops the connection.
	c.Flush = func([]byte) error { return errors.New("peer gone") }
	if _, _, _, closed := c.Serve([]byte(get.String()), nil); !closed {
		t.Fatal("Serve did not say close after Flush failed")
	}
}

// E, which memcached 1.6.18 does not know, is refused as it refuses it,
// and the refused command changes nothing. Every other meta flag memcached
// implements is implemented (TestStaleFlowBesideMemcached).
func TestMetaFlagERefused(t *testing.T) {
	c := newHandler().NewConn()
	_, _, _, _ = c.Serve([]byte("set a 0 0 1\r\n1\r\n"), nil)
	for _, req := range []string{"mg a E5 v\r\n", "ms a 1 E7\r\nx\r\n"} {
		if _, out, _, _ := c.Serve([]byte(req), nil); string(out) != "CLIENT_ERROR invalid flag\r\n" {
			t.Errorf("%q: %q", req, out)
		}
	}
	if _, out, _, _ := c.Serve([]byte("mg a v\r\n"), nil); string(out) != "VA 1\r\n1\r\n" {
		t.Fatalf("a refused command changed the item: %q", out)
	}
}

// Gets answered outside the handler (in XDP) count in stats as hits.
func TestStatsCountAnsweredGets(t *testing.T) {
	h := mcserve.New(mcserve.Config{Store: store.New(store.Config{}),
		AnsweredGets: func() (uint64, uint64) { return 5, 2 }})
	_, out, _, _ := h.NewConn().Serve([]byte("get nokey\r\nstats\r\n"), nil)
	want := map[string]string{"cmd_get": "8", "get_hits": "7", "get_misses": "1", "cmd_meta": "2"}
	for _, line := range strings.Split(string(out), "\r\n") {
		f := strings.Fields(line)
		if len(f) == 3 && f[0] == "STAT" {
			if w, ok := want[f[1]]; ok {
				if f[2] != w {
					t.Errorf("%s = %s, want %s", f[1], f[2], w)
				}
				delete(want, f[1])
			}
		}
	}
	if len(want) > 0 {
		t.Errorf("stats lacks %v:\n%s", want, out)
	}
}
