package udpbatch

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rebound-net/rebound/internal/testenv"
)

const sockBuf = 4 << 20

// listen opens a UDP socket with large buffers, closed at the test's end.
func listen(tb testing.TB, network, addr string) *net.UDPConn {
	tb.Helper()
	a, err := net.ResolveUDPAddr(network, addr)
	if err != nil {
		tb.Fatal(err)
	}
	uc, err := net.ListenUDP(network, a)
	if err != nil {
		tb.Skipf("listen %s %s: %v", network, addr, err)
	}
	tb.Cleanup(func() { uc.Close() })
	_ = uc.SetReadBuffer(sockBuf)
	_ = uc.SetWriteBuffer(sockBuf)
	return uc
}

func newConn(tb testing.TB, uc *net.UDPConn, batch, size int) *Conn {
	tb.Helper()
	c, err := New(uc, batch, size)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

func addrOf(uc *net.UDPConn) netip.AddrPort {
	a := uc.LocalAddr().(*net.UDPAddr).AddrPort()
	return netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
}

// dialTo returns where a client reaches a server bound to srv, which may
// be a wildcard address.
func dialTo(srv *net.UDPConn, loopback string) netip.AddrPort {
	return netip.AddrPortFrom(netip.MustParseAddr(loopback), addrOf(srv).Port())
}

// payload fills datagram k of a test: its index in the first two bytes,
// then a pattern that depends on it.
func payload(b []byte, k int) []byte {
	for j := range b {
		b[j] = byte(k*7 + j)
	}
	if len(b) >= 2 {
		binary.BigEndian.PutUint16(b, uint16(k))
	}
	return b
}

type family struct {
	name             string
	srvNet, srvAddr  string
	cliNet, cliAddr  string
	loopback         string
	srvFamilyWantIs6 bool
}

var families = []family{
	{"ipv4", "udp4", "127.0.0.1:0", "udp4", "127.0.0.1:0", "127.0.0.1", false},
	{"ipv6", "udp6", "[::1]:0", "udp6", "[::1]:0", "::1", true},
	// A dual-stack socket sees IPv4 clients as ::ffff:127.0.0.1.
	{"dualstack-v4-client", "udp", "[::]:0", "udp4", "127.0.0.1:0", "127.0.0.1", true},
	{"dualstack-v6-client", "udp", "[::]:0", "udp6", "[::1]:0", "::1", true},
}

// roundTrip sends count datagrams of size bytes from a plain client, reads
// them with a Conn of the given batch, replies to each in place with its
// bytes inverted and checks what the client gets back.
func roundTrip(t *testing.T, f family, batch, size, count int) {
	srv := listen(t, f.srvNet, f.srvAddr)
	cli := listen(t, f.cliNet, f.cliAddr)
	c := newConn(t, srv, batch, 65507)
	if got := c.family == unix.AF_INET6; got != f.srvFamilyWantIs6 {
		t.Fatalf("socket family AF_INET6 = %v, want %v", got, f.srvFamilyWantIs6)
	}
	dst := dialTo(srv, f.loopback)
	want := addrOf(cli)
	buf := make([]byte, 65536)
	for k := range count {
		if _, err := cli.WriteToUDPAddrPort(payload(buf[:size], k), dst); err != nil {
			t.Fatal(err)
		}
	}
	_ = srv.SetDeadline(time.Now().Add(10 * time.Second))
	exp := make([]byte, size)
	for got := 0; got < count; {
		n, err := c.Read()
		if err != nil {
			t.Fatalf("Read after %d datagrams: %v", got, err)
		}
		if n < 1 || n > batch {
			t.Fatalf("Read = %d, want 1..%d", n, batch)
		}
		for i := range n {
			if c.Len(i) != size || c.Truncated(i) {
				t.Fatalf("datagram %d: Len %d (truncated %v), want %d", got+i, c.Len(i), c.Truncated(i), size)
			}
			if from := c.From(i); from != want {
				t.Fatalf("datagram %d: From %v, want %v", got+i, from, want)
			}
			if string(c.Data(i)) != string(payload(exp, got+i)) {
				t.Fatalf("datagram %d: wrong bytes", got+i)
			}
			b := c.Buf(i)[:c.Len(i)]
			for j := range b {
				b[j] ^= 0xFF
			}
			if !c.Queue(b, i) {
				t.Fatalf("Queue %d of a batch of %d: full", i, batch)
			}
		}
		sent, err := c.Flush()
		if err != nil || sent != n {
			t.Fatalf("Flush = %d, %v; want %d, nil", sent, err, n)
		}
		got += n
	}
	if s := c.Stats(); s.Received != uint64(count) || s.Sent != uint64(count) || s.Dropped != 0 || s.Truncated != 0 {
		t.Fatalf("Stats = %+v", s)
	}
	_ = cli.SetReadDeadline(time.Now().Add(10 * time.Second))
	for k := range count {
		n, from, err := cli.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("reply %d: %v", k, err)
		}
		if from.Addr().Unmap() != dst.Addr() || from.Port() != dst.Port() {
			t.Fatalf("reply %d from %v, want %v", k, from, dst)
		}
		if n != size {
			t.Fatalf("reply %d: %d bytes, want %d", k, n, size)
		}
		idx := k
		if size >= 2 {
			idx = int(binary.BigEndian.Uint16(buf) ^ 0xFFFF)
		}
		payload(exp, idx)
		for j := range exp {
			if buf[j] != ^exp[j] {
				t.Fatalf("reply %d (datagram %d): byte %d = %#x, want %#x", k, idx, j, buf[j], ^exp[j])
			}
		}
	}
}

