package userspace_test

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/rebound-net/rebound/bpf"
	"github.com/rebound-net/rebound/codec"
	"github.com/rebound-net/rebound/handler"
	"github.com/rebound-net/rebound/internal/testutil"
	"github.com/rebound-net/rebound/userspace"
	"github.com/rebound-net/rebound/userspace/mcserve"
	"github.com/rebound-net/rebound/userspace/store"
)

// upper is a made-up protocol: the reply is the request in upper case; a
// request starting with '!' asks for a reply 10 times its size, which the
// amplification bound must stop.
var upper = handler.DatagramFunc(func(req []byte, _ netip.Addr, out []byte) []byte {
	if len(req) > 0 && req[0] == '!' {
		return bytes.Repeat(req, 10) // over the bound: must never be sent
	}
	return append(out, bytes.ToUpper(req)...)
})

// A protocol of your own on the AF_XDP path: its port is steered into the
// sockets and answered there, over IPv4 and IPv6, in native and generic
// mode, within the amplification bound, every frame home at the end.
func TestOwnProtocolOverXDP(t *testing.T) {
	for _, mode := range []bpf.Mode{bpf.ModeNative, bpf.ModeGeneric} {
		t.Run(mode.String(), func(t *testing.T) {
			l := testutil.NewLab(t, 1)
			ts := startInLab(t, l, userspace.Config{XDPMode: mode, Protocols: []userspace.ProtocolListener{{
				Listen: ":9000", Protocol: handler.Protocol{Name: "upper", Datagram: upper}}}})
			dial := dialIn(t, l.Cli)
			before := xdpRx(ts)
			for _, dst := range []string{"198.18.0.2:9000", "[2001:2::2]:9000"} {
				c, err := dial("udp", dst)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(2 * time.Second))
				if _, err := c.Write([]byte("hello, own protocol")); err != nil {
					t.Fatal(err)
				}
				buf := make([]byte, 256)
				n, err := c.Read(buf)
				if err != nil || string(buf[:n]) != "HELLO, OWN PROTOCOL" {
					t.Fatalf("%s: %q, %v", dst, buf[:n], err)
				}
				_, _ = c.Write([]byte("!too big"))
				_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
				if n, err := c.Read(buf); err == nil {
					t.Fatalf("%s: a reply over the amplification bound was sent: %q", dst, buf[:n])
				}
			}
			if got := xdpRx(ts) - before; got < 4 {
				c, _ := ts.srv.Program().Counters()
				t.Fatalf("the AF_XDP path received %d requests, want 4: traffic went elsewhere (xdp %v)", got, c)
			}
			var refused uint64
			for _, w := range ts.srv.Stats() {
				if w.Transport == "xdp" {
					refused += w.Rejects[codec.ReasonAmplification].Load()
				}
			}
			if refused != 2 {
				t.Fatalf("amplification refusals on the AF_XDP path: %d, want 2", refused)
			}
			ts.srv.Stop()
			for _, fa := range ts.srv.Frames() {
				if !fa.Balanced() {
					t.Fatalf("frames not balanced: %+v", fa)
				}
			}
		})
	}
}

// SetListen moves both built-in protocols while serving in xdp mode: the
// new ports are steered into AF_XDP and answered there, the old ones no
// longer answered.
func TestSetListenOverXDP(t *testing.T) {
	l := testutil.NewLab(t, 1)
	st := store.New(store.Config{MemoryLimit: 16 << 20})
	ts := startInLab(t, l, userspace.Config{Handler: userspace.NewService(userspace.ServiceConfig{Store: st}),
		Memcache: mcserve.New(mcserve.Config{Store: st}), MemcacheListen: ":11211"})
	var err error
	l.Srv.Do(t, func() { err = ts.srv.SetListen(":7100", ":11300") }) // the interface lives in the lab's namespace
	if err != nil {
		t.Fatal(err)
	}
	dial := dialIn(t, l.Cli)
	before := xdpRx(ts)
	runUDP(t, dial, "198.18.0.2:7100", udpCases("moved")[:1])
	if got := reassemble(t, 4, mcUDP(t, dial, "198.18.0.2:11300", 4, 1, 0, "mn\r\n")); string(got) != "MN\r\n" {
		t.Fatalf("memcached on its new port: %q", got)
	}
	if got := xdpRx(ts) - before; got < 2 {
		t.Fatalf("the AF_XDP path received %d requests on the new ports, want 2", got)
	}
	if got := mcUDP(t, dial, "198.18.0.2:11211", 5, 1, 0, "mn\r\n"); len(got) != 0 {
		t.Fatalf("the old memcached port still answers: %q", got)
	}
	if err := ts.srv.SetListen(":0", ""); err == nil {
		t.Fatal("a move to port 0 was accepted")
	}
}
