package userspace_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rebound-net/rebound/codec/rebound"
	"github.com/rebound-net/rebound/userspace"
)

// maxValue is the server's configured value limit in these tests.
const maxValue = 2000

// dialFunc opens a client socket (in the right network namespace).
type dialFunc func(network, addr string) (net.Conn, error)

func plainDial(network, addr string) (net.Conn, error) { return net.Dial(network, addr) }

func hexb(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(err)
	}
	return b
}

// raw builds a message with any header fields and payload.
func raw(op rebound.Op, flags uint8, seq uint32, lenField int, status uint16, p []byte) []byte {
	if lenField < 0 {
		lenField = len(p)
	}
	b := make([]byte, rebound.HeaderLen+len(p))
	rebound.PutHeader(b, rebound.Header{Op: op, Flags: flags, Seq: seq, Len: uint16(lenField), Status: rebound.Status(status)})
	copy(b[rebound.HeaderLen:], p)
	return b
}

func reply(op rebound.Op, flags uint8, seq uint32, st rebound.Status, p []byte) []byte {
	b := raw(op, flags|rebound.FlagResponse, seq, -1, uint16(st), p)
	return b
}

func setReq(seq uint32, key string, ttl uint32, value []byte) []byte {
	b := make([]byte, rebound.HeaderLen+5+len(key)+len(value))
	n, err := rebound.EncodeSet(b, seq, []byte(key), ttl, value)
	if err != nil {
		panic(err)
	}
	return b[:n]
}

func getReq(seq uint32, key string, pad int) []byte {
	b := make([]byte, rebound.HeaderLen+1+len(key)+pad)
	n, _ := rebound.EncodeGet(b, seq, []byte(key), pad)
	return b[:n]
}

func delReq(seq uint32, key string) []byte {
	b := make([]byte, rebound.HeaderLen+1+len(key))
	n, _ := rebound.EncodeDel(b, seq, []byte(key))
	return b[:n]
}

// exchange is one request and the exact reply it must get (nil: no reply).
type exchange struct {
	name string
	req  []byte
	want []byte
}