func TestRoundTrip(t *testing.T) {
	tests := []struct{ batch, size, count int }{
		{1, 0, 3},
		{1, 1, 1},
		{2, 65507, 5},
		{7, 0, 20},
		{7, 1472, 20},
		{16, 9000, 40},
		{32, 65507, 48},
		{64, 0, 64},
		{64, 100, 200},
		{64, 1472, 64},
		{64, 65507, 64},
	}
	for _, f := range families {
		for _, tt := range tests {
			t.Run(f.name+"/"+itoa(tt.batch)+"x"+itoa(tt.size)+"B", func(t *testing.T) {
				roundTrip(t, f, tt.batch, tt.size, tt.count)
			})
		}
	}
}

// TestEveryBatch runs every batch size from 1 to 64 with one batch and a
// half of datagrams, so that Read fills a whole batch, then part of one.
func TestEveryBatch(t *testing.T) {
	for _, f := range families[:2] {
		for batch := 1; batch <= 64; batch++ {
			t.Run(f.name+"/"+itoa(batch), func(t *testing.T) {
				roundTrip(t, f, batch, 37, batch+batch/2+1)
			})
		}
	}
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for ; n > 0; n /= 10 {
		i--
		b[i] = byte('0' + n%10)
	}
	return string(b[i:])
}

// readOne reads exactly one datagram into slot 0.
func readOne(t *testing.T, c *Conn) {
	t.Helper()
	n, err := c.Read()
	if err != nil || n != 1 {
		t.Fatalf("Read = %d, %v; want 1, nil", n, err)
	}
}

