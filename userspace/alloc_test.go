//go:build !race

// The race detector allocates on its own: 'make test' runs this file in a
// second pass without -race.

package userspace_test

import (
	"io"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/rebound-net/rebound/codec/rebound"
	"github.com/rebound-net/rebound/userspace"
)

// Allocations per request on the socket transports, measured over the
// whole process (this test's client allocates nothing per request): none,
// for a Rebound PING and for a memcached GET hit, over TCP and UDP.
func TestSocketPathAllocations(t *testing.T) {
	ts := startMC(t, userspace.Config{Mode: userspace.ModeUDP, Workers: 1,
		TrustSrc: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}) // a 64-byte value is over 4x "get k"
	mc := ts.srv.MemcacheAddr().String()
	setup, err := net.Dial("tcp", mc)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.WriteString(setup, "set k 0 0 64\r\n"+strings.Repeat("v", 64)+"\r\n")
	_, _ = io.ReadFull(setup, make([]byte, len("STORED\r\n")))
	setup.Close()
	ping := raw(rebound.OpPing, 0, 1, -1, 0, make([]byte, 52))
	get := []byte("get k\r\n")
	udpGet := append([]byte{0, 1, 0, 0, 0, 1, 0, 0}, get...)
	for _, c := range []struct {
		name, network, addr string
		req                 []byte
		reply               int
		max                 float64
	}{
		{"rebound tcp", "tcp", ts.srv.Addr().String(), ping, len(ping), 0.01},
		{"rebound udp", "udp", ts.srv.Addr().String(), ping, len(ping), 0.01},
		{"memcache tcp get", "tcp", mc, get, len("VALUE k 0 64\r\n\r\nEND\r\n") + 64, 0.01},
		{"memcache udp get", "udp", mc, udpGet, 8 + len("VALUE k 0 64\r\n\r\nEND\r\n") + 64, 0.01},
	} {
		conn, err := net.Dial(c.network, c.addr)
		if err != nil {
			t.Fatal(err)
		}
		req := c.req
		buf := make([]byte, 256)
		round := func(n int) {
			for i := 0; i < n; i++ {
				if _, err := conn.Write(req); err != nil {
					t.Fatal(err)
				}
				if _, err := io.ReadFull(conn, buf[:c.reply]); err != nil {
					t.Fatal(err)
				}
			}
		}
		_ = conn.SetReadDeadline(time.Now().Add(time.Minute))
		round(1000) // warm up pools and buffers
		const n = 5000
		var a, b runtime.MemStats
		runtime.ReadMemStats(&a)
		round(n)
		runtime.ReadMemStats(&b)
		conn.Close()
		per := float64(b.Mallocs-a.Mallocs) / n
		t.Logf("%s: %.2f allocations per request", c.name, per)
		if per > c.max {
			t.Errorf("%s: %.2f allocations per request, want at most %.2f", c.name, per, c.max)
		}
	}
}