// udpCases are the rules of the protocol (docs/protocol.md), in order, as datagrams. Keys are
// prefixed so that runs against one server do not collide.
func udpCases(prefix string) []exchange {
	big := bytes.Repeat([]byte("v"), 500)
	k := prefix + "k"
	return []exchange{
		{"protocol example: ping", hexb("b5 01 01 00 00 00 00 07 00 02 00 00 68 69"), hexb("b5 01 01 01 00 00 00 07 00 02 00 00 68 69")},
		{"ping empty", raw(rebound.OpPing, 0, 8, -1, 0, nil), reply(rebound.OpPing, 0, 8, rebound.StatusOK, nil)},
		{"get missing", getReq(10, k, 0), reply(rebound.OpGet, 0, 10, rebound.StatusNotFound, nil)},
		{"set", setReq(11, k, 0, []byte("value-1")), reply(rebound.OpSet, 0, 11, rebound.StatusOK, nil)},
		{"get", getReq(12, k, 0), reply(rebound.OpGet, 0, 12, rebound.StatusOK, []byte("value-1"))},
		{"get with padding", getReq(13, k, 9), reply(rebound.OpGet, 0, 13, rebound.StatusOK, []byte("value-1"))},
		{"set empty value", setReq(14, k+"e", 0, nil), reply(rebound.OpSet, 0, 14, rebound.StatusOK, nil)},
		{"get empty value", getReq(15, k+"e", 0), reply(rebound.OpGet, 0, 15, rebound.StatusOK, nil)},
		{"del", delReq(16, k), reply(rebound.OpDel, 0, 16, rebound.StatusOK, nil)},
		{"del again", delReq(17, k), reply(rebound.OpDel, 0, 17, rebound.StatusNotFound, nil)},
		{"get deleted", getReq(18, k, 0), reply(rebound.OpGet, 0, 18, rebound.StatusNotFound, nil)},
		// Rule 2: not Rebound: no reply.
		{"bad magic", append([]byte{0xB4}, raw(rebound.OpPing, 0, 20, -1, 0, nil)[1:]...), nil},
		{"bad version", append([]byte{0xB5, 0x02}, raw(rebound.OpPing, 0, 21, -1, 0, nil)[2:]...), nil},
		{"11 bytes", raw(rebound.OpPing, 0, 22, -1, 0, nil)[:11], nil},
		// Rule 3.
		{"response flag", raw(rebound.OpPing, rebound.FlagResponse, 23, -1, 0, nil), nil},
		// Rule 4.
		{"len larger than datagram", raw(rebound.OpPing, 0, 24, 9, 0, []byte("ab")), reply(rebound.OpPing, 0, 24, rebound.StatusBadRequest, nil)},
		{"len smaller than datagram", raw(rebound.OpPing, 0, 25, 1, 0, []byte("ab")), reply(rebound.OpPing, 0, 25, rebound.StatusBadRequest, nil)},
		// Rule 5.
		{"unknown flag", raw(rebound.OpPing, 0x40, 26, -1, 0, nil), reply(rebound.OpPing, 0, 26, rebound.StatusBadRequest, nil)},
		{"non-zero status", raw(rebound.OpPing, 0, 27, -1, 4, nil), reply(rebound.OpPing, 0, 27, rebound.StatusBadRequest, nil)},
		{"unknown op", raw(0x09, 0, 28, -1, 0, []byte("x")), reply(0x09, 0, 28, rebound.StatusUnknownOp, nil)},
		// Keys.
		{"keylen 0", raw(rebound.OpGet, 0, 30, -1, 0, []byte{0, 'a'}), reply(rebound.OpGet, 0, 30, rebound.StatusBadRequest, nil)},
		{"keylen past payload", raw(rebound.OpGet, 0, 31, -1, 0, []byte{5, 'a'}), reply(rebound.OpGet, 0, 31, rebound.StatusBadRequest, nil)},
		{"keylen 251", raw(rebound.OpDel, 0, 32, -1, 0, append([]byte{251}, bytes.Repeat([]byte("a"), 251)...)), reply(rebound.OpDel, 0, 32, rebound.StatusBadRequest, nil)},
		{"set without ttl", raw(rebound.OpSet, 0, 33, -1, 0, []byte{1, 0}), reply(rebound.OpSet, 0, 33, rebound.StatusBadRequest, nil)},
		{"del with trailing bytes", raw(rebound.OpDel, 0, 34, -1, 0, []byte{1, 'a', 'b'}), reply(rebound.OpDel, 0, 34, rebound.StatusBadRequest, nil)},
		{"value over the limit", setReq(35, k+"big", 0, make([]byte, maxValue+1)), reply(rebound.OpSet, 0, 35, rebound.StatusTooLarge, nil)},
		// Rule 6: a 500-byte value for a 12+1+len(key) byte GET breaks A=4.
		{"set 500 bytes", setReq(40, k+"amp", 0, big), reply(rebound.OpSet, 0, 40, rebound.StatusOK, nil)},
		{"get truncated", getReq(41, k+"amp", 0), reply(rebound.OpGet, rebound.FlagTruncated, 41, rebound.StatusOK, nil)},
		{"padded get", getReq(42, k+"amp", 120), reply(rebound.OpGet, 0, 42, rebound.StatusOK, big)},
	}
}

// runUDP sends each case and checks the exact reply, or that none came:
// a case without a reply is followed by a PING whose reply must be the next
// thing to arrive.
func runUDP(t *testing.T, dial dialFunc, addr string, cases []exchange) {
	t.Helper()
	c, err := dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 65536)
	read := func() []byte {
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, err := c.Read(buf)
		if err != nil {
			return nil
		}
		return buf[:n]
	}
	for _, ex := range cases {
		if _, err := c.Write(ex.req); err != nil {
			t.Fatalf("%s: write: %v", ex.name, err)
		}
		want := ex.want
		if want == nil {
			probe := raw(rebound.OpPing, 0, 0xABCD, -1, 0, []byte("probe"))
			if _, err := c.Write(probe); err != nil {
				t.Fatal(err)
			}
			want = reply(rebound.OpPing, 0, 0xABCD, rebound.StatusOK, []byte("probe"))
		}
		got := read()
		if !bytes.Equal(got, want) {
			t.Errorf("%s: got % x\nwant % x", ex.name, trunc(got), trunc(want))
		}
	}
}