func TestQueueOverflow(t *testing.T) {
	srv := listen(t, "udp4", "127.0.0.1:0")
	cli := listen(t, "udp4", "127.0.0.1:0")
	c := newConn(t, srv, 4, 2048)
	if sent, err := c.Flush(); sent != 0 || err != nil {
		t.Fatalf("Flush of nothing = %d, %v; want 0, nil", sent, err)
	}
	if _, err := cli.WriteToUDPAddrPort([]byte("q"), addrOf(srv)); err != nil {
		t.Fatal(err)
	}
	readOne(t, c)
	msg := []byte("reply")
	for k := range 4 {
		if !c.Queue(msg, 0) {
			t.Fatalf("Queue %d of 4: full", k)
		}
	}
	if c.Queue(msg, 0) || c.QueueTo(msg, addrOf(cli)) || c.Queued() != 4 {
		t.Fatalf("Queue past the batch succeeded (Queued %d)", c.Queued())
	}
	if sent, err := c.Flush(); sent != 4 || err != nil {
		t.Fatalf("Flush = %d, %v; want 4, nil", sent, err)
	}
	if !c.Queue(msg, 0) || c.Queued() != 1 {
		t.Fatal("Queue after Flush failed")
	}
	if sent, err := c.Flush(); sent != 1 || err != nil {
		t.Fatalf("Flush = %d, %v; want 1, nil", sent, err)
	}
	_ = cli.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64)
	for k := range 5 {
		n, _, err := cli.ReadFromUDPAddrPort(buf)
		if err != nil || string(buf[:n]) != "reply" {
			t.Fatalf("reply %d: %q, %v", k, buf[:n], err)
		}
	}
}

// TestReadFlushesQueued: a reply left queued is sent by the next Read,
// before its buffer is reused.
func TestReadFlushesQueued(t *testing.T) {
	srv := listen(t, "udp4", "127.0.0.1:0")
	cli := listen(t, "udp4", "127.0.0.1:0")
	c := newConn(t, srv, 1, 2048)
	_ = srv.SetDeadline(time.Now().Add(5 * time.Second))
	_, _ = cli.WriteToUDPAddrPort([]byte("one"), addrOf(srv))
	readOne(t, c)
	c.Queue(c.Data(0), 0)
	_, _ = cli.WriteToUDPAddrPort([]byte("two"), addrOf(srv))
	readOne(t, c)
	if c.Queued() != 0 || c.Stats().Sent != 1 || string(c.Data(0)) != "two" {
		t.Fatalf("Queued %d, Stats %+v, data %q", c.Queued(), c.Stats(), c.Data(0))
	}
	buf := make([]byte, 64)
	_ = cli.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, _, err := cli.ReadFromUDPAddrPort(buf); err != nil || string(buf[:n]) != "one" {
		t.Fatalf("reply %q, %v; want \"one\"", buf[:n], err)
	}
}

func TestTruncated(t *testing.T) {
	srv := listen(t, "udp4", "127.0.0.1:0")
	cli := listen(t, "udp4", "127.0.0.1:0")
	c := newConn(t, srv, 2, 100)
	_ = srv.SetDeadline(time.Now().Add(5 * time.Second))
	_, _ = cli.WriteToUDPAddrPort(make([]byte, 300), addrOf(srv))
	readOne(t, c)
	if c.Len(0) != 100 || !c.Truncated(0) || c.Stats().Truncated != 1 || len(c.Buf(0)) != 100 {
		t.Fatalf("Len %d, Truncated %v, Stats %+v", c.Len(0), c.Truncated(0), c.Stats())
	}
}

