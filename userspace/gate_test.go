package userspace_test

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rebound-net/rebound/codec"
	"github.com/rebound-net/rebound/codec/rebound"
	"github.com/rebound-net/rebound/internal/testenv"
	"github.com/rebound-net/rebound/userspace"
)

// answered reports whether each path answers a loopback client: the
// Rebound protocol over UDP and TCP, memcached over UDP and TCP.
func answered(t *testing.T, ts *testServer) map[string]bool {
	t.Helper()
	got := map[string]bool{}
	ping := raw(rebound.OpPing, 0, 9, -1, 0, []byte("hi"))
	try := func(name, network, addr string, req []byte, n int) {
		c, err := net.Dial(network, addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(300 * time.Millisecond))
		if _, err := c.Write(req); err != nil {
			return // a refused TCP connection may fail the write
		}
		buf := make([]byte, 256)
		_, err = io.ReadAtLeast(c, buf, n)
		got[name] = err == nil
	}
	try("rebound/udp", "udp", ts.srv.Addr().String(), ping, len(ping))
	try("rebound/tcp", "tcp", ts.srv.Addr().String(), ping, len(ping))
	try("memcache/udp", "udp", ts.srv.MemcacheAddr().String(), append([]byte{0, 1, 0, 0, 0, 1, 0, 0}, "mn\r\n"...), 12)
	try("memcache/tcp", "tcp", ts.srv.MemcacheAddr().String(), []byte("mn\r\n"), 4)
	return got
}

// The allow-list holds on every socket path, not only in XDP, and a live
// update is all or nothing: a bad prefix leaves the old list in force.
func TestAllowListOnEveryPath(t *testing.T) {
	ts := startMC(t, userspace.Config{Mode: userspace.ModeUDP, Workers: 1,
		AllowSrc: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}})
	for path, ok := range answered(t, ts) {
		if ok {
			t.Errorf("%s: a source outside the allow-list was answered", path)
		}
	}
	var refused uint64
	for _, w := range ts.srv.Stats() {
		refused += w.Drops[codec.ReasonNotAllowed].Load()
	}
	if refused < 4 {
		t.Errorf("not_allowed drops counted: %d, want at least 4", refused)
	}

	if err := ts.srv.SetAllow([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}); err != nil {
		t.Fatal(err)
	}
	for path, ok := range answered(t, ts) {
		if !ok {
			t.Errorf("%s: an allowed source was not answered", path)
		}
	}

	if err := ts.srv.SetAllow([]netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), {}}); err == nil {
		t.Fatal("an invalid prefix was accepted")
	}
	for path, ok := range answered(t, ts) {
		if !ok {
			t.Errorf("%s: after a refused update the old list no longer holds", path)
		}
	}

	if err := ts.srv.SetAllow(nil); err != nil {
		t.Fatal(err)
	}
	for path, ok := range answered(t, ts) {
		if !ok {
			t.Errorf("%s: with no list every source is served, but this one was not", path)
		}
	}
}

// A request sent to the broadcast address reaches a server bound to the
// wildcard address, and is never answered (the same request to a unicast
// address is).
func TestBroadcastNotAnswered(t *testing.T) {
	ts := startMC(t, userspace.Config{Mode: userspace.ModeUDP, Workers: 1, Listen: ":0", MemcacheListen: ":0"})
	port := ts.srv.Addr().(*net.TCPAddr).Port
	c, err := net.ListenPacket("udp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rc, _ := c.(*net.UDPConn).SyscallConn()
	_ = rc.Control(func(fd uintptr) { _ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_BROADCAST, 1) })
	ping := raw(rebound.OpPing, 0, 3, -1, 0, []byte("anyone?"))
	ask := func(dst string) bool {
		if _, err := c.WriteTo(ping, &net.UDPAddr{IP: net.ParseIP(dst), Port: port}); err != nil {
			testenv.Skip(t, "send to %s: %v", dst, err)
		}
		_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		_, _, err := c.ReadFrom(make([]byte, 64))
		return err == nil
	}
	if ask("255.255.255.255") {
		t.Fatal("a request to the broadcast address was answered")
	}
	var dropped uint64
	for _, w := range ts.srv.Stats() {
		dropped += w.Drops[codec.ReasonNotUnicast].Load()
	}
	if dropped == 0 {
		testenv.Skip(t, "the broadcast did not reach the server here")
	}
	if !ask("127.0.0.1") {
		t.Fatal("the same request to a unicast address was not answered")
	}
}

// A connection opened while its source was allowed is closed when a new
// allow-list leaves the source out.
func TestAllowListClosesOpenConnections(t *testing.T) {
	ts := startMC(t, userspace.Config{Mode: userspace.ModeUDP, Workers: 1})
	for _, addr := range []string{ts.srv.Addr().String(), ts.srv.MemcacheAddr().String()} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		// Served once, so that the connection is surely accepted.
		if addr == ts.srv.MemcacheAddr().String() {
			_, _ = c.Write([]byte("mn\r\n"))
			_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
			if _, err := io.ReadFull(c, make([]byte, 4)); err != nil {
				t.Fatal(err)
			}
		}
		if err := ts.srv.SetAllow([]netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 8)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("%s: the open connection was not closed: %v", addr, err)
		}
		if err := ts.srv.SetAllow(nil); err != nil {
			t.Fatal(err)
		}
	}
}