func trunc(b []byte) []byte {
	if len(b) > 40 {
		return b[:40]
	}
	return b
}

// runTCP sends all cases that are valid framing on one connection,
// pipelined in one write, and checks the replies in order.
func runTCP(t *testing.T, dial dialFunc, addr string, cases []exchange) {
	t.Helper()
	c, err := dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var stream []byte
	var want [][]byte
	for _, ex := range cases {
		h, ok := rebound.DecodeHeader(ex.req)
		if !ok || len(ex.req) != rebound.HeaderLen+int(h.Len) {
			continue // not framable on a stream (rule 2 and 4 cases)
		}
		stream = append(stream, ex.req...)
		w := ex.want
		if w != nil {
			if bh, _ := rebound.DecodeHeader(w); bh.Flags&rebound.FlagTruncated != 0 {
				// TCP has no amplification bound: the whole value comes.
				w = reply(bh.Op, 0, bh.Seq, rebound.StatusOK, bytes.Repeat([]byte("v"), 500))
			}
			want = append(want, w)
		}
	}
	if _, err := c.Write(stream); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for i, w := range want {
		got := make([]byte, len(w))
		if _, err := io.ReadFull(c, got); err != nil {
			t.Fatalf("reply %d: %v", i, err)
		}
		if !bytes.Equal(got, w) {
			t.Fatalf("reply %d: got % x\nwant % x", i, trunc(got), trunc(w))
		}
	}
}

type testServer struct {
	srv *userspace.Server
	svc *userspace.Service
	log *bytes.Buffer
}