func TestQueueTo(t *testing.T) {
	tests := []struct {
		name            string
		srvNet, srvAddr string
		to              []string // client networks, "" for a zero AddrPort
		sent, dropped   int
	}{
		{"ipv4", "udp4", "127.0.0.1:0", []string{"udp4", "udp6", "udp4", ""}, 2, 2},
		{"ipv6", "udp6", "[::1]:0", []string{"udp6", "udp6"}, 2, 0},
		{"dualstack", "udp", "[::]:0", []string{"udp4", "udp6", "", "udp4"}, 3, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := listen(t, tt.srvNet, tt.srvAddr)
			c := newConn(t, srv, 8, 2048)
			var clis []*net.UDPConn
			for k, network := range tt.to {
				to := netip.AddrPort{}
				if network != "" {
					addr := map[string]string{"udp4": "127.0.0.1:0", "udp6": "[::1]:0"}[network]
					cli := listen(t, network, addr)
					to = addrOf(cli)
					if network == "udp4" && k == 0 {
						to = netip.AddrPortFrom(netip.AddrFrom16(to.Addr().As16()), to.Port()) // mapped
					}
					clis = append(clis, cli)
				}
				if !c.QueueTo([]byte("to "+network), to) {
					t.Fatal("QueueTo: full")
				}
			}
			sent, err := c.Flush()
			if sent != tt.sent || (err != nil) != (tt.dropped > 0) || c.Stats().Dropped != uint64(tt.dropped) {
				t.Fatalf("Flush = %d, %v (Stats %+v); want %d sent, %d dropped", sent, err, c.Stats(), tt.sent, tt.dropped)
			}
			if err != nil {
				var e unix.Errno
				if !errors.As(err, &e) {
					t.Fatalf("Flush error %T %v, want a unix.Errno", err, err)
				}
			}
			buf := make([]byte, 64)
			got := 0
			for _, cli := range clis {
				_ = cli.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
				if _, _, err := cli.ReadFromUDPAddrPort(buf); err == nil {
					got++
				}
			}
			if got != tt.sent {
				t.Fatalf("%d clients got their datagram, want %d", got, tt.sent)
			}
		})
	}
}

// TestClosedPort replies to a client that has gone: the ICMP port
// unreachable that comes back must not break the loop, whether the socket
// reports it (IP_RECVERR) or not.
func TestClosedPort(t *testing.T) {
	tests := []struct {
		name      string
		net, addr string
		recverr   bool
	}{
		{"ipv4", "udp4", "127.0.0.1:0", false},
		{"ipv4-recverr", "udp4", "127.0.0.1:0", true},
		{"ipv6", "udp6", "[::1]:0", false},
		{"ipv6-recverr", "udp6", "[::1]:0", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := listen(t, tt.net, tt.addr)
			if tt.recverr {
				rc, _ := srv.SyscallConn()
				_ = rc.Control(func(fd uintptr) {
					level, opt := unix.IPPROTO_IP, unix.IP_RECVERR
					if tt.net == "udp6" {
						level, opt = unix.IPPROTO_IPV6, unix.IPV6_RECVERR
					}
					if err := unix.SetsockoptInt(int(fd), level, opt, 1); err != nil {
						t.Fatal(err)
					}
				})
			}
			c := newConn(t, srv, 8, 2048)
			_ = srv.SetDeadline(time.Now().Add(5 * time.Second))
			live := listen(t, tt.net, tt.addr)
			for round := range 3 {
				gone, err := net.ListenUDP(tt.net, net.UDPAddrFromAddrPort(netip.AddrPortFrom(addrOf(live).Addr(), 0)))
				if err != nil {
					t.Fatal(err)
				}
				_, _ = gone.WriteToUDPAddrPort([]byte("bye"), addrOf(srv))
				readOne(t, c)
				gone.Close()
				// Twice to the closed port: the second send may meet the
				// ICMP error of the first.
				c.Queue(c.Data(0), 0)
				c.Queue(c.Data(0), 0)
				if _, err := c.Flush(); err != nil && !errors.Is(err, syscall.ECONNREFUSED) {
					t.Fatalf("round %d: Flush to a closed port: %v", round, err)
				}
				time.Sleep(10 * time.Millisecond) // the ICMP error arrives
				_, _ = live.WriteToUDPAddrPort([]byte("hi"), addrOf(srv))
				readOne(t, c)
				if string(c.Data(0)) != "hi" || c.From(0) != addrOf(live) {
					t.Fatalf("round %d: read %q from %v", round, c.Data(0), c.From(0))
				}
				c.Queue(c.Data(0), 0)
				if _, err := c.Flush(); err != nil {
					// A refusal of the live reply would be a held ICMP
					// error charged to the wrong datagram.
					t.Fatalf("round %d: Flush to the live client: %v (Stats %+v)", round, err, c.Stats())
				}
				buf := make([]byte, 16)
				_ = live.SetReadDeadline(time.Now().Add(5 * time.Second))
				if n, _, err := live.ReadFromUDPAddrPort(buf); err != nil || string(buf[:n]) != "hi" {
					t.Fatalf("round %d: live client got %q, %v", round, buf[:n], err)
				}
			}
			s := c.Stats()
			t.Logf("Stats %+v", s)
			if tt.recverr && s.RxErrors+s.Dropped == 0 {
				t.Fatal("IP_RECVERR set, yet no ICMP error was seen: the test no longer tests it")
			}
		})
	}
}

