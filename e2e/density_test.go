package e2e

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rebound-net/rebound/internal/testenv"
	"github.com/rebound-net/rebound/internal/testutil"
)

// densityKVMemory and densityMaxConns are the --kv-memory and --max-conns
// of TestDensity, and densityOverhead what the server's RSS may hold
// above --kv-memory: the documented fixed overhead (docs/operations.md,
// Connections and memory): 64 MiB for the engine and the Go heap, and
// 32 KiB for each connection --max-conns allows on each of the two TCP
// ports.
const (
	densityKVMemory = 256 << 20
	densityMaxConns = 16
	densityOverhead = 64<<20 + 2*densityMaxConns*32<<10
)

// densityServer is a cache under test: its memcached address and pid.
type densityServer struct {
	name string
	addr string
	pid  int
	stop func()
}

// TestDensity is issue 20's measure: 3 million sets of 64-byte values
// under 32-byte keys into 256 MiB, then, after flush_all, values of 1 KiB
// under the same limit, then 400,000 sets of 1 KiB values into a fresh
// server of each, beside memcached -m 256 under the same sets. Rebound's
// RSS and peak RSS (VmHWM) stay within --kv-memory plus the documented
// overhead; filled fresh, each byte of its RSS holds at least as many
// items as memcached's, for both sizes; and after the shift of sizes it
// holds about as many 1 KiB items as when filled fresh.
func TestDensity(t *testing.T) {
	if testing.Short() {
		testenv.Skip(t, "-short: fills 256 MiB twice in two servers")
	}
	testenv.Tool(t, testutil.MemcachedPath, "Debian: memcached")
	type result struct{ items, rss, hwm uint64 }
	phases := []struct {
		name       string
		sets, size int
		fresh      bool // in a fresh server, else after flush_all
	}{
		{"64-byte values", 3_000_000, 64, true},
		{"1 KiB values after flush_all", 300_000, 1024, false},
		{"1 KiB values", 400_000, 1024, true},
	}
	res := map[string][]result{}
	for _, start := range []func() densityServer{startDensityRebound(t), startDensityMemcached(t)} {
		var srv densityServer
		for i, ph := range phases {
			if ph.fresh {
				if i > 0 {
					srv.stop()
				}
				srv = start()
			} else {
				densityCmd(t, srv.addr, "flush_all\r\n", "OK\r\n")
			}
			fill(t, srv.addr, fmt.Sprintf("p%d", i), ph.sets, ph.size)
			items := curItems(t, srv.addr)
			r := result{items, procStatus(t, srv.pid, "VmRSS"), procStatus(t, srv.pid, "VmHWM")}
			res[srv.name] = append(res[srv.name], r)
			t.Logf("%s, %s: %d sets, %d items held, VmRSS %d MiB, VmHWM %d MiB, %.0f bytes of RSS an item",
				srv.name, ph.name, ph.sets, r.items, r.rss>>20, r.hwm>>20, float64(r.rss)/float64(r.items))
		}
	}
	for i, ph := range phases {
		r, m := res["rebound"][i], res["memcached"][i]
		if r.rss > densityKVMemory+densityOverhead || r.hwm > densityKVMemory+densityOverhead {
			t.Errorf("%s: rebound VmRSS %d MiB, VmHWM %d MiB: over --kv-memory %d MiB plus the documented %d MiB",
				ph.name, r.rss>>20, r.hwm>>20, densityKVMemory>>20, densityOverhead>>20)
		}
		if r.items == 0 || m.items == 0 {
			t.Fatalf("%s: nothing held (rebound %d items, memcached %d)", ph.name, r.items, m.items)
		}
		rPer, mPer := float64(r.rss)/float64(r.items), float64(m.rss)/float64(m.items)
		t.Logf("%s: rebound %.0f bytes of RSS an item, memcached %.0f (%.0f%%)", ph.name, rPer, mPer, 100*rPer/mPer)
		if ph.fresh && rPer > mPer {
			t.Errorf("%s: rebound takes %.0f bytes of RSS an item, memcached %.0f", ph.name, rPer, mPer)
		}
	}
	// After the shift the index the small items grew halves back: the
	// same limit holds about as many 1 KiB items as a fresh server (92%
	// when the index kept the small items' size).
	if shifted, fresh := res["rebound"][1].items, res["rebound"][2].items; shifted < fresh*97/100 {
		t.Errorf("rebound holds %d items of 1 KiB after the 64-byte ones, %d in a fresh server: the index did not give their memory back", shifted, fresh)
	}
}

