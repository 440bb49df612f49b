package e2e

import (
	"bufio"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rebound-net/rebound/internal/testutil"
)

// No reply loops (the "loop DoS" class): one spoofed datagram whose source
// is a memcached peer's UDP port and whose payload is a reply ("ERROR")
// must start no exchange between Rebound and that peer. memcached 1.6
// answers ERROR to ERROR, so a server that answers it too bounces
// datagrams with it forever. Both paths: the UDP sockets (udp mode, on
// loopback) and the AF_XDP workers (xdp mode, the veth lab).

// spoofed is memcached's 8-byte UDP frame header and payload.
func spoofed(payload string) []byte {
	b := make([]byte, 8, 8+len(payload))
	binary.BigEndian.PutUint16(b[0:], 0x4242)
	binary.BigEndian.PutUint16(b[4:], 1)
	return append(b, payload...)
}

// memcachedBytesRead reads memcached's bytes_read (every byte it received,
// UDP included) over TCP from addr, dialled by dial.
func memcachedBytesRead(t *testing.T, dial func() (net.Conn, error)) int64 {
	t.Helper()
	c, err := dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := c.Write([]byte("stats\r\n")); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("stats: %v", err)
		}
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "STAT bytes_read "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
		if strings.HasPrefix(line, "END") {
			t.Fatal("stats: no bytes_read")
		}
	}
}

// loopCheck sends the spoofed datagram with inject, waits, and fails if the
// memcached peer received more than our own stats commands: a loop moves
// hundreds of thousands of datagrams a second.
func loopCheck(t *testing.T, inject func(), peerRead func() int64, drops func() float64) {
	t.Helper()
	before, dropsBefore := peerRead(), drops()
	inject()
	deadline := time.Now().Add(3 * time.Second)
	for drops() == dropsBefore && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if drops() == dropsBefore {
		t.Fatal("the spoofed datagram was not counted as not_request: did it reach the server?")
	}
	time.Sleep(500 * time.Millisecond) // a loop would be well under way
	after := peerRead()
	// Between the two reads the peer received one "stats\r\n" of ours.
	if got := after - before - int64(len("stats\r\n")); got != 0 {
		t.Errorf("the memcached peer received %d bytes after one spoofed datagram: a reply loop", got)
	}
}

// promCounter sums the samples of a metric whose line contains every one of
// parts, from a Prometheus text endpoint fetched by get.
func promCounter(t *testing.T, text string, parts ...string) float64 {
	t.Helper()
	var sum float64
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(line, p)
		}
		if i := strings.LastIndexByte(line, ' '); ok && i > 0 {
			v, err := strconv.ParseFloat(line[i+1:], 64)
			if err == nil {
				sum += v
			}
		}
	}
	return sum
}

// rawIPv4 sends one IPv4/UDP datagram with the given source and
// destination through a raw socket (the source is spoofed: root only).
func rawIPv4(t *testing.T, src, dst *net.UDPAddr, payload []byte) {
	t.Helper()
	frame := testutil.Frame(t, testutil.Packet{Src: src.IP.To4(), Dst: dst.IP.To4(),
		SrcPort: uint16(src.Port), DstPort: uint16(dst.Port), Payload: payload})
	pkt := frame[14:] // past the Ethernet header
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
	if err != nil {
		t.Fatalf("raw socket: %v", err)
	}
	defer unix.Close(fd)
	to := &unix.SockaddrInet4{}
	copy(to.Addr[:], dst.IP.To4())
	if err := unix.Sendto(fd, pkt, 0, to); err != nil {
		t.Fatalf("send spoofed datagram: %v", err)
	}
}

func TestNoReplyLoopUDP(t *testing.T) {
	testutil.RequirePriv(t) // a spoofed source needs a raw socket
	requireMemcacheServe(t)
	peer := testutil.StartMemcached(t)
	peerAddr, err := net.ResolveUDPAddr("udp", peer)
	if err != nil {
		t.Fatal(err)
	}
	mp, metrics := mcFreePort(t), mcFreePort(t)
	rb := net.JoinHostPort("127.0.0.1", strconv.Itoa(mcFreePort(t)))
	mca := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: mp}
	metricsAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(metrics))
	if _, err := startLocalServer(t, "--mode", "udp", "--workers", "1", "--listen", rb,
		"--memcache-listen", mca.String(), "--metrics", metricsAddr); err != nil {
		t.Fatal(err)
	}
	scrape := func() string {
		resp, err := http.Get("http://" + metricsAddr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	dialPeer := func() (net.Conn, error) { return net.DialTimeout("tcp", peer, time.Second) }
	cases := []struct {
		name    string
		src     *net.UDPAddr
		payload string
		reason  string
	}{
		// memcached's reply to what it does not know, from its port.
		{"ERROR from a memcached peer", peerAddr, "ERROR\r\n", "not_request"},
		// A request from our own port to ourselves: answering it would
		// talk to ourselves.
		{"get from our own port", mca, "get k\r\n", "own_source"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			loopCheck(t,
				func() { rawIPv4(t, tc.src, mca, spoofed(tc.payload)) },
				func() int64 { return memcachedBytesRead(t, dialPeer) },
				func() float64 {
					return promCounter(t, scrape(), "rebound_drops_total", `reason="`+tc.reason+`"`)
				})
		})
	}
}

func TestNoReplyLoopXDP(t *testing.T) {
	tg := startMC(t, mcReboundXDP, mcOptions{})
	l := tg.Lab
	// The memcached peer runs on the client end of the lab.
	peer := &net.UDPAddr{IP: l.CliIP4, Port: 11311}
	cmd := exec.Command("ip", "netns", "exec", l.Cli.Name, testutil.MemcachedPath,
		"-l", peer.IP.String(), "-p", strconv.Itoa(peer.Port), "-U", strconv.Itoa(peer.Port), "-t", "1", "-u", "root")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	dialPeer := func() (c net.Conn, err error) {
		l.Cli.Do(t, func() { c, err = net.DialTimeout("tcp", peer.String(), time.Second) })
		return c, err
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := dialPeer()
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("memcached peer in the client namespace: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	raw := newRawPeer(t, l)
	srv := &net.UDPAddr{IP: l.SrvIP4, Port: 11211}
	frame := testutil.Frame(t, testutil.Packet{Src: peer.IP.To4(), Dst: srv.IP.To4(),
		SrcPort: uint16(peer.Port), DstPort: uint16(srv.Port), Payload: spoofed("ERROR\r\n")})
	loopCheck(t,
		func() { raw.send(t, frame) },
		func() int64 { return memcachedBytesRead(t, dialPeer) },
		func() float64 {
			var sum float64
			for k, v := range tg.counters(t) {
				if strings.HasPrefix(k, "rebound_drops_total") && strings.Contains(k, `reason="not_request"`) {
					sum += v
				}
			}
			return sum
		})
}