func TestClosed(t *testing.T) {
	for _, f := range families[:2] {
		t.Run(f.name, func(t *testing.T) {
			srv := listen(t, f.srvNet, f.srvAddr)
			c := newConn(t, srv, 4, 2048)
			done := make(chan error, 1)
			go func() {
				_, err := c.Read()
				done <- err
			}()
			time.Sleep(50 * time.Millisecond) // Read waits in the netpoller
			select {
			case err := <-done:
				t.Fatalf("Read returned %v before the close", err)
			default:
			}
			srv.Close()
			select {
			case err := <-done:
				if err != net.ErrClosed {
					t.Fatalf("Read after close = %v, want net.ErrClosed", err)
				}
			case <-time.After(2 * time.Second):
				t.Fatal("Read still blocked 2s after close")
			}
			if n, err := c.Read(); n != 0 || err != net.ErrClosed {
				t.Fatalf("Read = %d, %v; want 0, net.ErrClosed", n, err)
			}
			if n, err := c.Flush(); n != 0 || err != net.ErrClosed {
				t.Fatalf("Flush of nothing = %d, %v; want 0, net.ErrClosed", n, err)
			}
			c.QueueTo([]byte("x"), netip.MustParseAddrPort("127.0.0.1:9"))
			if n, err := c.Flush(); n != 0 || err != net.ErrClosed || c.Queued() != 0 {
				t.Fatalf("Flush = %d, %v, Queued %d; want 0, net.ErrClosed, 0", n, err, c.Queued())
			}
		})
	}
}

func TestDeadline(t *testing.T) {
	srv := listen(t, "udp4", "127.0.0.1:0")
	c := newConn(t, srv, 4, 2048)
	_ = srv.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if n, err := c.Read(); n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read = %d, %v; want 0, deadline exceeded", n, err)
	}
}

func TestNewErrors(t *testing.T) {
	srv := listen(t, "udp4", "127.0.0.1:0")
	for _, tt := range []struct{ batch, size int }{{0, 10}, {1, 0}, {-1, -1}} {
		if _, err := New(srv, tt.batch, tt.size); err == nil {
			t.Errorf("New(batch %d, size %d) succeeded", tt.batch, tt.size)
		}
	}
}

// TestManySources: each datagram of a batch is reported with its own source
// and each reply goes back to it.
func TestManySources(t *testing.T) {
	for _, f := range families {
		t.Run(f.name, func(t *testing.T) {
			srv := listen(t, f.srvNet, f.srvAddr)
			c := newConn(t, srv, 16, 2048)
			_ = srv.SetDeadline(time.Now().Add(5 * time.Second))
			clis := make([]*net.UDPConn, 8)
			for k := range clis {
				clis[k] = listen(t, f.cliNet, f.cliAddr)
			}
			for round := range 2 {
				for k, cli := range clis {
					if _, err := cli.WriteToUDPAddrPort([]byte{byte(k), byte(round)}, dialTo(srv, f.loopback)); err != nil {
						t.Fatal(err)
					}
				}
			}
			for got := 0; got < 2*len(clis); {
				n, err := c.Read()
				if err != nil {
					t.Fatal(err)
				}
				for i := range n {
					k := int(c.Data(i)[0])
					if c.From(i) != addrOf(clis[k]) {
						t.Fatalf("datagram of client %d from %v, want %v", k, c.From(i), addrOf(clis[k]))
					}
					c.Queue(c.Data(i), i)
				}
				if sent, err := c.Flush(); sent != n || err != nil {
					t.Fatalf("Flush = %d, %v", sent, err)
				}
				got += n
			}
			buf := make([]byte, 16)
			for k, cli := range clis {
				_ = cli.SetReadDeadline(time.Now().Add(5 * time.Second))
				for range 2 {
					n, _, err := cli.ReadFromUDPAddrPort(buf)
					if err != nil || n != 2 || int(buf[0]) != k {
						t.Fatalf("client %d got %v, %v", k, buf[:n], err)
					}
				}
			}
		})
	}
}

