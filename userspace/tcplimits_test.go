package userspace_test

import (
	"bytes"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

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
// server (docs/operations.md, Tuning): its goroutine, its two starting
// buffers and the socket objects Go keeps. The test measures it.
const perConnBudget = 24 << 10

// 10,000 idle connections fit the documented figure. The clients live in
// a child process (this test binary again), so that each side needs only
// its own 10,000 descriptors, and the figure is the server's alone.
func TestTCPIdleConnectionsMemory(t *testing.T) {
	const n = 10000
	ts := startMC(t, userspace.Config{Mode: userspace.ModeUDP, Workers: 1, MaxConns: n})
	used := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapInuse + m.StackInuse
	}
	before := used()
	child := exec.Command(os.Args[0], "-test.run=^TestIdleClients$")
	child.Env = append(os.Environ(), "REBOUND_IDLE_CLIENTS="+ts.srv.Addr().String()+","+ts.srv.MemcacheAddr().String()+","+strconv.Itoa(n))
	stdin, _ := child.StdinPipe()
	var out bytes.Buffer
	child.Stdout, child.Stderr = &out, &out
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); _ = child.Wait() })
	// Every connection is being served (its goroutine and buffers exist)
	// once the server counts it.
	deadline := time.Now().Add(60 * time.Second)
	for {
		curr, _ := ts.srv.MemcacheConns()
		if curr == n/2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("server sees %d memcached connections, want %d; clients said:\n%s", curr, n/2, out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	per := (used() - before) / n
	t.Logf("%d idle connections: %d bytes each, server side", n, per)
	if per > perConnBudget {
		t.Fatalf("%d bytes per idle connection, documented budget %d", per, perConnBudget)
	}
}

// TestIdleClients is the child of TestTCPIdleConnectionsMemory: it opens
// the idle connections and holds them until its stdin closes. Run on its
// own it does nothing.
func TestIdleClients(t *testing.T) {
	spec := os.Getenv("REBOUND_IDLE_CLIENTS")
	if spec == "" {
		return
	}
	parts := strings.Split(spec, ",")
	n, _ := strconv.Atoi(parts[2])
	conns := make([]net.Conn, 0, n)
	for i := range n {
		c, err := net.Dial("tcp", parts[i%2])
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		conns = append(conns, c)
	}
	_, _ = io.Copy(io.Discard, os.Stdin)
	for _, c := range conns {
		c.Close()
	}
}
