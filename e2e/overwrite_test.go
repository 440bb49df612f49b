package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rebound-net/rebound/internal/testenv"
)

// overwriteKeys is how many keys TestRSSUnderOverwritesAndDeletes writes
// over and over: 64-byte values of them fit churnKVMemory, 1 KiB ones do
// not (five times over).
const overwriteKeys = 300_000

// overwriteValue is key i's value in pass p, size bytes: it starts with
// the pass and the key, so that a get tells an old value from the last.
func overwriteValue(p, i, size int) string {
	v := fmt.Sprintf("%d-%d-", p, i)
	return v + strings.Repeat("v", max(size-len(v), 0))
}

// The loads TestRSSUnderTTLChurn and TestDensity leave out: the same keys
// written over again and again with values that grow and shrink, every
// key deleted, then sets each followed by the delete of an older key.
// The server's RSS, sampled while each load runs, and its peak (VmHWM)
// stay within --kv-memory plus the documented overhead; a get never
// returns a value older than the last one set (a miss is allowed only
// where the values written did not fit); deleted keys are gone, and what
// the store counts matches.
func TestRSSUnderOverwritesAndDeletes(t *testing.T) {
	if testing.Short() {
		testenv.Skip(t, "-short: writes about 1.3 GB of values through 64 MiB")
	}
	s, addr := startUDPModeServer(t, "--kv-memory", strconv.Itoa(churnKVMemory>>20)+"MiB", "--max-conns", strconv.Itoa(churnMaxConns), "--log-level", "info")
	pid := s.cmd.Process.Pid
	var peakRSS uint64
	// load runs one load while a goroutine samples the server's RSS.
	load := func(name string, run func()) {
		t.Helper()
		done := make(chan struct{})
		sampled := make(chan uint64)
		go func() {
			var peak uint64
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-done:
					sampled <- peak
					return
				case <-tick.C:
					if rss, err := readProcStatus(pid, "VmRSS"); err == nil {
						peak = max(peak, rss)
					}
				}
			}
		}()
		start := time.Now()
		run()
		close(done)
		rss := procStatus(t, pid, "VmRSS")
		peakRSS = max(peakRSS, <-sampled, rss)
		t.Logf("%s: %v, VmRSS %d MiB at the end, %d MiB at most sampled so far; %d items held",
			name, time.Since(start).Round(time.Millisecond), rss>>20, peakRSS>>20, curItems(t, addr))
	}
	g := newMCGetter(t, addr)
	key := func(i int) string { return fmt.Sprintf("ow-%029d", i) }
	passes := []struct {
		name    string
		size    func(i int) int
		minHits float64 // the share of sampled keys found, where all fit
	}{
		{"64-byte values", func(int) int { return 64 }, 0.95},
		{"1 KiB values over them", func(int) int { return 1024 }, 0},
		{"16-byte values over them", func(int) int { return 16 }, 0.95},
		{"16 bytes to 3 KiB, by key", func(i int) int { return 16 + i*37%3000 }, 0},
		{"64-byte values again", func(int) int { return 64 }, 0.95},
	}
	for p, ps := range passes {
		load(fmt.Sprintf("pass %d, %s", p, ps.name), func() {
			pipeline(t, addr, overwriteKeys, func(b []byte, i int) []byte {
				v := overwriteValue(p, i, ps.size(i))
				return fmt.Appendf(b, "set %s 0 0 %d noreply\r\n%s\r\n", key(i), len(v), v)
			})
		})
		hits := 0
		const sample = 3000
		for j := range sample {
			i := j * (overwriteKeys / sample)
			switch v, ok := g.get(key(i)); {
			case !ok:
			case v != overwriteValue(p, i, ps.size(i)):
				t.Fatalf("pass %d: key %d is %.20q..., not the value of this pass", p, i, v)
			default:
				hits++
			}
		}
		t.Logf("pass %d: %d of %d sampled keys hold the last value, the rest miss", p, hits, sample)
		if float64(hits) < ps.minHits*sample {
			t.Errorf("pass %d (%s, which fit): only %d of %d sampled keys found", p, ps.name, hits, sample)
		}
	}
	load("every key deleted", func() {
		pipeline(t, addr, overwriteKeys, func(b []byte, i int) []byte {
			return fmt.Appendf(b, "delete %s noreply\r\n", key(i))
		})
	})
	if n := curItems(t, addr); n != 0 {
		t.Errorf("%d items held after every key was deleted", n)
	}
	for i := 0; i < overwriteKeys; i += 997 {
		if _, ok := g.get(key(i)); ok {
			t.Fatalf("key %d found after it was deleted", i)
		}
	}
	// A window of the last `live` keys: the store fills with the dead.
	const live, sets = 1000, 1_000_000
	load(fmt.Sprintf("%d sets of 512 bytes, each deleting the key set %d before", sets, live), func() {
		pipeline(t, addr, sets, func(b []byte, i int) []byte {
			v := overwriteValue(9, i, 512)
			b = fmt.Appendf(b, "set %s 0 0 %d noreply\r\n%s\r\n", key(i), len(v), v)
			if i >= live {
				b = fmt.Appendf(b, "delete %s noreply\r\n", key(i-live))
			}
			return b
		})
	})
	// Each connection sets every other key and deletes its own (live is
	// even): the last live keys are held, and no key before them.
	held := curItems(t, addr)
	for i := sets - 3*live; i < sets; i++ {
		v, ok := g.get(key(i))
		switch {
		case ok != (i >= sets-live):
			t.Fatalf("key %d of %d: found %v, after the sets and the deletes %d behind them", i, sets, ok, live)
		case ok && v != overwriteValue(9, i, 512):
			t.Fatalf("key %d is %.20q...", i, v)
		}
	}
	if held != live {
		t.Errorf("%d items held after sets and deletes %d apart, want %d", held, live, live)
	}
	hwm := procStatus(t, pid, "VmHWM")
	t.Logf("--kv-memory %d MiB: VmRSS at most %d MiB sampled, VmHWM %d MiB", churnKVMemory>>20, peakRSS>>20, hwm>>20)
	if hwm > churnKVMemory+churnOverhead {
		t.Fatalf("VmHWM %d MiB: over --kv-memory %d MiB plus the documented overhead (%d MiB here)", hwm>>20, churnKVMemory>>20, churnOverhead>>20)
	}
}

// mcGetter gets keys one at a time over one connection.
type mcGetter struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func newMCGetter(t *testing.T, addr string) *mcGetter {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &mcGetter{t, c, bufio.NewReader(c)}
}

// get returns key's value, and whether it was found.
func (g *mcGetter) get(key string) (string, bool) {
	t := g.t
	t.Helper()
	_ = g.c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(g.c, "get %s\r\n", key); err != nil {
		t.Fatal(err)
	}
	line, err := g.r.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	if line == "END\r\n" {
		return "", false
	}
	var k string
	var flags, n int
	if _, err := fmt.Sscanf(line, "VALUE %s %d %d\r\n", &k, &flags, &n); err != nil || k != key {
		t.Fatalf("get %s: %q (%v)", key, line, err)
	}
	b := make([]byte, n+2)
	if _, err := io.ReadFull(g.r, b); err != nil {
		t.Fatal(err)
	}
	if end, err := g.r.ReadString('\n'); err != nil || end != "END\r\n" {
		t.Fatalf("get %s: after the value %q, %v", key, end, err)
	}
	return string(b[:n]), true
}
