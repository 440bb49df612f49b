//go:build !race

// The race detector allocates on its own: 'make test' runs this file in a
// second pass without -race.

package userspace_test

import (
	"io"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/rebound-net/rebound/codec/rebound"
	"github.com/rebound-net/rebound/userspace"
)

// Allocations per request on the socket transports, measured over the
// whole process (this test's client allocates nothing per request): TCP
// none; UDP the two that golang.org/x/net's ReadBatch makes for each
// datagram's source address (a net.UDPAddr and its IP), and no more.
func TestSocketPathAllocations(t *testing.T) {
	ts := startServer(t, userspace.Config{Mode: userspace.ModeUDP, Workers: 1})
	for _, c := range []struct {
		network string
		max     float64
	}{{"tcp", 0.01}, {"udp", 2.05}} {
		conn, err := net.Dial(c.network, ts.srv.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		req := raw(rebound.OpPing, 0, 1, -1, 0, make([]byte, 52))
		buf := make([]byte, 256)
		round := func(n int) {
			for i := 0; i < n; i++ {
				if _, err := conn.Write(req); err != nil {
					t.Fatal(err)
				}
				if _, err := io.ReadFull(conn, buf[:len(req)]); err != nil {
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
		t.Logf("%s: %.2f allocations per request", c.network, per)
		if per > c.max {
			t.Errorf("%s: %.2f allocations per request, want at most %.2f", c.network, per, c.max)
		}
	}
}
