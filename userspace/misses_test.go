package userspace_test

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/rebound-net/rebound/internal/testutil"
	"github.com/rebound-net/rebound/userspace"
	"github.com/rebound-net/rebound/userspace/mcserve"
	"github.com/rebound-net/rebound/userspace/store"
)

// TestAcknowledgedSetsAreNotMissed is issue 18's item 7 as memcaslap saw
// it: on a server whose store earlier clients had filled (memcached's own
// t/ files, then earlier memcaslap runs, reading what they set), a UDP
// client that sets keys and reads them back must find every one of them,
// as it does on memcached 1.6 with the same memory. The store once
// evicted by frequency (W-TinyLFU): the popular old items stayed and
// almost every new set, acknowledged STORED, was gone at once.
func TestAcknowledgedSetsAreNotMissed(t *testing.T) {
	const mem = 8 << 20
	oracle := testutil.StartMemcached(t, "-m", "8")
	st := store.New(store.Config{MemoryLimit: mem})
	ts := startServer(t, userspace.Config{
		Mode: userspace.ModeUDP, Workers: 1, MemcacheListen: "127.0.0.1:0",
		Handler:  userspace.NewService(userspace.ServiceConfig{Store: st}),
		Memcache: mcserve.New(mcserve.Config{Store: st}),
		TrustSrc: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
	})
	ours := ts.srv.MemcacheAddr().String()

	const valLen = 900
	perItem := valLen + 20 + store.ItemOverhead
	old := 2 * mem / perItem    // the earlier clients: twice what fits
	window := mem / 8 / perItem // read back this many sets later
	fresh := old
	value := func(key string) []byte {
		return bytes.Repeat([]byte(key[len(key)-8:]), valLen/8+1)[:valLen]
	}
	for _, srv := range []struct{ name, addr string }{{"memcached", oracle}, {"rebound", ours}} {
		t.Run(srv.name, func(t *testing.T) {
			// t/issue_70.t's bytes, which once seemed to leave state behind.
			mcTCP(t, plainDial, srv.addr, "set issue70 0 0 0\r\n\r\nset issue70 0 0 -1\r\n", "CLIENT_ERROR bad command line format\r\n")
			mcTCP(t, plainDial, srv.addr, "set issue70 0 0 2147483647\r\nscoobyscoobydoo", "CLIENT_ERROR bad command line format\r\n")

			// Earlier clients: each key set, then read three times.
			var req bytes.Buffer
			for i := range old {
				k := fmt.Sprintf("old-%012d", i)
				fmt.Fprintf(&req, "set %s 0 0 %d noreply\r\n%s\r\nget %s %s %s\r\n", k, valLen, value(k), k, k, k)
			}
			pipelineTCP(t, srv.addr, req.Bytes(), old)

			// The memcaslap-like client over UDP: set, get it, and get
			// what it set an eighth of the memory ago.
			c, err := net.Dial("udp", srv.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			u := &udpClient{c: c, buf: make([]byte, 2048)}
			var misses, lateMisses, stale int
			check := func(k string) bool {
				got, ok := u.get(t, k)
				if ok && !bytes.Equal(got, value(k)) {
					stale++
				}
				return ok
			}
			for i := range fresh {
				k := fmt.Sprintf("new-%012d", i)
				if r := u.do(t, fmt.Sprintf("set %s 0 0 %d\r\n%s\r\n", k, valLen, value(k))); r != "STORED\r\n" {
					t.Fatalf("set %s: %q", k, r)
				}
				if !check(k) {
					misses++
				}
				if i >= window && !check(fmt.Sprintf("new-%012d", i-window)) {
					lateMisses++
				}
			}
			if misses+lateMisses+stale != 0 {
				t.Fatalf("%s: of %d acknowledged sets, %d missed at once, %d missed %d sets later, %d read stale",
					srv.name, fresh, misses, lateMisses, window, stale)
			}
		})
	}
}

// pipelineTCP writes req on one connection while reading its replies,
// until n gets have ended.
func pipelineTCP(t *testing.T, addr string, req []byte, n int) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(req)
		werr <- err
	}()
	r := bufio.NewReaderSize(c, 64<<10)
	for ends := 0; ends < n; {
		line, err := r.ReadSlice('\n')
		if err != nil {
			t.Fatalf("after %d replies: %v", ends, err)
		}
		switch {
		case bytes.Equal(line, []byte("END\r\n")):
			ends++
		case bytes.HasPrefix(line, []byte("VALUE ")):
			var k string
			var flags, size int
			if _, err := fmt.Sscanf(string(line), "VALUE %s %d %d\r\n", &k, &flags, &size); err != nil {
				t.Fatalf("%q: %v", line, err)
			}
			if _, err := r.Discard(size + 2); err != nil {
				t.Fatal(err)
			}
		default:
			t.Fatalf("reply %q", line)
		}
	}
	if err := <-werr; err != nil {
		t.Fatal(err)
	}
}

// udpClient sends one memcached request at a time over UDP.
type udpClient struct {
	c   net.Conn
	id  uint16
	buf []byte
}

// do sends req and returns the reply (one datagram, at most 1400 bytes).
func (u *udpClient) do(t *testing.T, req string) string {
	t.Helper()
	u.id++
	b := make([]byte, 8, 8+len(req))
	binary.BigEndian.PutUint16(b, u.id)
	binary.BigEndian.PutUint16(b[4:], 1)
	if _, err := u.c.Write(append(b, req...)); err != nil {
		t.Fatal(err)
	}
	_ = u.c.SetReadDeadline(time.Now().Add(2 * time.Second))
	for {
		n, err := u.c.Read(u.buf)
		if err != nil {
			t.Fatalf("%.40q: no reply: %v", req, err)
		}
		if n < 8 || binary.BigEndian.Uint16(u.buf) != u.id {
			continue // a late reply to an earlier request
		}
		if binary.BigEndian.Uint16(u.buf[4:]) != 1 {
			t.Fatalf("%.40q: a reply of %d datagrams", req, binary.BigEndian.Uint16(u.buf[4:]))
		}
		return string(u.buf[8:n])
	}
}

// get returns key's value, or false on a miss.
func (u *udpClient) get(t *testing.T, key string) ([]byte, bool) {
	t.Helper()
	r := u.do(t, "get "+key+"\r\n")
	if r == "END\r\n" {
		return nil, false
	}
	head, rest, ok := strings.Cut(r, "\r\n")
	var k string
	var flags, size int
	if _, err := fmt.Sscanf(head, "VALUE %s %d %d", &k, &flags, &size); !ok || err != nil || k != key ||
		len(rest) != size+len("\r\nEND\r\n") || !strings.HasSuffix(rest, "\r\nEND\r\n") {
		t.Fatalf("get %s: %q", key, r[:min(len(r), 80)])
	}
	return []byte(rest[:size]), true
}
