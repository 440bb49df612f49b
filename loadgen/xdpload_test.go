package loadgen_test

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/rebound-net/rebound/bpf"
	"github.com/rebound-net/rebound/codec/rebound"
	"github.com/rebound-net/rebound/internal/cpuset"
	"github.com/rebound-net/rebound/internal/testutil"
	"github.com/rebound-net/rebound/loadgen"
	"github.com/rebound-net/rebound/userspace"
	"github.com/rebound-net/rebound/userspace/mcserve"
	"github.com/rebound-net/rebound/userspace/store"
)

// The AF_XDP load generator on a 2-queue veth: one socket and flow per
// queue, both protocols, against a server with a worker per queue (and
// with answers in XDP, whose replies the veth may send back on either
// queue). Both queues carry load, on both sides, and every request sent
// is answered and matched: nothing lost, nothing bad.
func TestBenchXDPQueues(t *testing.T) {
	for _, tc := range []struct {
		name    string
		proto   loadgen.Protocol
		answers bool
		mix     []loadgen.OpShare
	}{
		{"rebound", loadgen.Rebound, false, []loadgen.OpShare{{Op: rebound.OpPing, Weight: 50}, {Op: rebound.OpGet, Weight: 50}}},
		{"memcache", loadgen.Memcache, false, nil},
		{"memcache-answers-in-xdp", loadgen.Memcache, true, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := testutil.NewLab(t, 2)
			l.RemovePass() // the load generator attaches its own program there
			st := store.New(store.Config{MemoryLimit: 64 << 20})
			cfg := userspace.Config{Mode: userspace.ModeXDP, Iface: l.SrvIf.Name, XDPMode: bpf.ModeNative, Listen: ":7000", Workers: 1,
				Handler: userspace.NewService(userspace.ServiceConfig{Store: st}), Memcache: mcserve.New(mcserve.Config{Store: st}),
				MemcacheListen: ":11211", TrustSrc: []netip.Prefix{netip.MustParsePrefix("198.18.0.0/24")}}
			if tc.answers {
				cfg.Answers = st
			}
			srv, err := userspace.NewServer(cfg)
			if err != nil {
				t.Fatal(err)
			}
			l.Srv.Do(t, func() { err = srv.Start(context.Background()) })
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(srv.Stop)
			target := "198.18.0.2:7000"
			if tc.proto == loadgen.Memcache {
				target = "198.18.0.2:11211"
			}
			var res *loadgen.BenchResult
			l.Cli.Do(t, func() {
				res, err = loadgen.Bench(context.Background(), loadgen.BenchConfig{Target: target, Protocol: tc.proto, Mix: tc.mix,
					Keys: 200, Window: 32, Duration: 800 * time.Millisecond, Warmup: 100 * time.Millisecond, Timeout: 2 * time.Second,
					Preload: true, XDP: &loadgen.XDPLoad{Iface: l.CliIf.Name, Queues: 2}})
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%.0f replies/s, sent %d received %d lost %d bad %d; queues %+v", res.Throughput, res.Sent, res.Received,
				res.Lost, res.Bad, res.Queues)
			if len(res.Queues) != 2 {
				t.Fatalf("%d queue results, want 2", len(res.Queues))
			}
			var frames uint64
			for i, q := range res.Queues {
				frames += q.RxFrames
				// A reply sent with XDP_TX leaves on the transmit queue of
				// the CPU that answered it, whatever queue the request came
				// in on: answered in XDP, the replies may all arrive on one
				// queue and cross to the other's flows. Every socket's fill
				// ring is filled before any queue sends: a queue whose
				// first window went unanswered (its replies came to a
				// socket with no frames yet) fails here.
				// At most a window unanswered: the requests still in flight
				// when the run ends (a reply crossing to a flow that has
				// finished) count as lost.
				if q.Queue != i || q.Sent < 200 || q.Received+32 < q.Sent || (!tc.answers && q.RxFrames < 200) {
					t.Errorf("queue %d: %+v: want at least 200 requests sent and 200 frames received on it, all but the last window answered", i, q)
				}
			}
			if frames < uint64(res.Received) {
				t.Errorf("%d reply frames received for %d replies", frames, res.Received)
			}
			if res.Sent == 0 || res.Received+res.Lost != res.Sent || res.Lost > 32*2 || res.Bad != 0 || len(res.Errors) != 0 {
				t.Fatalf("sent %d received %d lost %d bad %d errors %v: want every reply matched", res.Sent, res.Received, res.Lost, res.Bad, res.Errors)
			}
			if res.Hits == 0 || res.Misses != 0 {
				t.Errorf("get hits %d misses %d: the preloaded keys should all hit", res.Hits, res.Misses)
			}
			if tc.answers {
				return // answered in XDP: the workers see (almost) nothing
			}
			// The server's side: each queue's worker served requests.
			per := map[int]uint64{}
			for _, w := range srv.Stats() {
				if w.Transport == "xdp" {
					per[w.Queue] += w.Rx.Load()
				}
			}
			if per[0] < 200 || per[1] < 200 {
				t.Fatalf("server workers per queue %v: want both queues loaded", per)
			}
		})
	}
}

// --cpus: each flow's thread pinned; a CPU the process may not use fails
// the bench instead of running unpinned.
func TestBenchPinnedFlows(t *testing.T) {
	addr := testutil.FakePingServer(t, func(int64) (bool, time.Duration) { return true, 0 })
	allowed, err := cpuset.Allowed()
	if err != nil {
		t.Fatal(err)
	}
	res, err := loadgen.Bench(context.Background(), loadgen.BenchConfig{Target: addr, Window: 4, Flows: 2, CPUs: allowed,
		Duration: 200 * time.Millisecond, Warmup: 0})
	if err != nil || res.Received == 0 {
		t.Fatalf("pinned bench: %v %+v", err, res)
	}
	if _, err := loadgen.Bench(context.Background(), loadgen.BenchConfig{Target: addr, Flows: 1, CPUs: []int{cpuset.MaxCPU - 1},
		Duration: 100 * time.Millisecond}); err == nil {
		t.Fatal("a bench pinned to a CPU outside the process's mask ran")
	}
}
