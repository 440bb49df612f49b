package e2e

import (
	"bufio"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var churnFor = flag.Duration("churn", 20*time.Second, "length of TestRSSUnderTTLChurn, half for each value size (-churn 2m: a minute each)")

// churnKVMemory and churnMaxConns are the --kv-memory and --max-conns of
// TestRSSUnderTTLChurn, and churnOverhead what the server's RSS may hold
// above --kv-memory: the documented overhead (docs/operations.md,
// Connections and memory): a fixed 64 MiB for the engine and the Go heap
// (the store's items are mapped outside it, within --kv-memory), and 32
// KiB for each connection --max-conns allows on each of the two TCP ports.
const (
	churnKVMemory = 64 << 20
	churnMaxConns = 16
	churnOverhead = 64<<20 + 2*churnMaxConns*32<<10
)

// Sets with 1-3 s TTLs at full speed, from several pipelining
// connections, every key new: the store is full of items expiring all the
// time and evicts as well. The server's RSS, and its peak (VmHWM), stay
// within --kv-memory plus the documented overhead, for small values (the
// heap's worst case per byte counted) and for values up to 2 KiB.
func TestRSSUnderTTLChurn(t *testing.T) {
	for _, c := range []struct {
		name       string
		minV, maxV int
	}{{"values of 16-80 bytes", 16, 80}, {"values of 16-2064 bytes", 16, 2064}} {
		t.Run(c.name, func(t *testing.T) { churn(t, c.minV, c.maxV, *churnFor/2) })
	}
}

func churn(t *testing.T, minV, maxV int, length time.Duration) {
	s, addr := startUDPModeServer(t, "--kv-memory", strconv.Itoa(churnKVMemory>>20)+"MiB", "--max-conns", strconv.Itoa(churnMaxConns), "--log-level", "info")
	pid := s.cmd.Process.Pid
	const writers = 4
	var sets atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	stop := time.Now().Add(length)
	for w := range writers {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			value := strings.Repeat("v", 4096)
			var batch []byte
			for n := 0; time.Now().Before(stop); {
				// 128 sets a write, noreply: the server reads at its own
				// pace, TCP holds the writer back.
				batch = batch[:0]
				for range 128 {
					size := minV + rng.IntN(maxV-minV+1)
					batch = fmt.Appendf(batch, "set churn-%d-%d 0 %d %d noreply\r\n%s\r\n", w, n, 1+rng.IntN(3), size, value[:size])
					n++
				}
				_ = c.SetWriteDeadline(time.Now().Add(10 * time.Second))
				if _, err := c.Write(batch); err != nil {
					errs <- fmt.Errorf("writer %d: %v", w, err)
					return
				}
				sets.Add(128)
			}
			// Everything sent has been executed once this answers.
			_ = c.SetDeadline(time.Now().Add(30 * time.Second))
			if _, err := c.Write([]byte("version\r\n")); err != nil {
				errs <- err
				return
			}
			if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || !strings.HasPrefix(line, "VERSION ") {
				errs <- fmt.Errorf("writer %d: after its sets: %q, %v", w, line, err)
			}
		}()
	}
	// Sample RSS while it runs.
	var peakRSS uint64
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	start := time.Now()
wait:
	for {
		select {
		case <-done:
			break wait
		case <-tick.C:
			peakRSS = max(peakRSS, procStatus(t, pid, "VmRSS"))
			if time.Since(start) > length+60*time.Second {
				t.Fatal("the writers did not finish")
			}
		}
	}
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	rss, hwm := procStatus(t, pid, "VmRSS"), procStatus(t, pid, "VmHWM")
	elapsed := time.Since(start)
	t.Logf("%d sets with 1-3 s TTLs in %v (%.0f/s), --kv-memory %d MiB: VmRSS %d MiB at the end, %d MiB at most sampled; VmHWM %d MiB",
		sets.Load(), elapsed.Round(time.Millisecond), float64(sets.Load())/elapsed.Seconds(), churnKVMemory>>20, rss>>20, peakRSS>>20, hwm>>20)
	if hwm > churnKVMemory+churnOverhead {
		t.Fatalf("VmHWM %d MiB: over --kv-memory %d MiB plus the documented overhead (%d MiB here)", hwm>>20, churnKVMemory>>20, churnOverhead>>20)
	}
}
