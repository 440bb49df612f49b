package userspace_test

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/rebound-net/rebound/bpf"
	"github.com/rebound-net/rebound/client"
	"github.com/rebound-net/rebound/codec/rebound"
	"github.com/rebound-net/rebound/internal/testutil"
	"github.com/rebound-net/rebound/loadgen"
	"github.com/rebound-net/rebound/userspace"
)

// startInLab starts a server in xdp mode on the lab's server end.
func startInLab(t *testing.T, l *testutil.Lab, cfg userspace.Config) *testServer {
	t.Helper()
	cfg.Mode = userspace.ModeXDP
	cfg.Iface = l.SrvIf.Name
	cfg.Listen = ":7000"
	if cfg.Workers == 0 {
		cfg.Workers = 1
	}
	var ts *testServer
	l.Srv.Do(t, func() { ts = startServer(t, cfg) })
	if m, why := ts.srv.Mode(); m != userspace.ModeXDP {
		t.Fatalf("mode %s: %s", m, why)
	}
	return ts
}

// dialIn dials from inside a namespace.
func dialIn(t *testing.T, ns *testutil.NS) dialFunc {
	return func(network, addr string) (c net.Conn, err error) {
		ns.Do(t, func() { c, err = net.Dial(network, addr) })
		return c, err
	}
}

func xdpRx(ts *testServer) (rx uint64) {
	for _, w := range ts.srv.Stats() {
		if w.Transport == "xdp" {
			rx += w.Rx.Load()
		}
	}
	return rx
}

// Every rule of the protocol over the AF_XDP path, IPv4 and IPv6, with the
// client's kernel as the peer that checks every reply's checksums.
func TestXDPConformance(t *testing.T) {
	for _, mode := range []bpf.Mode{bpf.ModeNative, bpf.ModeGeneric} {
		t.Run(mode.String(), func(t *testing.T) {
			l := testutil.NewLab(t, 1)
			ts := startInLab(t, l, userspace.Config{XDPMode: mode})
			dial := dialIn(t, l.Cli)
			before := xdpRx(ts)
			runUDP(t, dial, "198.18.0.2:7000", udpCases("v4"))
			runUDP(t, dial, "[2001:2::2]:7000", udpCases("v6"))
			if got := xdpRx(ts) - before; got < uint64(2*len(udpCases(""))) {
				t.Fatalf("the AF_XDP path received %d requests, want at least %d: traffic went elsewhere", got, 2*len(udpCases("")))
			}
			runTCP(t, dial, "198.18.0.2:7000", udpCases("tcp"))
			c, err := ts.srv.Program().Counters()
			if err != nil || c[bpf.Redirected] == 0 {
				t.Fatalf("xdp counters %v, %v", c, err)
			}
		})
	}
}

// Frames under load: a bench from the client, then Stop: every frame is
// accounted for, none is left sending.
func TestXDPFrameAccountingUnderLoad(t *testing.T) {
	l := testutil.NewLab(t, 1)
	ts := startInLab(t, l, userspace.Config{Frames: 512})
	var res *loadgen.BenchResult
	var err error
	l.Cli.Do(t, func() {
		res, err = loadgen.Bench(context.Background(), loadgen.BenchConfig{Target: "198.18.0.2:7000", Window: 256, Flows: 2,
			Duration: 2 * time.Second, Warmup: 100 * time.Millisecond, Mix: []loadgen.OpShare{{Op: rebound.OpPing, Weight: 80}, {Op: rebound.OpGet, Weight: 20}}, Preload: true})
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("bench: %.0f replies/s, %d sent, %d lost", res.Throughput, res.Sent, res.Lost)
	if res.Received == 0 || xdpRx(ts) == 0 {
		t.Fatalf("no load went through the AF_XDP path: %+v", res)
	}
	ts.srv.Stop()
	frames := ts.srv.Frames()
	if len(frames) != 1 {
		t.Fatalf("frame accounts: %+v", frames)
	}
	for _, fa := range frames {
		if !fa.Balanced() || fa.Sending != 0 || fa.Total != 512 {
			t.Fatalf("frames after stop: %+v", fa)
		}
	}
}

// Multi-queue: flows spread over 4 rx queues, each with its own socket,
// and every queue answers.
func TestXDPMultiQueue(t *testing.T) {
	l := testutil.NewLab(t, 4)
	ts := startInLab(t, l, userspace.Config{})
	for i := 0; i < 64; i++ {
		// A client per flow (a new source port each); UDP may lose a
		// datagram, so the client retries: the point is that every queue
		// answers.
		var c *client.Client
		var err error
		l.Cli.Do(t, func() {
			c, err = client.Dial(context.Background(), "198.18.0.2:7000", client.Options{Timeout: 500 * time.Millisecond, Retries: 3})
		})
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.Ping(context.Background(), []byte(strconv.Itoa(i)))
		c.Close()
		if err != nil || string(got) != strconv.Itoa(i) {
			t.Fatalf("flow %d: %q %v", i, got, err)
		}
	}
	per := map[int]uint64{}
	for _, w := range ts.srv.Stats() {
		if w.Transport == "xdp" {
			per[w.Queue] = w.Rx.Load()
		}
	}
	t.Logf("requests per queue: %v", per)
	if len(per) != 4 {
		t.Fatalf("%d xdp workers, want 4", len(per))
	}
	for q, n := range per {
		if n == 0 {
			t.Errorf("queue %d answered nothing", q)
		}
	}
}
