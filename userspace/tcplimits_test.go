package userspace_test

import (
	"io"
	"net"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rebound-net/rebound/userspace"
)

// A client that trickles a request a byte at a time, each byte inside the
// idle timeout, is cut off by the request timeout, on both protocols.
func TestTCPTricklingClientCutOff(t *testing.T) {
	ts := startMC(t, userspace.Config{Mode: userspace.ModeUDP, Workers: 1,
		IdleTimeout: 5 * time.Second, RequestTimeout: 400 * time.Millisecond})
	for _, c := range []struct{ name, addr, req string }{
		{"rebound", ts.srv.Addr().String(), string(raw(1, 0, 1, -1, 0, []byte("0123456789")))},
		{"memcache", ts.srv.MemcacheAddr().String(), "set k 0 0 10\r\n0123456789\r\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", c.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			start := time.Now()
			for i := 0; i < len(c.req)-1; i++ {
				if _, err := conn.Write([]byte{c.req[i]}); err != nil {
					break // closed under us: what the test wants
				}
				time.Sleep(100 * time.Millisecond) // the trickle itself, not a wait for a result
				if time.Since(start) > 4*time.Second {
					break
				}
			}
			_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			if n, err := conn.Read(make([]byte, 64)); err != io.EOF {
				t.Fatalf("after %v of trickling: read %d bytes, %v; want the connection closed", time.Since(start).Round(time.Millisecond), n, err)
			}
		})
	}
}

// perConnBudget is the documented memory an idle TCP connection costs the
// server (README, "Operating it"): its goroutine, its two starting buffers
// and the kernel-side socket objects Go keeps. The test measures it.
const perConnBudget = 24 << 10

// 10,000 idle connections fit the documented figure.
func TestTCPIdleConnectionsMemory(t *testing.T) {
	n := 10000
	// Both ends live in this process: two descriptors a connection.
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err == nil && lim.Cur < uint64(2*n+1000) {
		want := unix.Rlimit{Cur: uint64(2*n + 1000), Max: max(lim.Max, uint64(2*n+1000))}
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &want); err != nil {
			n = int(lim.Cur-1000) / 2
			t.Logf("open-file limit %d (raising it needs root): measuring %d connections", lim.Cur, n)
		}
		t.Cleanup(func() { _ = unix.Setrlimit(unix.RLIMIT_NOFILE, &lim) })
	}
	ts := startMC(t, userspace.Config{Mode: userspace.ModeUDP, Workers: 1, MaxConns: 2 * n})
	addrs := []string{ts.srv.Addr().String(), ts.srv.MemcacheAddr().String()}
	used := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapInuse + m.StackInuse
	}
	before := used()
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := range n {
		c, err := net.Dial("tcp", addrs[i%2])
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		conns = append(conns, c)
	}
	// Every connection is being served (its goroutine and buffers exist)
	// once the server counts it.
	deadline := time.Now().Add(30 * time.Second)
	for {
		curr, _ := ts.srv.MemcacheConns()
		if curr == uint64(n/2) && time.Now().Before(deadline) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("server sees %d memcached connections, want %d", curr, n/2)
		}
		time.Sleep(10 * time.Millisecond)
	}
	per := (used() - before) / uint64(n)
	t.Logf("%d idle connections: %d bytes each (client side included)", n, per)
	if per > perConnBudget {
		t.Fatalf("%d bytes per idle connection, documented budget %d", per, perConnBudget)
	}
}
