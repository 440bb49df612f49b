package loadgen_test

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/rebound-net/rebound/codec/rebound"
	"github.com/rebound-net/rebound/internal/testutil"
	"github.com/rebound-net/rebound/loadgen"
)

// A server that drops every other reply: the bench reports the losses.
func TestBenchCountsLosses(t *testing.T) {
	addr := testutil.FakePingServer(t, func(n int64) (bool, time.Duration) { return n%2 == 0, 0 })
	res, err := loadgen.Bench(context.Background(), loadgen.BenchConfig{Target: addr, Window: 8, Duration: 500 * time.Millisecond,
		Timeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent == 0 || res.Lost == 0 {
		t.Fatalf("no loss reported: %+v", res)
	}
	frac := float64(res.Lost) / float64(res.Sent)
	if frac < 0.35 || frac > 0.65 {
		t.Fatalf("lost %d of %d (%.0f%%), want about half", res.Lost, res.Sent, frac*100)
	}
}

// Open loop: a server that stalls once for 200 ms shows up in the tail,
// because latency runs from when each request was due, not sent.
func TestBenchOpenLoopSeesStall(t *testing.T) {
	addr := testutil.FakePingServer(t, func(n int64) (bool, time.Duration) {
		if n == 100 {
			return true, 200 * time.Millisecond
		}
		return true, 0
	})
	res, err := loadgen.Bench(context.Background(), loadgen.BenchConfig{Target: addr, Rate: 1000, Duration: time.Second, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	// About 200 requests were due during the stall: at a 1000/s rate the
	// ones queued behind it wait up to 200 ms, so p90 and max show it.
	if max := time.Duration(res.Hist.Max()); max < 150*time.Millisecond {
		t.Fatalf("max latency %v: the 200 ms stall is missing", max)
	}
	if p := res.Percentile(90); p < 50*time.Millisecond {
		t.Fatalf("p90 %v: a coordinated-omission-free tail should carry the stall", p)
	}
	if res.Received < 800 {
		t.Fatalf("open loop at 1000/s for 1s: only %d replies", res.Received)
	}
}

// Open loop keeps its schedule: at 500 requests/s one is due every 2 ms,
// and the median request leaves within a quarter of that (the old loop
// slept 2 ms between bursts and sent each request a period after it was
// due: its median lag and latency were 2 ms and more). Against a real
// server on loopback, over UDP and TCP, in both protocols. The lag of
// every request sent in the measured period is reported, and the service
// time of every reply beside its latency, which is the larger.
func TestBenchOpenLoopKeepsSchedule(t *testing.T) {
	const rate = 500
	period := time.Second / rate
	rb := testutil.LoopbackServer(t)
	mc := testutil.StartMemcached(t)
	for _, c := range []struct {
		name string
		cfg  loadgen.BenchConfig
	}{
		{"rebound-udp", loadgen.BenchConfig{Target: rb}},
		{"rebound-tcp", loadgen.BenchConfig{Target: rb, TCP: true}},
		{"memcache-udp", loadgen.BenchConfig{Target: mc, Protocol: loadgen.Memcache, Preload: true}},
		{"memcache-tcp", loadgen.BenchConfig{Target: mc, Protocol: loadgen.Memcache, Preload: true, TCP: true}},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := c.cfg
			cfg.Rate, cfg.Duration, cfg.Warmup, cfg.Keys = rate, time.Second, 100*time.Millisecond, 100
			// A machine that starves the process for most of a second
			// (others' loads beside -race) misses the schedule too:
			// three tries. The old loop missed it by design, each time.
			var why string
			for try := 1; try <= 3; try++ {
				res, err := loadgen.Bench(context.Background(), cfg)
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("try %d: sent %d, answered %d; latency p50 %v p99 %v; lag p50 %v p99 %v max %v; service p50 %v p99 %v", try,
					res.Sent, res.Received, res.Percentile(50), res.Percentile(99), res.LagPercentile(50), res.LagPercentile(99),
					time.Duration(res.Lag.Max()), res.ServicePercentile(50), res.ServicePercentile(99))
				if n := res.Lag.TotalCount(); n < rate*8/10 || n > int64(res.Sent) {
					t.Fatalf("%d lags for about %d requests sent in the measured second (%d in all)", n, rate, res.Sent)
				}
				if res.Hist.TotalCount() < rate*8/10 || res.Service.TotalCount() != res.Hist.TotalCount() {
					t.Fatalf("%d latencies and %d service times", res.Hist.TotalCount(), res.Service.TotalCount())
				}
				if res.ServicePercentile(50) > res.Percentile(50) || res.Service.Max() > res.Hist.Max() {
					t.Fatalf("service time above latency: p50 %v > %v or max %v > %v", res.ServicePercentile(50), res.Percentile(50),
						time.Duration(res.Service.Max()), time.Duration(res.Hist.Max()))
				}
				switch lag, p := res.LagPercentile(50), res.Percentile(50); {
				case lag > period/4:
					why = fmt.Sprintf("median lag %v at %d/s: requests leave off their schedule", lag, rate)
				case p > period/2:
					why = fmt.Sprintf("median latency %v at %d/s (lag %v, service %v)", p, rate, lag, res.ServicePercentile(50))
				default:
					return
				}
			}
			t.Fatal(why)
		})
	}
}

// Open loop with more flows than Ps: the bench gives the process a P for
// every flow and one more while it runs (a flow sleeps in ppoll holding
// its P; without a spare, one that wakes waited for a P up to 10 ms: lag
// p99 9.7 ms at 30000/s with 3 flows on 2 Ps, 0.1 ms with 4 Ps), and the
// setting is back as it was once it returns.
func TestBenchOpenLoopPsForFlows(t *testing.T) {
	addr := testutil.FakePingServer(t, func(int64) (bool, time.Duration) { return true, 0 })
	before := runtime.GOMAXPROCS(0)
	flows := before + 1
	var during []int
	res, err := loadgen.Bench(context.Background(), loadgen.BenchConfig{Target: addr, Rate: 300, Flows: flows,
		Duration: 1200 * time.Millisecond, Warmup: 0, Tick: func(loadgen.Tick) { during = append(during, runtime.GOMAXPROCS(0)) }})
	if err != nil {
		t.Fatal(err)
	}
	if len(during) == 0 || during[0] < flows+1 {
		t.Fatalf("GOMAXPROCS %v during an open loop of %d flows, want %d or more", during, flows, flows+1)
	}
	if after := runtime.GOMAXPROCS(0); after != before {
		t.Fatalf("GOMAXPROCS %d after the bench, %d before", after, before)
	}
	if res.Received == 0 {
		t.Fatal("no reply")
	}
}

func TestParseMix(t *testing.T) {
	m, err := loadgen.ParseMix("mix=get:90,set:10")
	if err != nil || len(m) != 2 || m[0].Op != rebound.OpGet || m[0].Weight != 90 || m[1].Op != rebound.OpSet {
		t.Fatalf("%+v %v", m, err)
	}
	for _, bad := range []string{"get:x", "fly", "get:-1"} {
		if _, err := loadgen.ParseMix(bad); err == nil {
			t.Errorf("ParseMix(%q) accepted", bad)
		}
	}
}

// The UDP load loop allocates nothing per request, in closed loop and in
// open loop: a run of many thousand requests against a server that
// allocates nothing either costs the process a bounded number of
// allocations (setup, histograms).
func TestBenchUDPNoAllocationPerRequest(t *testing.T) {
	addr := testutil.FakePingServer(t, func(int64) (bool, time.Duration) { return true, 0 })
	var err error
	for _, rate := range []float64{0, 5000} {
		// Enough replies that setup costs vanish in the average: a
		// slow machine gets a longer run rather than a skip.
		var before, after runtime.MemStats
		var res *loadgen.BenchResult
		for d := 300 * time.Millisecond; res == nil || res.Received < 2000; d *= 2 {
			if d > 5*time.Second {
				t.Fatalf("rate %v: only %d replies in %v: the load loop cannot be measured", rate, res.Received, d/2)
			}
			runtime.ReadMemStats(&before)
			res, err = loadgen.Bench(context.Background(), loadgen.BenchConfig{Target: addr, Window: 64,
				Rate: rate, Duration: d, Timeout: 100 * time.Millisecond})
			runtime.ReadMemStats(&after)
			if err != nil {
				t.Fatal(err)
			}
		}
		if per := float64(after.Mallocs-before.Mallocs) / float64(res.Received); per > 0.05 {
			t.Fatalf("rate %v: %d allocations for %d replies: %.2f per reply", rate, after.Mallocs-before.Mallocs, res.Received, per)
		}
	}
}
