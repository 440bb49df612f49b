package userspace_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rebound-net/rebound/bpf"
	"github.com/rebound-net/rebound/client"
	"github.com/rebound-net/rebound/codec"
	"github.com/rebound-net/rebound/internal/testutil"
	"github.com/rebound-net/rebound/userspace"
	"github.com/rebound-net/rebound/userspace/mcserve"
	"github.com/rebound-net/rebound/userspace/store"
)

// startMC starts a server that speaks both protocols over one store.
func startMC(t *testing.T, cfg userspace.Config) *testServer {
	t.Helper()
	st := store.New(store.Config{MemoryLimit: 64 << 20})
	cfg.Handler = userspace.NewService(userspace.ServiceConfig{Store: st})
	cfg.Memcache = mcserve.New(mcserve.Config{Store: st})
	if cfg.MemcacheListen == "" {
		cfg.MemcacheListen = "127.0.0.1:0"
	}
	return startServer(t, cfg)
}

// mcUDP sends one memcached request datagram with request id id and
// returns the reply datagrams (raw, headers included) in arrival order.
func mcUDP(t *testing.T, dial dialFunc, addr string, id uint16, total, reserved uint16, req string) [][]byte {
	t.Helper()
	c, err := dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b := make([]byte, 8, 8+len(req))
	binary.BigEndian.PutUint16(b, id)
	binary.BigEndian.PutUint16(b[4:], total)
	binary.BigEndian.PutUint16(b[6:], reserved)
	if _, err := c.Write(append(b, req...)); err != nil {
		t.Fatal(err)
	}
	var got [][]byte
	buf := make([]byte, 65536)
	for {
		// Until a quiet moment: a reply may be several messages, each
		// with its own count (a multi-get sends one per key).
		wait := 300 * time.Millisecond
		if len(got) > 0 {
			wait = 60 * time.Millisecond
		}
		_ = c.SetReadDeadline(time.Now().Add(wait))
		n, err := c.Read(buf)
		if err != nil {
			break
		}
		got = append(got, bytes.Clone(buf[:n]))
	}
	return got
}

// reassemble checks the frame headers of one reply message's datagrams
// (id, seq 0..n-1, total n, reserved 0, at most 1400 bytes) and returns
// its bytes.
func reassemble(t *testing.T, id uint16, ds [][]byte) []byte {
	t.Helper()
	if len(ds) == 0 {
		t.Fatal("no reply datagram")
	}
	parts := make([][]byte, len(ds))
	for _, d := range ds {
		if len(d) < 8 || len(d) > 1400 {
			t.Fatalf("datagram of %d bytes", len(d))
		}
		gid, seq, tot, res := binary.BigEndian.Uint16(d), binary.BigEndian.Uint16(d[2:]), binary.BigEndian.Uint16(d[4:]), binary.BigEndian.Uint16(d[6:])
		if gid != id || int(tot) != len(ds) || res != 0 || int(seq) >= len(ds) || parts[seq] != nil {
			t.Fatalf("frame header id=%d seq=%d total=%d reserved=%d, want id %d total %d", gid, seq, tot, res, id, len(ds))
		}
		parts[seq] = d[8:]
	}
	return bytes.Join(parts, nil)
}

// mcTCP sends req on a new connection and reads until the reply ends with
// end.
func mcTCP(t *testing.T, dial dialFunc, addr, req, end string) string {
	t.Helper()
	c, err := dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	var out []byte
	buf := make([]byte, 64<<10)
	for !bytes.HasSuffix(out, []byte(end)) {
		n, err := c.Read(buf)
		out = append(out, buf[:n]...)
		if err != nil {
			t.Fatalf("read after %q: %v", out[:min(len(out), 200)], err)
		}
	}
	return string(out)
}

func setCmd(key string, flags int, value string) string {
	return fmt.Sprintf("set %s %d 0 %d\r\n%s\r\n", key, flags, len(value), value)
}