func startServer(t *testing.T, cfg userspace.Config) *testServer {
	t.Helper()
	ts := &testServer{log: &bytes.Buffer{}}
	var mu sync.Mutex
	ts.svc = userspace.NewService(userspace.ServiceConfig{KVMemory: 16 << 20, MaxValue: maxValue})
	if cfg.Handler == nil {
		cfg.Handler = ts.svc
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	cfg.Logger = slog.New(slog.NewTextHandler(lockedWriter{&mu, ts.log}, nil))
	srv, err := userspace.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatalf("start: %v", err)
	}
	ts.srv = srv
	t.Cleanup(srv.Stop)
	return ts
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestUDPAndTCPOnLoopback(t *testing.T) {
	ts := startServer(t, userspace.Config{Mode: userspace.ModeUDP, Workers: 2})
	addr := ts.srv.Addr().String()
	t.Run("udp", func(t *testing.T) { runUDP(t, plainDial, addr, udpCases("u")) })
	t.Run("tcp", func(t *testing.T) { runTCP(t, plainDial, addr, udpCases("t")) })
	if m, _ := ts.srv.Mode(); m != userspace.ModeUDP {
		t.Fatalf("mode %s", m)
	}
	var rx uint64
	for _, w := range ts.srv.Stats() {
		rx += w.Rx.Load()
	}
	if rx == 0 {
		t.Fatal("no request counted")
	}
}

func TestTTLExpires(t *testing.T) {
	ts := startServer(t, userspace.Config{Mode: userspace.ModeUDP, Workers: 1})
	c, err := net.Dial("udp", ts.srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 2048)
	ask := func(req []byte) []byte {
		_, _ = c.Write(req)
		_ = c.SetReadDeadline(time.Now().Add(time.Second))
		n, _ := c.Read(buf)
		return buf[:n]
	}
	if got := ask(setReq(1, "ttl", 1, []byte("x"))); !bytes.Equal(got, reply(rebound.OpSet, 0, 1, rebound.StatusOK, nil)) {
		t.Fatalf("set: % x", got)
	}
	if got := ask(getReq(2, "ttl", 0)); !bytes.Equal(got, reply(rebound.OpGet, 0, 2, rebound.StatusOK, []byte("x"))) {
		t.Fatalf("get before expiry: % x", got)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := ask(getReq(3, "ttl", 0))
		if bytes.Equal(got, reply(rebound.OpGet, 0, 3, rebound.StatusNotFound, nil)) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("a 1-second TTL has not expired after 5s: % x", got)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestTCPStream(t *testing.T) {
	ts := startServer(t, userspace.Config{Mode: userspace.ModeUDP, Workers: 1, WriteTimeout: 300 * time.Millisecond, MaxConns: 4})
	addr := ts.srv.Addr().String()

	t.Run("split into single bytes", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.(*net.TCPConn).SetNoDelay(true)
		req := raw(rebound.OpPing, 0, 77, -1, 0, []byte("split"))
		for i := range req {
			if _, err := c.Write(req[i : i+1]); err != nil {
				t.Fatal(err)
			}
		}
		got := make([]byte, len(req))
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, reply(rebound.OpPing, 0, 77, rebound.StatusOK, []byte("split"))) {
			t.Fatalf("got % x, %v", got, err)
		}
	})

	t.Run("100000 pipelined in order", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		const n = 100000
		errc := make(chan error, 1)
		go func() {
			w := make([]byte, 0, 64<<10)
			for i := 0; i < n; i++ {
				var p [4]byte
				binary.BigEndian.PutUint32(p[:], uint32(i))
				w = append(w, raw(rebound.OpPing, 0, uint32(i), -1, 0, p[:])...)
				if len(w) > 60<<10 || i == n-1 {
					if _, err := c.Write(w); err != nil {
						errc <- err
						return
					}
					w = w[:0]
				}
			}
			errc <- nil
		}()
		_ = c.SetReadDeadline(time.Now().Add(60 * time.Second))
		got := make([]byte, rebound.HeaderLen+4)
		for i := 0; i < n; i++ {
			if _, err := io.ReadFull(c, got); err != nil {
				t.Fatalf("reply %d: %v", i, err)
			}
			h, _ := rebound.DecodeHeader(got)
			if h.Seq != uint32(i) || binary.BigEndian.Uint32(got[rebound.HeaderLen:]) != uint32(i) {
				t.Fatalf("reply %d carries sequence %d", i, h.Seq)
			}
		}
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	})

	t.Run("bad magic closes after BAD_REQUEST", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		bad := raw(rebound.OpPing, 0, 5, -1, 0, nil)
		bad[0] = 'G'
		if _, err := c.Write(append(bad, raw(rebound.OpPing, 0, 6, -1, 0, nil)...)); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		all, _ := io.ReadAll(c)
		h, ok := rebound.DecodeHeader(all)
		if !ok || len(all) != rebound.HeaderLen || h.Status != rebound.StatusBadRequest {
			t.Fatalf("got % x: want one BAD_REQUEST header, then the connection closed", all)
		}
	})

	t.Run("client that never reads is closed, others unaffected", func(t *testing.T) {
		stuck, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer stuck.Close()
		stuck.(*net.TCPConn).SetReadBuffer(4096)
		// Large PINGs, never read: the server's writes block, time out,
		// and it closes the connection; then our writes fail.
		big := raw(rebound.OpPing, 0, 1, -1, 0, make([]byte, 60000))
		closed := false
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			_ = stuck.SetWriteDeadline(time.Now().Add(time.Second))
			if _, err := stuck.Write(big); err != nil && !errors.Is(err, errTimeout(err)) {
				closed = true
				break
			}
		}
		if !closed {
			t.Fatal("the server kept a connection that never reads open for 20s")
		}
		// Another client is served meanwhile and after.
		runTCP(t, plainDial, addr, udpCases("s")[:3])
	})

	t.Run("connection limit", func(t *testing.T) {
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		// Open more than MaxConns (4); some must be refused (closed at once).
		refused := 0
		for i := 0; i < 8; i++ {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			conns = append(conns, c)
			_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			// A refused connection is closed by the server: EOF, or a reset
			// since our request was never read. A served one answers.
			if _, err := c.Write(raw(rebound.OpPing, 0, 1, -1, 0, nil)); err != nil {
				refused++
			} else if _, err := c.Read(make([]byte, 64)); err != nil && errTimeout(err) == errNotTimeout {
				refused++
			}
		}
		// Connections of earlier subtests may still be closing on the
		// server: at most 4 served, at least one.
		if served := 8 - refused; served > 4 || served < 1 {
			t.Fatalf("8 connections against a limit of 4: %d served", served)
		}
	})
}

