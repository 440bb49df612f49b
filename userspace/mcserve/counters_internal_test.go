package mcserve

import (
	"fmt"
	"sync"
	"testing"
	"unsafe"

	"github.com/rebound-net/rebound/userspace/store"
)

// TestCountersPerConn: the connections count their commands in shards of
// their own, cache lines apart (a worker's core never writes another
// worker's counters), and Stats adds the shards up.
func TestCountersPerConn(t *testing.T) {
	h := New(Config{Store: store.New(store.Config{MemoryLimit: 8 << 20})})
	conns := make([]*Conn, counterShards)
	seen := map[*counters]bool{}
	for i := range conns {
		conns[i] = h.NewConn()
		if seen[conns[i].cnt] {
			t.Fatalf("conn %d shares its counters with an earlier one of the first %d", i, counterShards)
		}
		seen[conns[i].cnt] = true
	}
	if d := uintptr(unsafe.Pointer(&h.shards[1])) - uintptr(unsafe.Pointer(&h.shards[0])); d%64 != 0 || d < unsafe.Sizeof(counters{}) {
		t.Fatalf("shards %d bytes apart: want whole cache lines holding a set of counters", d)
	}
	var wg sync.WaitGroup
	const per = 500
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := fmt.Sprintf("k%d", i)
			out := make([]byte, 0, 256)
			for j := range per {
				out, _ = serveAll(c, fmt.Sprintf("set %s 0 0 1\r\nv\r\nget %s\r\nget nope%d\r\n", key, key, j), out[:0])
			}
		}()
	}
	wg.Wait()
	s := h.Stats()
	n := uint64(len(conns) * per)
	if s.CmdSet != n || s.CmdGet != 2*n || s.GetHits != n || s.GetMisses != n {
		t.Fatalf("stats: cmd_set %d cmd_get %d get_hits %d get_misses %d: want %d, %d, %d, %d",
			s.CmdSet, s.CmdGet, s.GetHits, s.GetMisses, n, 2*n, n, n)
	}
	if s.BytesRead == 0 || s.BytesWritten == 0 {
		t.Fatalf("bytes read %d, written %d", s.BytesRead, s.BytesWritten)
	}
}

// serveAll runs every command of in on c.
func serveAll(c *Conn, in string, out []byte) ([]byte, int) {
	b := []byte(in)
	total := 0
	for len(b) > 0 {
		k, o, _, _ := c.Serve(b, out)
		out = o
		if k == 0 {
			break
		}
		b = b[k:]
		total += k
	}
	return out, total
}

// BenchmarkGetParallel: GET hits from one connection per goroutine (a
// worker per core), the cost of the counters included.
func BenchmarkGetParallel(b *testing.B) {
	h := New(Config{Store: store.New(store.Config{MemoryLimit: 8 << 20})})
	setup := h.NewConn()
	serveAll(setup, "set k 0 0 32\r\n"+fmt.Sprintf("%032d", 7)+"\r\n", nil)
	req := []byte("get k\r\n")
	b.RunParallel(func(pb *testing.PB) {
		c := h.NewConn()
		out := make([]byte, 0, 256)
		for pb.Next() {
			_, out, _, _ = c.Serve(req, out[:0])
		}
	})
}
