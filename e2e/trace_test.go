package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rebound-net/rebound/internal/testutil"
	"github.com/rebound-net/rebound/loadgen"
)

// traceTolerance is how far below memcached's hit ratio Rebound's may fall
// in a phase of TestTraceHitRatio before the test fails, in absolute terms.
// The trace is the same for both servers, but neither server evicts in a
// fixed order: the same run repeated gave hit ratios up to 0.3 points apart
// for memcached 1.6 (its LRU maintainer thread) and 1.2 points apart for
// Rebound's map-per-item store of issue 20's report (0.1 for the segment
// store after it), so 2 points is the noise of one run, and a store that
// holds fewer items in the same memory shows as a larger gap (that first
// store, holding 52,472 items where memcached held 58,373: 3.1 points in
// the steady phase, 0.680 to 0.711).
const traceTolerance = 0.02

// TestTraceHitRatio sends the same seeded cache-aside trace (Zipf 0.99 over
// more keys than 16 MiB holds, then a shift to new keys with values 4 to 16
// times larger) to memcached -m 16 and to rebound serve --kv-memory 16MiB,
// through 'rebound bench --trace zipf', and compares the hit ratios phase
// by phase: Rebound's must be at least memcached's, within traceTolerance.
// On both, every acknowledged set that was read back right after it must
// have been there, unless the phase's evictions account for it.
func TestTraceHitRatio(t *testing.T) {
	requireMemcacheServe(t)
	mc := testutil.StartMemcached(t, "-m", "16")
	// Items of the trace are 4 KiB at most: a smaller largest item than
	// the 1 MiB default, which a store may not allow at 16 MiB (one with
	// segments wants an item to fit in a sixteenth of them).
	rb := startReboundMemory(t, "16MiB", "--max-item-size", "512KiB")
	args := []string{"bench", "--trace", "zipf", "--keys", "1000000", "--trace-ops", "150000", "--trace-warmup", "100000",
		"--seed", "1", "--quiet", "--json"}
	mcRes := runTrace(t, mc, 0, args)
	rbRes := runTrace(t, rb.addr, rb.srv.cmd.Process.Pid, args)
	for i, m := range mcRes.Phases {
		r := rbRes.Phases[i]
		t.Logf("%-8s hit ratio: memcached %.4f, rebound %.4f (items %d and %d; evictions %d and %d; rebound RSS %.1f MiB)",
			m.Name, m.HitRatio, r.HitRatio, m.Stats.CurrItems, r.Stats.CurrItems, m.Evictions, r.Evictions, float64(r.Mem.RSS)/(1<<20))
		if m.Gets != r.Gets {
			t.Errorf("%s: %d gets to memcached, %d to rebound: the trace differs", m.Name, m.Gets, r.Gets)
		}
		if r.HitRatio < m.HitRatio-traceTolerance {
			t.Errorf("%s: rebound's hit ratio %.4f is below memcached's %.4f by more than %.2f at the same memory",
				m.Name, r.HitRatio, m.HitRatio, traceTolerance)
		}
	}
	// The trace must reach past what fits, or the comparison says nothing.
	if s := mcRes.Phases[1]; s.Evictions == 0 {
		t.Errorf("memcached evicted nothing in the steady phase: the trace fits in its memory")
	}
}

// tracedServer is a rebound serve for a trace: its memcached-protocol
// address and its process.
type tracedServer struct {
	addr string
	srv  *server
}

// startReboundMemory runs 'rebound serve --mode udp --kv-memory mem' and
// args on free loopback ports, retrying when a port was taken in between.
func startReboundMemory(t *testing.T, mem string, args ...string) tracedServer {
	t.Helper()
	for attempt := 0; ; attempt++ {
		rp, mp := mcFreePort(t), mcFreePort(t)
		if rp == mp {
			continue
		}
		mca := net.JoinHostPort("127.0.0.1", strconv.Itoa(mp))
		s, err := startLocalServer(t, append([]string{"--mode", "udp", "--workers", "1", "--kv-memory", mem,
			"--listen", net.JoinHostPort("127.0.0.1", strconv.Itoa(rp)), "--memcache-listen", mca}, args...)...)
		if err != nil {
			if attempt < 3 && strings.Contains(err.Error(), "address already in use") {
				continue
			}
			t.Fatal(err)
		}
		waitMCVersion(t, &mcTarget{Kind: mcReboundUDP, Addr: mca, Srv: s})
		return tracedServer{addr: mca, srv: s}
	}
}

// runTrace runs 'rebound bench' with args against target and returns its
// JSON result, failing the test on an error, a hit with the wrong value or
// a lost set the evictions do not account for.
func runTrace(t *testing.T, target string, pid int, args []string) *loadgen.TraceResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	args = append(args, "--target", target)
	if pid > 0 {
		args = append(args, "--server-pid", strconv.Itoa(pid))
	}
	cmd := exec.CommandContext(ctx, reboundBin(t), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var res loadgen.TraceResult
	if jerr := json.Unmarshal(stdout.Bytes(), &res); jerr != nil || len(res.Phases) != 3 {
		t.Fatalf("bench --trace against %s: %v, %v\n%s%s", target, err, jerr, stdout.Bytes(), stderr.Bytes())
	}
	for _, p := range res.Phases {
		if p.Bad > 0 {
			t.Errorf("%s, %s: %d hits were not the value that was set", target, p.Name, p.Bad)
		}
		if p.Checked == 0 || uint64(p.Lost) > p.Evictions {
			t.Errorf("%s, %s: %d of %d acknowledged sets were not readable right after, with %d evictions",
				target, p.Name, p.Lost, p.Checked, p.Evictions)
		}
		if pid > 0 && p.Mem == nil {
			t.Errorf("%s, %s: no RSS reported for pid %d", target, p.Name, pid)
		}
	}
	if err != nil {
		t.Errorf("bench --trace against %s: %v\n%s", target, err, stderr.Bytes())
	}
	return &res
}
