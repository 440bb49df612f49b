package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rebound-net/rebound/internal/testenv"
)

// manyConns is how many simultaneous connections TestManyConnections
// opens: what a hard RLIMIT_NOFILE of 20,000 allows each side (the server
// is a process of its own, so each end counts against its own limit).
const manyConns = 18000

// connRSSBudget is the documented server memory (RSS) per connection that
// has answered a set and a get and is open, idle (docs/operations.md,
// Connections and memory).
const connRSSBudget = 32 << 10

// procStatus reads a field of /proc/PID/status in bytes (VmRSS, VmHWM).
func procStatus(t *testing.T, pid int, field string) uint64 {
	t.Helper()
	v, err := readProcStatus(pid, field)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// readProcStatus is procStatus for a goroutine other than the test's.
func readProcStatus(pid int, field string) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("%s: %q: %v", field, line, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

// mcRoundTrip writes req on c and reads until the reply ends with end.
func mcRoundTrip(c net.Conn, r *bufio.Reader, req, end string) (string, error) {
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		return "", err
	}
	var got strings.Builder
	for !strings.HasSuffix(got.String(), end) {
		line, err := r.ReadString('\n')
		got.WriteString(line)
		if err != nil {
			return got.String(), err
		}
	}
	return got.String(), nil
}

// As many simultaneous memcached connections as this machine allows
// (18,000 under a hard RLIMIT_NOFILE of 20,000), each answering a set and
// a get while all are open, one more refused with memcached's line, and
// the server's memory per connection measured (VmRSS of its process).
func TestManyConnections(t *testing.T) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Max < manyConns+1000 {
		testenv.Skip(t, "hard RLIMIT_NOFILE %d: %d connections need %d descriptors on each side (ulimit -Hn)", lim.Max, manyConns, manyConns+1000)
	}
	if lim.Cur < lim.Max { // Go raises it at start; a harness may not have let it
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	s, addr := startUDPModeServer(t, "--max-conns", strconv.Itoa(manyConns), "--kv-memory", "64MiB")
	// --max-conns counts the process's connections, every port together,
	// as memcached's -c: 18,000 fit a limit of 20,000, and the server says
	// so.
	if strings.Contains(s.Log(), "--max-conns does not fit the open-files limit") || !strings.Contains(s.Log(), `msg="open files"`) {
		t.Fatalf("the server did not say that its --max-conns fits its open-files limit:\n%s", s.Log())
	}
	pid := s.cmd.Process.Pid
	// Warm up: the first connection's work (the stream executor, the
	// store's first item) is not a cost per connection.
	func() {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if got, err := mcRoundTrip(c, bufio.NewReader(c), "set warm 0 0 1\r\nx\r\nget warm\r\n", "END\r\n"); err != nil {
			t.Fatalf("warm-up: %q, %v", got, err)
		}
	}()
	rssBefore := procStatus(t, pid, "VmRSS")

	conns := make([]net.Conn, manyConns)
	readers := make([]*bufio.Reader, manyConns)
	t.Cleanup(func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	})
	// Open them all, each answering a set and a get, 64 at a time; each
	// stays open.
	const workers = 64
	var next atomic.Int64
	var failed atomic.Value
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= manyConns || failed.Load() != nil || time.Since(start) > 90*time.Second {
					return
				}
				c, err := net.Dial("tcp", addr)
				if err != nil {
					failed.CompareAndSwap(nil, fmt.Errorf("connection %d: %v", i, err))
					return
				}
				conns[i], readers[i] = c, bufio.NewReaderSize(c, 128)
				key := "k" + strconv.Itoa(i)
				want := "VALUE " + key + " 0 1\r\nv\r\nEND\r\n"
				got, err := mcRoundTrip(c, readers[i], "set "+key+" 0 0 1\r\nv\r\nget "+key+"\r\n", "END\r\n")
				if err != nil || got != "STORED\r\n"+want {
					failed.CompareAndSwap(nil, fmt.Errorf("connection %d: %q, %v", i, got, err))
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		t.Fatalf("after %v: %v\nserver log:\n%s", time.Since(start).Round(time.Millisecond), err, s.Log())
	}
	if int(next.Load()) < manyConns {
		t.Fatalf("only %d of %d connections opened in 90s", next.Load(), manyConns)
	}
	opened := time.Since(start)
	// All open at once: the server counts them, and every one answers
	// again.
	got, err := mcRoundTrip(conns[0], readers[0], "stats\r\n", "END\r\n")
	var curr int
	if _, rest, ok := strings.Cut(got, "STAT curr_connections "); ok {
		curr, _ = strconv.Atoi(rest[:strings.IndexByte(rest, '\r')])
	}
	if err != nil || curr < manyConns { // memcached counts its listeners too
		t.Fatalf("stats on connection 0 (%v): curr_connections %d, want %d or more:\n%s", err, curr, manyConns, got)
	}
	for i := 0; i < manyConns; i += manyConns / 100 {
		key := "k" + strconv.Itoa(i)
		if got, err := mcRoundTrip(conns[i], readers[i], "get "+key+"\r\n", "END\r\n"); err != nil || got != "VALUE "+key+" 0 1\r\nv\r\nEND\r\n" {
			t.Fatalf("connection %d again: %q, %v", i, got, err)
		}
	}
	rssAfter, hwm := procStatus(t, pid, "VmRSS"), procStatus(t, pid, "VmHWM")
	// One past --max-conns: memcached's line, then the close.
	extra, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_ = extra.SetReadDeadline(time.Now().Add(10 * time.Second))
	refusal, _ := io.ReadAll(extra)
	extra.Close()
	if string(refusal) != "ERROR Too many open connections\r\n" {
		t.Fatalf("connection %d of --max-conns %d: %q, want memcached's ERROR Too many open connections", manyConns+1, manyConns, refusal)
	}
	per := (int64(rssAfter) - int64(rssBefore)) / manyConns
	t.Logf("%d connections open and answered in %v (total %v); server VmRSS %d MiB -> %d MiB (VmHWM %d MiB): %d bytes a connection",
		manyConns, opened.Round(time.Millisecond), time.Since(start).Round(time.Millisecond), rssBefore>>20, rssAfter>>20, hwm>>20, per)
	if per > connRSSBudget {
		t.Fatalf("%d bytes of server RSS a connection, documented budget %d", per, connRSSBudget)
	}
}