// Dst reports the destination of each datagram and whether it was
// addressed to a local unicast address: true for 127.0.0.1 and ::1, false
// for the limited broadcast address, on IPv4, IPv6 and dual-stack sockets.
func TestDst(t *testing.T) {
	for _, c := range []struct {
		network, listen, dst string
		unicast              bool
	}{
		{"udp4", "127.0.0.1:0", "127.0.0.1", true},
		{"udp6", "[::1]:0", "::1", true},
		{"udp", ":0", "127.0.0.1", true},
		{"udp4", "0.0.0.0:0", "255.255.255.255", false},
		{"udp", ":0", "255.255.255.255", false},
	} {
		t.Run(c.network+" "+c.dst, func(t *testing.T) {
			srv, err := net.ListenPacket(c.network, c.listen)
			if err != nil {
				testenv.Skip(t, "listen %s %s: %v", c.network, c.listen, err)
			}
			defer srv.Close()
			b, err := New(srv.(*net.UDPConn), 4, 2048)
			if err != nil {
				t.Fatal(err)
			}
			port := srv.LocalAddr().(*net.UDPAddr).Port
			cl, err := net.ListenPacket("udp4", "0.0.0.0:0")
			if strings.Contains(c.dst, ":") {
				cl, err = net.ListenPacket("udp6", "[::1]:0")
			}
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			if c.dst == "255.255.255.255" {
				rc, _ := cl.(*net.UDPConn).SyscallConn()
				_ = rc.Control(func(fd uintptr) { _ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_BROADCAST, 1) })
			}
			to := &net.UDPAddr{IP: net.ParseIP(c.dst), Port: port}
			if _, err := cl.WriteTo([]byte("x"), to); err != nil {
				testenv.Skip(t, "send to %s: %v (no route for it here)", to, err)
			}
			_ = srv.SetReadDeadline(time.Now().Add(2 * time.Second))
			if _, err := b.Read(); err != nil {
				if c.dst == "255.255.255.255" {
					testenv.Skip(t, "broadcast not delivered here: %v", err)
				}
				t.Fatal(err)
			}
			got, unicast := b.Dst(0)
			if got != netip.MustParseAddr(c.dst) || unicast != c.unicast {
				t.Fatalf("Dst = %v, unicast %v; want %s, %v", got, unicast, c.dst, c.unicast)
			}
		})
	}
}

// gsoPlan is what TestGSO sends: datagram sizes, and to which of two
// clients each goes. Runs of one size to one client are what GSO groups;
// the rest breaks runs in every way build knows: a shorter datagram (which
// ends a run), a longer one, an empty one, another client, a size too big
// to group, and more than gsoMaxSegs of one size.
func gsoPlan() (sizes []int, to []int) {
	add := func(n, size, dst int) {
		for range n {
			sizes, to = append(sizes, size), append(to, dst)
		}
	}
	add(5, 100, 0)
	add(1, 60, 0)
	add(3, 100, 0)
	add(2, 200, 0)
	add(1, 0, 0)
	add(4, 100, 1)
	add(1, 100, 0)
	add(3, 2000, 1)
	add(70, 64, 0)
	add(2, 1400, 1)
	add(2, 1401, 1)
	return sizes, to
}