// The UDP socket path against memcached 1.6 itself: the same requests get
// the same datagrams, byte for byte, including a reply of several
// datagrams; what memcached drops (total != 1, a short header) is dropped.
func TestMemcacheUDPMatchesMemcached(t *testing.T) {
	oracle := testutil.StartMemcached(t)
	ts := startMC(t, userspace.Config{Mode: userspace.ModeUDP, Workers: 1,
		TrustSrc: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	ours := ts.srv.MemcacheAddr().String()
	big := strings.Repeat("0123456789abcdef", 320) // 5120 bytes: 4 datagrams
	for _, addr := range []string{oracle, ours} {
		mcTCP(t, plainDial, addr, setCmd("small", 7, "hello")+setCmd("big", 3, big)+setCmd("n", 0, "41"), "STORED\r\nSTORED\r\nSTORED\r\n")
	}
	cases := []struct {
		name            string
		total, reserved uint16
		req             string
	}{
		{"hit", 1, 0, "get small\r\n"},
		{"miss", 1, 0, "get nothing\r\n"},
		{"multi-datagram", 1, 0, "get big\r\n"},
		{"multi-get", 1, 0, "get small big small\r\n"},
		{"multi-get from a miss", 1, 0, "get nothing small nothing\r\n"},
		{"incr", 1, 0, "incr n 1\r\n"},
		{"meta", 1, 0, "mg small v f k\r\n"},
		{"noreply", 1, 0, "set q 0 0 1 noreply\r\nx\r\n"},
		{"reserved set", 1, 9, "get small\r\n"},
		{"total 2", 2, 0, "get small\r\n"},
		{"total 0", 0, 0, "get small\r\n"},
		// "bogus" (memcached: ERROR) is not answered over UDP: see
		// mcserve's TestUDPNotARequestUnanswered.
		{"bad argument", 1, 0, "incr n abc\r\n"},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			id := uint16(100 + i)
			want := mcUDP(t, plainDial, oracle, id, c.total, c.reserved, c.req)
			got := mcUDP(t, plainDial, ours, id, c.total, c.reserved, c.req)
			if len(got) != len(want) {
				t.Fatalf("%d datagrams, memcached sends %d", len(got), len(want))
			}
			for j := range want {
				if !bytes.Equal(got[j], want[j]) {
					t.Fatalf("datagram %d:\n got % q\nwant % q", j, got[j][:min(len(got[j]), 80)], want[j][:min(len(want[j]), 80)])
				}
			}
		})
	}
	// A truncated header: dropped by both, and the next request answered.
	for _, addr := range []string{oracle, ours} {
		c, _ := net.Dial("udp", addr)
		_, _ = c.Write([]byte{0, 1, 0, 0, 0})
		c.Close()
	}
	if got := mcUDP(t, plainDial, ours, 7, 1, 0, "get small\r\n"); len(got) != 1 {
		t.Fatalf("after a truncated header: %d datagrams", len(got))
	}
}

// Without trust, a reply over the amplification bound is one SERVER_ERROR
// datagram; with it, the whole reply comes.
func TestMemcacheUDPAmplification(t *testing.T) {
	ts := startMC(t, userspace.Config{Mode: userspace.ModeUDP, Workers: 1})
	addr := ts.srv.MemcacheAddr().String()
	mcTCP(t, plainDial, addr, setCmd("k", 0, strings.Repeat("v", 200))+setCmd("s", 0, "x"), "STORED\r\nSTORED\r\n")
	got := mcUDP(t, plainDial, addr, 5, 1, 0, "get k\r\n")
	if len(got) != 1 || !strings.HasPrefix(string(reassemble(t, 5, got)), "SERVER_ERROR ") || !strings.Contains(string(got[0]), "TCP") {
		t.Fatalf("over the bound: %q", got)
	}
	if got := reassemble(t, 6, mcUDP(t, plainDial, addr, 6, 1, 0, "get s\r\n")); string(got) != "VALUE s 0 1\r\nx\r\nEND\r\n" {
		t.Fatalf("within the bound: %q", got)
	}
	var rejected uint64
	for _, w := range ts.srv.Stats() {
		rejected += w.Rejects[codec.ReasonAmplification].Load()
	}
	if rejected != 1 {
		t.Fatalf("amplification rejects counted: %d, want 1", rejected)
	}
}

