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

// A pipelined fill of 1 KiB values over TCP (the way a cache is warmed)
// makes no garbage: a request that straddles the end of the read buffer
// is moved to its front instead of growing the buffer (and growing it
// back down at the next short read). Bytes allocated per set, process
// wide, stay under 64 (the client reuses its buffers).
func TestPipelinedSetsMakeNoGarbage(t *testing.T) {
	ts := startMC(t, userspace.Config{Mode: userspace.ModeUDP, Workers: 1})
	conn, err := net.Dial("tcp", ts.srv.MemcacheAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Minute))
	const batch = 37 // sets a write: batches end at every offset of the buffer
	value := strings.Repeat("v", 1024)
	var req []byte
	for i := range batch {
		req = append(req, "set key:"...)
		req = append(req, byte('a'+i%26), byte('a'+i/26))
		req = append(req, " 0 0 1024\r\n"...)
		req = append(req, value...)
		req = append(req, "\r\n"...)
	}
	replies := make([]byte, batch*len("STORED\r\n"))
	round := func(n int) {
		for range n {
			if _, err := conn.Write(req); err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(conn, replies); err != nil {
				t.Fatal(err)
			}
		}
	}
	round(20)
	const n = 200
	var a, b runtime.MemStats
	runtime.ReadMemStats(&a)
	round(n)
	runtime.ReadMemStats(&b)
	per := float64(b.TotalAlloc-a.TotalAlloc) / (n * batch)
	t.Logf("%.1f bytes allocated per 1 KiB set", per)
	if per > 64 {
		t.Errorf("%.1f bytes allocated per pipelined 1 KiB set, want under 64", per)
	}
}
