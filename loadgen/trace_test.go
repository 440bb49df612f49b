package loadgen

import (
	"bufio"
	"context"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rebound-net/rebound/internal/testutil"
)

func TestZipf(t *testing.T) {
	const n, draws = 10_000, 400_000
	z := newZipf(n, 0.99)
	count := make([]int, n)
	rng := rand.New(rand.NewPCG(1, 2))
	for range draws {
		k := z.next(rng)
		if k < 0 || k >= n {
			t.Fatalf("rank %d out of [0,%d)", k, n)
		}
		count[k]++
	}
	// The head follows 1/(rank+1)^0.99 / zeta(n): ranks 0 and 1 exactly
	// (the method draws them by their own probability), the rest within
	// the method's approximation.
	for _, rank := range []int{0, 1, 9, 99} {
		want := draws / math.Pow(float64(rank+1), 0.99) / z.zetan
		got := float64(count[rank])
		if math.Abs(got-want) > 0.15*want+4*math.Sqrt(want) {
			t.Errorf("rank %d: drawn %d times, want about %.0f", rank, count[rank], want)
		}
	}
	// Seeded: the same seed draws the same sequence.
	a, b := rand.New(rand.NewPCG(7, 7)), rand.New(rand.NewPCG(7, 7))
	for range 1000 {
		if x, y := z.next(a), z.next(b); x != y {
			t.Fatalf("same seed, different draws: %d and %d", x, y)
		}
	}
}

func TestTraceKey(t *testing.T) {
	for _, c := range []struct {
		era, k, size int
		want         string
	}{
		{0, 0, 8, "t0:00000"},
		{1, 12345, 8, "t1:12345"},
		{0, 42, 32, "t0:" + strings.Repeat("0", 27) + "42"},
	} {
		if got := string(traceKey(nil, c.era, c.k, c.size)); got != c.want {
			t.Errorf("traceKey(%d, %d, %d) = %q, want %q", c.era, c.k, c.size, got, c.want)
		}
	}
	if err := (&TraceConfig{Keys: 1_000_000, KeySize: 8}).defaults(); err == nil {
		t.Error("8-byte keys for a million keys: no error")
	}
}

// TestTraceMemcached replays a small trace against memcached 1.6 with too
// little memory for it: every phase has hits and misses, the counts add up,
// every hit is the value that was set and every read-back of an
// acknowledged set hits unless the phase evicted.
func TestTraceMemcached(t *testing.T) {
	addr := testutil.StartMemcached(t, "-m", "8")
	cfg := TraceConfig{Target: addr, Keys: 100_000, Ops: 40_000, WarmupOps: 40_000, Seed: 1}
	res, err := Trace(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Phases) != 3 {
		t.Fatalf("%d phases, want 3", len(res.Phases))
	}
	for _, p := range res.Phases {
		t.Logf("%-8s hit ratio %.3f  gets %d  sets %d  not stored %d  read-backs %d lost %d  evictions %d  items %d  %.0f ops/s",
			p.Name, p.HitRatio, p.Gets, p.Sets, p.NotStored, p.Checked, p.Lost, p.Evictions, p.Stats.CurrItems, p.OpsPerSec)
		if p.Gets != 40_000 || p.Sets != p.Gets-p.Hits {
			t.Errorf("%s: %d gets, %d hits, %d sets: want 40000 gets and a set per miss", p.Name, p.Gets, p.Hits, p.Sets)
		}
		if p.HitRatio <= 0.05 || p.HitRatio >= 0.99 {
			t.Errorf("%s: hit ratio %.3f: the trace should neither all hit nor all miss", p.Name, p.HitRatio)
		}
		if p.Bad != 0 {
			t.Errorf("%s: %d hits with the wrong value", p.Name, p.Bad)
		}
		if p.Checked == 0 || uint64(p.Lost) > p.Evictions {
			t.Errorf("%s: %d of %d read-backs missed with %d evictions", p.Name, p.Lost, p.Checked, p.Evictions)
		}
		if p.Stats.LimitMaxbytes != 8<<20 {
			t.Errorf("%s: limit_maxbytes %d, want 8 MiB", p.Name, p.Stats.LimitMaxbytes)
		}
	}
	if res.Phases[1].HitRatio <= res.Phases[0].HitRatio {
		t.Errorf("steady hit ratio %.3f not above the warm-up's %.3f", res.Phases[1].HitRatio, res.Phases[0].HitRatio)
	}
}

// TestTraceLostSets runs the trace against a server that acknowledges
// every set and forgets it: every read-back is a lost set, with no eviction
// to account for it.
func TestTraceLostSets(t *testing.T) {
	addr := forgetfulServer(t)
	res, err := Trace(context.Background(), TraceConfig{Target: addr, Keys: 1000, Ops: 500, WarmupOps: 500, Check: 1, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range res.Phases {
		if p.Hits != 0 || p.Checked != p.Sets || p.Lost != p.Checked || p.Evictions != 0 {
			t.Errorf("%s: hits %d, sets %d, read-backs %d, lost %d, evictions %d: want every set read back and lost",
				p.Name, p.Hits, p.Sets, p.Checked, p.Lost, p.Evictions)
		}
	}
}

func TestFillMemcached(t *testing.T) {
	addr := testutil.StartMemcached(t, "-m", "64")
	res, err := Fill(context.Background(), FillConfig{Target: addr, Keys: 20_000, ValueSize: 64, ServerPID: os.Getpid()})
	if err != nil {
		t.Fatal(err)
	}
	if res.Sets != 20_000 || res.NotStored != 0 || res.Stats.CurrItems != 20_000 || res.Stats.Evictions != 0 {
		t.Errorf("fill: %d sets, %d not stored, %d items, %d evictions: want 20000 stored, none evicted",
			res.Sets, res.NotStored, res.Stats.CurrItems, res.Stats.Evictions)
	}
	if res.Mem == nil || res.Mem.RSS == 0 || res.Mem.HWM < res.Mem.RSS || res.RSSPerItem <= 0 {
		t.Errorf("fill: memory %+v, %.1f bytes per item", res.Mem, res.RSSPerItem)
	}
}

// forgetfulServer answers memcached's get with END and set with STORED, and
// stats with zeros: it loses every set it acknowledges.
func forgetfulServer(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r, w := bufio.NewReader(c), bufio.NewWriter(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					f := strings.Fields(line)
					switch {
					case len(f) == 2 && f[0] == "get":
						w.WriteString("END\r\n")
					case len(f) == 5 && f[0] == "set":
						n, _ := strconv.Atoi(f[4])
						if _, err := r.Discard(n + 2); err != nil {
							return
						}
						w.WriteString("STORED\r\n")
					case len(f) == 1 && f[0] == "stats":
						for _, s := range []string{"curr_items", "total_items", "bytes", "limit_maxbytes", "evictions"} {
							w.WriteString("STAT " + s + " 0\r\n")
						}
						w.WriteString("END\r\n")
					default:
						w.WriteString("ERROR\r\n")
					}
					if r.Buffered() == 0 {
						if w.Flush() != nil {
							return
						}
					}
				}
			}()
		}
	}()
	return l.Addr().String()
}