// TestGSO sends the plan with GSO on and off, and once through a socket
// whose kernel refuses GSO messages, and checks that every client gets
// exactly its datagrams, in order, through the kernel's receive path
// (which checks their UDP checksums).
func TestGSO(t *testing.T) {
	for _, tc := range []struct {
		name    string
		gso     bool
		noCheck bool // SO_NO_CHECK: the kernel refuses UDP_SEGMENT with EINVAL
	}{{"on", true, false}, {"off", false, false}, {"refused", true, true}} {
		t.Run(tc.name, func(t *testing.T) {
			su := listen(t, "udp4", "127.0.0.1:0")
			clis := []*net.UDPConn{listen(t, "udp4", "127.0.0.1:0"), listen(t, "udp4", "127.0.0.1:0")}
			c := newConn(t, su, 128, 2048)
			if got := c.SetGSO(tc.gso); got != tc.gso {
				testenv.Skip(t, "SetGSO(%v) = %v: the kernel lacks UDP_SEGMENT (Linux 4.18)", tc.gso, got)
			}
			if tc.noCheck {
				rc, _ := su.SyscallConn()
				var serr error
				_ = rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_NO_CHECK, 1) })
				if serr != nil {
					t.Fatalf("SO_NO_CHECK: %v", serr)
				}
			}
			sizes, to := gsoPlan()
			bufs := make([][]byte, len(sizes))
			for k, n := range sizes {
				bufs[k] = payload(make([]byte, n), k)
				if !c.QueueTo(bufs[k], addrOf(clis[to[k]])) {
					if _, err := c.Flush(); err != nil {
						t.Fatal(err)
					}
					c.QueueTo(bufs[k], addrOf(clis[to[k]]))
				}
			}
			if _, err := c.Flush(); err != nil {
				t.Fatal(err)
			}
			st := c.Stats()
			if st.Sent != uint64(len(sizes)) || st.Dropped != 0 {
				t.Fatalf("Stats = %+v, want %d sent", st, len(sizes))
			}
			switch {
			case tc.noCheck && (!st.GSOOff || st.GSOSends != 0):
				t.Fatalf("GSO refused by the kernel: Stats = %+v, want GSOOff and no GSO sends", st)
			case !tc.gso && (!st.GSOOff || st.GSOSends != 0):
				t.Fatalf("GSO off: Stats = %+v", st)
			case tc.gso && !tc.noCheck && (st.GSOOff || st.GSOSends < 6):
				// runs of 5, 3, 2, 4 (+1 shorter), 64 and 6, 2: at least 6
				t.Fatalf("GSO on: Stats = %+v, want at least 6 GSO sends", st)
			}
			buf := make([]byte, 4096)
			for ci, cu := range clis {
				_ = cu.SetReadDeadline(time.Now().Add(5 * time.Second))
				for k := range sizes {
					if to[k] != ci {
						continue
					}
					n, from, err := cu.ReadFromUDPAddrPort(buf)
					if err != nil {
						t.Fatalf("client %d, datagram %d: %v", ci, k, err)
					}
					if from.Port() != addrOf(su).Port() {
						t.Fatalf("client %d, datagram %d from %v", ci, k, from)
					}
					if string(buf[:n]) != string(bufs[k]) {
						t.Fatalf("client %d: got %d bytes %x..., want datagram %d of %d bytes", ci, n, buf[:min(n, 4)], k, len(bufs[k]))
					}
				}
				_ = cu.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
				if n, _, err := cu.ReadFromUDPAddrPort(buf); err == nil {
					t.Fatalf("client %d: an extra datagram of %d bytes", ci, n)
				}
			}
		})
	}
}