// One store behind both protocols: set over one, read over the other.
func TestMemcacheAndReboundShareTheStore(t *testing.T) {
	ts := startMC(t, userspace.Config{Mode: userspace.ModeUDP, Workers: 1})
	ctx := context.Background()
	c, err := client.Dial(ctx, ts.srv.Addr().String(), client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Set(ctx, []byte("from-rebound"), []byte("r-value"), time.Minute); err != nil {
		t.Fatal(err)
	}
	mc := ts.srv.MemcacheAddr().String()
	if got := mcTCP(t, plainDial, mc, "get from-rebound\r\n", "END\r\n"); got != "VALUE from-rebound 0 7\r\nr-value\r\nEND\r\n" {
		t.Fatalf("memcached get of a Rebound SET: %q", got)
	}
	mcTCP(t, plainDial, mc, setCmd("from-mc", 9, "m-value"), "STORED\r\n")
	v, err := c.Get(ctx, []byte("from-mc"))
	if err != nil || string(v) != "m-value" {
		t.Fatalf("Rebound GET of a memcached set: %q, %v", v, err)
	}
	mcTCP(t, plainDial, mc, "delete from-mc\r\n", "DELETED\r\n")
	if _, err := c.Get(ctx, []byte("from-mc")); err == nil {
		t.Fatal("a memcached delete is not seen over the Rebound protocol")
	}

	// The memcached counters reach the metrics.
	rec := httptest.NewRecorder()
	userspace.MetricsHandler(ts.srv, nil).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, want := range []string{
		`rebound_memcache_outcomes_total{cmd="get",outcome="hit"} 1`,
		`rebound_memcache_outcomes_total{cmd="delete",outcome="hit"} 1`,
		`rebound_memcache_commands_total{cmd="set"} 1`,
	} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// TCP within bounds: a 1 MiB value in and out, a 1 GiB length refused
// without buffering it, a value that never finishes cut off by the idle
// timeout, and a long pipeline answered in order.
func TestMemcacheTCPLimits(t *testing.T) {
	ts := startMC(t, userspace.Config{Mode: userspace.ModeUDP, Workers: 1, IdleTimeout: 500 * time.Millisecond})
	addr := ts.srv.MemcacheAddr().String()

	big := strings.Repeat("b", 1<<20)
	mcTCP(t, plainDial, addr, setCmd("big", 1, big), "STORED\r\n")
	if got := mcTCP(t, plainDial, addr, "get big\r\n", "END\r\n"); got != "VALUE big 1 1048576\r\n"+big+"\r\nEND\r\n" {
		t.Fatalf("1 MiB get: %d bytes", len(got))
	}
	if got := mcTCP(t, plainDial, addr, "set huge 0 0 1073741824\r\n", "\r\n"); got != "SERVER_ERROR object too large for cache\r\n" {
		t.Fatalf("1 GiB length: %q", got)
	}

	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = io.WriteString(c, "set slow 0 0 100\r\nabc")
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.Read(make([]byte, 10)); err == nil {
		t.Fatalf("a value that never finishes: read %d bytes, want the connection closed", n)
	}

	var req, want strings.Builder
	for i := range 10000 {
		fmt.Fprintf(&req, "set k%d 0 0 %d\r\n%d\r\nget k%d\r\n", i, len(fmt.Sprint(i)), i, i)
		fmt.Fprintf(&want, "STORED\r\nVALUE k%d 0 %d\r\n%d\r\nEND\r\n", i, len(fmt.Sprint(i)), i)
	}
	if got := mcTCP(t, plainDial, addr, req.String(), "VALUE k9999 0 4\r\n9999\r\nEND\r\n"); got != want.String() {
		t.Fatalf("pipeline of 20000 commands: %d bytes, want %d", len(got), want.Len())
	}
}

// The AF_XDP path: memcached datagrams steered to the sockets and answered
// there, over IPv4 and IPv6, with replies of one and of several datagrams
// (extra frames from the pool) and the amplification bound, every frame
// home at the end.
func TestMemcacheXDP(t *testing.T) {
	for _, mode := range []bpf.Mode{bpf.ModeNative, bpf.ModeGeneric} {
		t.Run(mode.String(), func(t *testing.T) {
			l := testutil.NewLab(t, 1)
			st := store.New(store.Config{MemoryLimit: 64 << 20})
			cfg := userspace.Config{XDPMode: mode, Handler: userspace.NewService(userspace.ServiceConfig{Store: st}),
				Memcache: mcserve.New(mcserve.Config{Store: st}), MemcacheListen: ":11211",
				TrustSrc: []netip.Prefix{netip.MustParsePrefix("198.18.0.1/32")}}
			ts := startInLab(t, l, cfg)
			dial := dialIn(t, l.Cli)
			big := strings.Repeat("x", 3000)
			mcTCP(t, dial, "198.18.0.2:11211", setCmd("small", 2, "hi")+setCmd("big", 0, big), "STORED\r\nSTORED\r\n")
			before := xdpRx(ts)
			for _, dst := range []string{"198.18.0.2:11211", "[2001:2::2]:11211"} {
				if got := reassemble(t, 1, mcUDP(t, dial, dst, 1, 1, 0, "get small\r\n")); string(got) != "VALUE small 2 2\r\nhi\r\nEND\r\n" {
					t.Fatalf("%s small get: %q", dst, got)
				}
			}
			if got := reassemble(t, 2, mcUDP(t, dial, "198.18.0.2:11211", 2, 1, 0, "get big\r\n")); string(got) != "VALUE big 0 3000\r\n"+big+"\r\nEND\r\n" {
				t.Fatalf("trusted v4 big get: %d bytes", len(got))
			}
			if got := reassemble(t, 3, mcUDP(t, dial, "[2001:2::2]:11211", 3, 1, 0, "get big\r\n")); !strings.HasPrefix(string(got), "SERVER_ERROR") {
				t.Fatalf("untrusted v6 big get: %q", got)
			}
			if got := xdpRx(ts) - before; got < 4 {
				t.Fatalf("the AF_XDP path received %d memcached requests, want 4: traffic went elsewhere", got)
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

// A get naming keys on a line far longer than one read window is answered
// (the window widens geometrically, so the line is not parsed once per
// byte).
func TestMemcacheLongGetLine(t *testing.T) {
	ts := startMC(t, userspace.Config{Mode: userspace.ModeUDP, Workers: 1})
	addr := ts.srv.MemcacheAddr().String()
	mcTCP(t, plainDial, addr, setCmd("k", 0, "v"), "STORED\r\n")
	line := "get" + strings.Repeat(" k", 100000) + "\r\n" // 200 KB
	got := mcTCP(t, plainDial, addr, line, "END\r\n")
	if n := strings.Count(got, "VALUE k 0 1\r\nv\r\n"); n != 100000 {
		t.Fatalf("%d values for 100000 keys", n)
	}
}

// SetListen and the readers of the listeners (a memcached client's
// "stats", a scrape) may run at once.
func TestSetListenWhileReading(t *testing.T) {
	ts := startMC(t, userspace.Config{Mode: userspace.ModeUDP, Workers: 1})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 200 {
			ts.srv.MemcacheConns()
			_ = ts.srv.MemcacheAddr()
			_ = ts.srv.Addr()
		}
	}()
	for range 3 {
		if err := ts.srv.SetListen("127.0.0.1:"+strconv.Itoa(freeTCPPort(t)), "127.0.0.1:"+strconv.Itoa(freeTCPPort(t))); err != nil {
			t.Fatal(err)
		}
	}
	<-done
	if got := mcTCP(t, plainDial, ts.srv.MemcacheAddr().String(), "mn\r\n", "MN\r\n"); got != "MN\r\n" {
		t.Fatalf("after the moves: %q", got)
	}
}

func freeTCPPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// On a link whose MTU cannot carry memcached's 1400-byte datagrams, a
// reply that needs them is not sent to be dropped on the wire: the client
// is told to use TCP.
func TestMemcacheXDPSmallMTU(t *testing.T) {
	l := testutil.NewLab(t, 1)
	for _, v := range []testutil.Veth{l.SrvIf, l.CliIf} {
		link, err := v.NS.Netlink.LinkByIndex(v.Index)
		if err != nil {
			t.Fatal(err)
		}
		if err := v.NS.Netlink.LinkSetMTU(link, 1400); err != nil {
			t.Fatal(err)
		}
	}
	st := store.New(store.Config{MemoryLimit: 16 << 20})
	ts := startInLab(t, l, userspace.Config{XDPMode: bpf.ModeNative, Handler: userspace.NewService(userspace.ServiceConfig{Store: st}),
		Memcache: mcserve.New(mcserve.Config{Store: st}), MemcacheListen: ":11211",
		TrustSrc: []netip.Prefix{netip.MustParsePrefix("198.18.0.1/32")}})
	dial := dialIn(t, l.Cli)
	mcTCP(t, dial, "198.18.0.2:11211", setCmd("big", 0, strings.Repeat("x", 3000))+setCmd("small", 0, "s"), "STORED\r\nSTORED\r\n")
	if got := reassemble(t, 1, mcUDP(t, dial, "198.18.0.2:11211", 1, 1, 0, "get small\r\n")); string(got) != "VALUE small 0 1\r\ns\r\nEND\r\n" {
		t.Fatalf("small get: %q", got)
	}
	before := xdpRx(ts)
	if got := reassemble(t, 2, mcUDP(t, dial, "198.18.0.2:11211", 2, 1, 0, "get big\r\n")); !strings.HasPrefix(string(got), "SERVER_ERROR") {
		t.Fatalf("a reply of 1400-byte datagrams on a 1400-byte MTU: %q", got)
	}
	if xdpRx(ts) == before {
		t.Fatal("the request did not go through AF_XDP")
	}
}