// startDensityRebound returns what starts a fresh Rebound for the test.
func startDensityRebound(t *testing.T) func() densityServer {
	return func() densityServer {
		s, addr := startUDPModeServer(t, "--kv-memory", strconv.Itoa(densityKVMemory>>20)+"MiB", "--max-conns", strconv.Itoa(densityMaxConns), "--log-level", "info")
		return densityServer{"rebound", addr, s.cmd.Process.Pid, func() { _ = s.cmd.Process.Kill(); <-s.done }}
	}
}

// startDensityMemcached returns what starts a fresh memcached -m 256.
func startDensityMemcached(t *testing.T) func() densityServer {
	return func() densityServer { return startMemcachedPid(t, "-m", strconv.Itoa(densityKVMemory>>20)) }
}

// startMemcachedPid starts memcached as testutil.StartMemcached does,
// keeping its pid to read its RSS.
func startMemcachedPid(t *testing.T, args ...string) densityServer {
	port := strconv.Itoa(mcFreePort(t))
	argv := []string{"-l", "127.0.0.1", "-p", port, "-U", "0"}
	if os.Geteuid() == 0 {
		argv = append(argv, "-u", "root")
	}
	cmd := exec.Command(testutil.MemcachedPath, append(argv, args...)...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop := func() { once.Do(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }) }
	t.Cleanup(stop)
	addr := net.JoinHostPort("127.0.0.1", port)
	for deadline := time.Now().Add(10 * time.Second); ; {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return densityServer{"memcached", addr, cmd.Process.Pid, stop}
		}
		if time.Now().After(deadline) {
			t.Fatalf("memcached on %s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond) // polling for the listener, with a deadline
	}
}

// fill sets n keys of 32 bytes with values of size bytes, pipelined with
// noreply over two connections, and returns once all were executed.
func fill(t *testing.T, addr, prefix string, n, size int) {
	t.Helper()
	value := strings.Repeat("v", size)
	pipeline(t, addr, n, func(b []byte, i int) []byte {
		return fmt.Appendf(b, "set %s-%029d 0 0 %d noreply\r\n%s\r\n", prefix, i, size, value)
	})
}

// pipeline sends the commands add(b, i) appends for i in [0, n), which
// must ask for no reply, over two connections in batches of 256, and
// returns once the server has executed them all.
func pipeline(t *testing.T, addr string, n int, add func(b []byte, i int) []byte) {
	t.Helper()
	const conns = 2
	errs := make(chan error, conns)
	for w := range conns {
		go func() {
			errs <- func() error {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					return err
				}
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(5 * time.Minute))
				var batch []byte
				for i := w; i < n; {
					batch = batch[:0]
					for j := 0; j < 256 && i < n; j++ {
						batch = add(batch, i)
						i += conns
					}
					if _, err := c.Write(batch); err != nil {
						return err
					}
				}
				if _, err := c.Write([]byte("version\r\n")); err != nil {
					return err
				}
				line, err := bufio.NewReader(c).ReadString('\n')
				if err != nil || !strings.HasPrefix(line, "VERSION ") {
					return fmt.Errorf("after the commands: %q, %v", line, err)
				}
				return nil
			}()
		}()
	}
	for range conns {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// densityCmd sends req and expects want.
func densityCmd(t *testing.T, addr, req, want string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || line != want {
		t.Fatalf("%q: %q, %v", req, line, err)
	}
}

// curItems reads stats curr_items.
func curItems(t *testing.T, addr string) uint64 {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte("stats\r\n")); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(c)
	var items uint64
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if line == "END\r\n" {
			return items
		}
		if v, ok := strings.CutPrefix(line, "STAT curr_items "); ok {
			items, _ = strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		}
	}
}
