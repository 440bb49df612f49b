package e2e

import (
	"context"
	"flag"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rebound-net/rebound/codec/rebound"
	"github.com/rebound-net/rebound/internal/testutil"
	"github.com/rebound-net/rebound/loadgen"
)

var soakFor = flag.Duration("soak", 3*time.Second, "length of TestSoak (make soak runs 60s)")

// rss returns a process's resident memory in KiB.
func rss(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	return 0
}

// Case 10: mixed load with malformed frames mixed in, for -soak (3 s in
// 'make test', 60 s in 'make soak'): no crash, frames balanced at exit,
// resident memory flat.
func TestSoak(t *testing.T) {
	l := testutil.NewLab(t, 1)
	s := startServer(t, l.Srv, "--mode", "xdp", "--iface", l.SrvIf.Name, "--metrics", "127.0.0.1:9100")
	pid := s.cmd.Process.Pid
	p := newRawPeer(t, l)
	bad := [][]byte{
		testutil.Frame(t, testutil.Packet{Payload: msgWith(1, func(b []byte) { b[0] = 0 })}),
		testutil.Frame(t, testutil.Packet{Payload: msgWith(2, func(b []byte) { b[9] = 99 })}),
		testutil.Frame(t, testutil.Packet{Payload: msgWith(3, func(b []byte) { b[3] = 0x80 })}),
		testutil.Frame(t, testutil.Packet{Payload: append(raw(rebound.OpGet, 4, 2), 7, 'k')}),
		testutil.Frame(t, testutil.Packet{Payload: ping(5, "x")})[:40],
	}
	done := make(chan struct{})
	var injected atomic.Int64
	go func() {
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			case <-tick.C:
				if _, err := unix.Write(p.fd, bad[i%len(bad)]); err == nil {
					injected.Add(1)
				}
			}
		}
	}()
	var samples []int
	sampleDone := make(chan struct{})
	go func() {
		defer close(sampleDone)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				samples = append(samples, rss(pid))
			}
		}
	}()
	var res *loadgen.BenchResult
	var err error
	l.Cli.Do(t, func() {
		res, err = loadgen.Bench(context.Background(), loadgen.BenchConfig{Target: srv4, Window: 128, Flows: 2,
			Duration: *soakFor, Warmup: 0, Preload: true,
			Mix: []loadgen.OpShare{{Op: rebound.OpPing, Weight: 45}, {Op: rebound.OpGet, Weight: 45}, {Op: rebound.OpSet, Weight: 10}}})
	})
	close(done)
	<-sampleDone
	if err != nil {
		t.Fatal(err)
	}
	code, took := s.stop(syscall.SIGTERM)
	t.Logf("soak %v: %.0f replies/s, %d sent, %d answered, %d lost, errors %v, %d malformed frames injected",
		*soakFor, res.Throughput, res.Sent, res.Received, res.Lost, res.Errors, injected.Load())
	t.Logf("resident memory (KiB) each second: %v", samples)
	t.Logf("exit %d after SIGTERM in %v", code, took)
	if code != 0 || strings.Contains(s.Log(), "does not balance") || strings.Contains(s.Log(), "level=ERROR") {
		t.Fatalf("exit %d\n%s", code, s.Log())
	}
	if res.Received == 0 {
		t.Fatal("no reply during the soak")
	}
	// Flat: the last sample within 10% (plus 4 MiB) of the one at a quarter
	// of the run, once the store and pools have warmed up.
	if len(samples) >= 4 {
		ref, last := samples[len(samples)/4], samples[len(samples)-1]
		if last > ref+ref/10+4096 {
			t.Fatalf("resident memory grew from %d KiB to %d KiB", ref, last)
		}
	}
}
