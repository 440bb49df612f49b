package userspace

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/rebound-net/rebound/codec/rebound"
	"github.com/rebound-net/rebound/userspace/mcserve"
	"github.com/rebound-net/rebound/userspace/store"
)

// fillBatch queues n requests of a mix of ops into b, each in its own
// buffer with room for a reply.
func fillBatch(b *batcher, bufs [][]byte, reqs [][]byte) {
	for i, r := range reqs {
		n := copy(bufs[i], r)
		b.add(bufs[i][:n:cap(bufs[i])], 1472)
	}
}

func mixRequests(n int) [][]byte { return requests(n, true) }

// requests makes n requests cycling through PING, GET, SET (or, without
// sets, a second GET) and DEL.
func requests(n int, sets bool) [][]byte {
	reqs := make([][]byte, n)
	for i := range reqs {
		b := make([]byte, 128)
		var m int
		op := i % 4
		if op == 2 && !sets {
			op = 1
		}
		switch op {
		case 0:
			m, _ = rebound.EncodePing(b, uint32(i), []byte("0123456789abcdef0123456789abcdef0123456789abcdef1234"))
		case 1:
			m, _ = rebound.EncodeGet(b, uint32(i), []byte("key:hot"), 0)
		case 2:
			m, _ = rebound.EncodeSet(b, uint32(i), []byte("key:hot"), 0, []byte("a value of 32 bytes, give or tak"))
		case 3:
			m, _ = rebound.EncodeDel(b, uint32(i), []byte("key:cold"))
		}
		reqs[i] = b[:m]
	}
	return reqs
}

// The serving path, from validation to reply headers, allocates nothing
// per request with the built-in service for PING, GET and DEL; a SET
// allocates the stored item and its value (the store keeps immutable
// items, so that a GET reads one without a lock), two allocations and no
// more.
func TestServeAllocatesNothing(t *testing.T) {
	t.Run("ping get del", func(t *testing.T) { serveAllocs(t, requests(64, false), 0) })
	t.Run("with sets", func(t *testing.T) { serveAllocs(t, requests(64, true), 2*16) })
}

func serveAllocs(t *testing.T, reqs [][]byte, want float64) {
	svc := NewService(ServiceConfig{KVMemory: 8 << 20})
	stats := &WorkerStats{}
	b := newBatcher(64, 4, stats)
	svc.Serve([]Message{{Op: rebound.OpSet, Payload: setPayload(t, "key:hot", 0, []byte("v")), Out: make([]byte, 0, 64)}}) // GETs hit
	bufs := make([][]byte, 64)
	for i := range bufs {
		bufs[i] = make([]byte, 2048)
	}
	run := func() {
		fillBatch(&b, bufs, reqs)
		b.run(svc)
		for i := range b.items {
			if b.items[i].replyLen == 0 {
				t.Fatalf("request %d got no reply", i)
			}
		}
		b.reset()
	}
	run() // warm the store and the pools
	if a := testing.AllocsPerRun(200, run); a > want {
		t.Fatalf("%v allocations per batch of 64, want at most %v", a, want)
	}
}

func BenchmarkServeBatch64(b *testing.B) {
	svc := NewService(ServiceConfig{KVMemory: 8 << 20})
	bt := newBatcher(64, 4, &WorkerStats{})
	reqs := mixRequests(64)
	bufs := make([][]byte, 64)
	for i := range bufs {
		bufs[i] = make([]byte, 2048)
	}
	b.ReportAllocs()
	for b.Loop() {
		fillBatch(&bt, bufs, reqs)
		bt.run(svc)
		bt.reset()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*64), "ns/request")
}

// The memcached datagram path the AF_XDP worker runs (serve, frame the
// reply into datagrams) allocates nothing per GET once its buffers are
// warm.
func TestMemcacheDatagramAllocatesNothing(t *testing.T) {
	st := store.New(store.Config{MemoryLimit: 8 << 20})
	h := mcserve.New(mcserve.Config{Store: st})
	if r, _ := st.Set([]byte("k"), bytes.Repeat([]byte("v"), 64), store.ModeSet, 0, 0, 0); r != store.Stored {
		t.Fatal(r)
	}
	m := newMCDatagram(h, 0, nil, &WorkerStats{})
	req := append([]byte{0, 1, 0, 0, 0, 1, 0, 0}, "get k\r\n"...)
	src := netip.MustParseAddr("198.18.0.1")
	run := func() {
		m.reset()
		if m.serve(req, src, 1472) != 1 || len(m.out) != 8+len("VALUE k 0 64\r\n\r\nEND\r\n")+64 {
			t.Fatalf("reply %q", m.out)
		}
	}
	run()
	if a := testing.AllocsPerRun(500, run); a != 0 {
		t.Fatalf("%v allocations per memcached GET datagram", a)
	}
}

// Every batch size a server takes (1 to 1024) lands in a bucket whose
// exported upper bound, 2^(i+1)-1, is at least the size.
func TestBatchBucketsCoverTheLargestBatch(t *testing.T) {
	for n := 1; n <= 1024; n++ {
		i := batchBucket(n)
		if bound := (2 << i) - 1; bound < n || (i > 0 && 1<<i > n) {
			t.Fatalf("batch of %d: bucket %d, bounds [%d, %d]", n, i, 1<<i, bound)
		}
	}
}

// The memcached datagram path of the AF_XDP worker, per GET hit (a 32-byte
// key, a 64-byte value): serve and frame the reply.
func BenchmarkMemcacheDatagramGet(b *testing.B) {
	st := store.New(store.Config{MemoryLimit: 8 << 20})
	h := mcserve.New(mcserve.Config{Store: st})
	key := bytes.Repeat([]byte("k"), 32)
	st.Set(key, bytes.Repeat([]byte("v"), 64), store.ModeSet, 0, 0, 0)
	m := newMCDatagram(h, 0, nil, &WorkerStats{})
	req := append(append([]byte{0, 1, 0, 0, 0, 1, 0, 0}, "get "...), append(key, "\r\n"...)...)
	src := netip.MustParseAddr("198.18.0.1")
	b.ReportAllocs()
	for b.Loop() {
		m.reset()
		m.serve(req, src, 1472)
	}
}