// errTimeout returns err itself when it is a timeout (so errors.Is holds)
// and a sentinel otherwise.
func errTimeout(err error) error {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return err
	}
	return errNotTimeout
}

var errNotTimeout = errors.New("not a timeout")

func TestAutoModeFallsBack(t *testing.T) {
	for _, c := range []struct {
		iface, why string
	}{
		{"", "no --iface given"},
		{"rbnosuch9", "rbnosuch9"},
		{"lo", "loopback"},
	} {
		ts := startServer(t, userspace.Config{Mode: userspace.ModeAuto, Iface: c.iface, Workers: 1})
		m, why := ts.srv.Mode()
		if m != userspace.ModeUDP || !strings.Contains(why, c.why) {
			t.Errorf("iface %q: mode %s (%s)", c.iface, m, why)
		}
		if !strings.Contains(ts.log.String(), "mode=udp") || !strings.Contains(ts.log.String(), c.why) {
			t.Errorf("iface %q: no log line saying udp and why: %s", c.iface, ts.log)
		}
		runUDP(t, plainDial, ts.srv.Addr().String(), udpCases("a")[:2])
	}
}

func TestStartErrors(t *testing.T) {
	ts := startServer(t, userspace.Config{Mode: userspace.ModeUDP, Workers: 1})
	srv, err := userspace.NewServer(userspace.Config{Mode: userspace.ModeUDP, Listen: ts.srv.Addr().String(), Handler: ts.svc})
	if err != nil {
		t.Fatal(err)
	}
	err = srv.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "port taken") {
		t.Fatalf("second server on the same port: %v", err)
	}
	srv.Stop()
	if _, err := userspace.NewServer(userspace.Config{Mode: "fast", Handler: ts.svc}); err == nil {
		t.Fatal("mode fast accepted")
	}
	if _, err := userspace.NewServer(userspace.Config{}); err == nil {
		t.Fatal("no handler accepted")
	}
	xs, _ := userspace.NewServer(userspace.Config{Mode: userspace.ModeXDP, Listen: "127.0.0.1:0", Handler: ts.svc})
	if err := xs.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "--iface") {
		t.Fatalf("xdp mode without an interface: %v", err)
	}
}

// Start and Stop, repeated, leave no file descriptor behind.
func TestServerLeaksNoFDs(t *testing.T) {
	count := func() int {
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Fatal(err)
		}
		return len(ents)
	}
	svc := userspace.NewService(userspace.ServiceConfig{KVMemory: 8 << 20})
	run := func() {
		srv, err := userspace.NewServer(userspace.Config{Mode: userspace.ModeUDP, Listen: "127.0.0.1:0", Workers: 2, Handler: svc})
		if err != nil {
			t.Fatal(err)
		}
		if err := srv.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		c, err := net.Dial("tcp", srv.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		_, _ = c.Write(raw(rebound.OpPing, 0, 1, -1, 0, nil))
		_, _ = io.ReadFull(c, make([]byte, rebound.HeaderLen))
		srv.Stop()
		srv.Stop() // idempotent
		c.Close()
	}
	run() // first use opens what the process keeps (epoll)
	before := count()
	for i := 0; i < 10; i++ {
		run()
	}
	if after := count(); after != before {
		t.Fatalf("%d file descriptors before, %d after 10 servers", before, after)
	}
}
