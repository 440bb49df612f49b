package userspace_test

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/rebound-net/rebound/codec/rebound"
	"github.com/rebound-net/rebound/internal/testutil"
	"github.com/rebound-net/rebound/userspace"
)

// probeConn opens a connection to addr and says whether the server serves
// it: a served connection answers ping (written only when nothing came
// unasked) with pong; a refused one gets what the server writes before it
// closes, returned as refusal (possibly empty).
func probeConn(t *testing.T, addr string, ping, pong []byte) (c net.Conn, served bool, refusal []byte) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	buf := make([]byte, 256)
	// A refusal comes unasked, at once: wait a moment for it before asking.
	_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	n, err := c.Read(buf)
	if n == 0 && errors.Is(err, os.ErrDeadlineExceeded) {
		if _, err := c.Write(ping); err != nil {
			return c, false, nil
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err = io.ReadAtLeast(c, buf, len(pong))
		if err == nil && bytes.Equal(buf[:len(pong)], pong) {
			return c, true, nil
		}
	}
	got := append([]byte(nil), buf[:n]...)
	if err == nil {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		rest, _ := io.ReadAll(c) // to the close (EOF, or a reset)
		got = append(got, rest...)
	}
	return c, false, got
}

// Past --max-conns, memcached's port answers a new connection with
// memcached 1.6's own line and closes it; the Rebound port closes it
// without a word (its replies answer a request, and none came). The line
// is taken from memcached itself, started with a small -c.
func TestMaxConnsRefusal(t *testing.T) {
	version := []byte("version\r\n")
	oracle := testutil.StartMemcached(t, "-c", "32")
	var want []byte
	for i := 0; i < 64 && want == nil; i++ {
		if _, served, refusal := probeConn(t, oracle, version, []byte("VERSION ")); !served {
			if len(refusal) == 0 {
				t.Fatalf("memcached -c 32: connection %d closed without a line", i)
			}
			want = refusal
		}
	}
	if want == nil {
		t.Fatal("memcached -c 32 served 64 connections")
	}
	t.Logf("memcached past -c: %q", want)

	const limit = 4
	ts := startMC(t, userspace.Config{Mode: userspace.ModeUDP, Workers: 1, MaxConns: limit})
	ping := raw(rebound.OpPing, 0, 1, -1, 0, nil)
	pong := reply(rebound.OpPing, 0, 1, rebound.StatusOK, nil)
	for _, p := range []struct {
		name, addr  string
		ping, pong  []byte
		wantRefusal []byte
	}{
		{"memcache", ts.srv.MemcacheAddr().String(), version, []byte("VERSION "), want},
		{"rebound", ts.srv.Addr().String(), ping, pong, nil},
	} {
		// The places the last subtest's connections held come back as
		// the server sees them closed: wait for that first.
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			if curr, _ := ts.srv.MemcacheConns(); curr == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the memcached port's connections still open 5s after their close")
			}
		}
		t.Run(p.name, func(t *testing.T) {
			var conns []net.Conn
			for i := range limit {
				c, served, refusal := probeConn(t, p.addr, p.ping, p.pong)
				if !served {
					t.Fatalf("connection %d of %d refused (%q)", i+1, limit, refusal)
				}
				conns = append(conns, c)
			}
			for range 2 {
				_, served, refusal := probeConn(t, p.addr, p.ping, p.pong)
				if served {
					t.Fatalf("connection %d served, past a limit of %d", limit+1, limit)
				}
				if !bytes.Equal(refusal, p.wantRefusal) {
					t.Fatalf("refused with %q, want %q", refusal, p.wantRefusal)
				}
			}
			// A place freed is a place served again.
			conns[0].Close()
			deadline := time.Now().Add(5 * time.Second)
			for {
				c, served, _ := probeConn(t, p.addr, p.ping, p.pong)
				if served {
					c.Close()
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("a closed connection's place is not served again after 5s")
				}
			}
		})
	}
}

// TestMaxConnsCountsTheProcess: --max-conns bounds the server's connections
// on every port together, as memcached's -c bounds its process: a
// connection held on the Rebound port takes a place memcached's port no
// longer has.
func TestMaxConnsCountsTheProcess(t *testing.T) {
	version := []byte("version\r\n")
	ts := startMC(t, userspace.Config{Mode: userspace.ModeUDP, Workers: 1, MaxConns: 2})
	ping := raw(rebound.OpPing, 0, 1, -1, 0, nil)
	pong := reply(rebound.OpPing, 0, 1, rebound.StatusOK, nil)
	reb, mc := ts.srv.Addr().String(), ts.srv.MemcacheAddr().String()
	if _, served, _ := probeConn(t, reb, ping, pong); !served {
		t.Fatal("the first Rebound connection was refused")
	}
	if _, served, _ := probeConn(t, mc, version, []byte("VERSION ")); !served {
		t.Fatal("the first memcached connection was refused")
	}
	if _, served, refusal := probeConn(t, mc, version, []byte("VERSION ")); served || string(refusal) != "ERROR Too many open connections\r\n" {
		t.Fatalf("a third connection, on memcached's port: served %v, %q", served, refusal)
	}
	if _, served, _ := probeConn(t, reb, ping, pong); served {
		t.Fatal("a third connection, on the Rebound port, was served past a limit of 2")
	}
}
