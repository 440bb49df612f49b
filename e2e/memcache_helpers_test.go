package e2e

// Helpers of the memcached-protocol tests in memcache_test.go: the one
// function that chooses and starts the server under test (startMC), running
// the real client tools against it, and memcached's UDP frame header.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rebound-net/rebound/internal/testenv"
	"github.com/rebound-net/rebound/internal/testutil"
)

// Where the client tools come from (Debian: memcached, libmemcached-tools,
// python3-pymemcache; .ci/run installs them). pymemcache is a package of
// the system python, not of whatever python3 comes first on PATH.
const (
	pythonPath      = "/usr/bin/python3"
	memcaslapPath   = "/usr/bin/memcaslap"
	memccapablePath = "/usr/bin/memccapable"
	pymemcacheCheck = "testdata/memcache/pymemcache_check.py"
)

// mcKind is a server the memcached-protocol tests run against.
type mcKind string

const (
	// The real memcached 1.6 on loopback: the oracle every test is
	// checked against, so that a failure against rebound is rebound's.
	mcMemcached mcKind = "memcached"
	// rebound serve --mode udp on loopback (no root needed).
	mcReboundUDP mcKind = "rebound-udp"
	// rebound serve --mode xdp on the veth lab (root), clients in the
	// client namespace.
	mcReboundXDP mcKind = "rebound-xdp"
)

// mcTarget is a running server that speaks memcached's protocol.
type mcTarget struct {
	Kind mcKind
	// Addr is the memcached-protocol address, TCP and UDP on one port.
	Addr string
	// Rebound is the Rebound-protocol address of the same store; "" for
	// the real memcached.
	Rebound string
	// NS is where clients must run; nil: this test's own namespace.
	NS *testutil.NS
	// Metrics is the server's metrics address (inside NS's peer, the
	// server namespace, for the lab); "" when it has none.
	Metrics string
	// Srv is the rebound process; nil for memcached.
	Srv *server
	// Lab is the veth lab of an mcReboundXDP target.
	Lab *testutil.Lab
}

// mcOptions are the server settings a test asks for.
type mcOptions struct {
	// Trust: start rebound with --trust-src for the clients' range, so
	// that its UDP replies are not bound by the amplification factor.
	Trust bool
}

// startMC starts a server of kind k for the test and stops it when the test
// ends. It is the one place that chooses what the tests run against.
func startMC(t *testing.T, k mcKind, o mcOptions) *mcTarget {
	t.Helper()
	switch k {
	case mcMemcached:
		return &mcTarget{Kind: k, Addr: testutil.StartMemcached(t)}
	case mcReboundUDP:
		requireMemcacheServe(t)
		return startReboundLoopback(t, o)
	case mcReboundXDP:
		l := testutil.NewLab(t, 1) // root, or a loud skip
		requireMemcacheServe(t)
		args := append(modes[0].args(l), "--listen", ":7000", "--memcache-listen", ":11211", "--metrics", "127.0.0.1:9100")
		if o.Trust {
			args = append(args, "--trust-src", "198.18.0.0/15,2001:2::/48")
		}
		s := startServer(t, l.Srv, args...)
		tg := &mcTarget{Kind: k, Addr: "198.18.0.2:11211", Rebound: srv4, NS: l.Cli, Metrics: "127.0.0.1:9100", Srv: s, Lab: l}
		waitMCVersion(t, tg)
		return tg
	}
	t.Fatalf("unknown target %q", k)
	return nil
}

var (
	mcServeOnce sync.Once
	mcServeHelp string
)

// requireMemcacheServe fails the test unless 'rebound serve' has the flags
// these tests start it with (--memcache-listen, --trust-src), saying which
// are missing: the tests are written against the real memcached first and
// are meant to run against rebound, so a rebound without them is a failure
// to see, not a reason to pass.
func requireMemcacheServe(t *testing.T) {
	t.Helper()
	b := reboundBin(t)
	mcServeOnce.Do(func() {
		out, _ := exec.Command(b, "serve", "-h").CombinedOutput()
		mcServeHelp = string(out)
	})
	var missing []string
	for _, f := range []string{"-memcache-listen", "-trust-src"} {
		if !strings.Contains(mcServeHelp, f) {
			missing = append(missing, "-"+f)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("rebound serve has no %s flag: it cannot serve memcached's protocol to these tests yet", strings.Join(missing, ", "))
	}
}

// startReboundLoopback runs 'rebound serve --mode udp' in this namespace on
// free loopback ports, retrying with other ports when one was taken between
// the probe and the start.
func startReboundLoopback(t *testing.T, o mcOptions) *mcTarget {
	t.Helper()
	for attempt := 0; ; attempt++ {
		rp, mp := mcFreePort(t), mcFreePort(t)
		if rp == mp {
			continue
		}
		rb := net.JoinHostPort("127.0.0.1", strconv.Itoa(rp))
		mca := net.JoinHostPort("127.0.0.1", strconv.Itoa(mp))
		args := []string{"--mode", "udp", "--workers", "2", "--listen", rb, "--memcache-listen", mca}
		if o.Trust {
			args = append(args, "--trust-src", "127.0.0.0/8,::1/128")
		}
		s, err := startLocalServer(t, args...)
		if err != nil {
			if attempt < 3 && strings.Contains(err.Error(), "address already in use") {
				continue
			}
			t.Fatal(err)
		}
		tg := &mcTarget{Kind: mcReboundUDP, Addr: mca, Rebound: rb, Srv: s}
		waitMCVersion(t, tg)
		return tg
	}
}

// startUDPModeServer starts 'rebound serve --mode udp' with one worker
// on two free loopback ports, with args added (--kv-memory, --max-conns),
// trying other ports when one was taken in between; it returns the
// server and its memcached address.
func startUDPModeServer(t *testing.T, args ...string) (*server, string) {
	t.Helper()
	for attempt := 0; ; attempt++ {
		rb := net.JoinHostPort("127.0.0.1", strconv.Itoa(mcFreePort(t)))
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(mcFreePort(t)))
		s, err := startLocalServer(t, append([]string{"--mode", "udp", "--workers", "1", "--listen", rb, "--memcache-listen", addr}, args...)...)
		if err == nil {
			return s, addr
		}
		if attempt >= 3 || !strings.Contains(err.Error(), "address already in use") {
			t.Fatal(err)
		}
	}
}

// startLocalServer runs 'rebound serve' in this test's namespace (no 'ip
// netns exec', so no root), waits until it says it is serving, and kills it
// by its pid when the test ends.
func startLocalServer(t *testing.T, args ...string) (*server, error) {
	t.Helper()
	s := &server{t: t, done: make(chan struct{})}
	s.cmd = exec.Command(reboundBin(t), append([]string{"serve", "--log-level", "debug"}, args...)...)
	s.cmd.Stdout, s.cmd.Stderr = s, s
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start rebound: %v", err)
	}
	go func() { s.err = s.cmd.Wait(); close(s.done) }()
	stop := func() {
		select {
		case <-s.done:
		default:
			_ = s.cmd.Process.Kill()
			<-s.done
		}
	}
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(s.Log(), "msg=serving") {
		select {
		case <-s.done:
			return nil, fmt.Errorf("rebound exited at start (%v):\n%s", s.err, s.Log())
		default:
		}
		if time.Now().After(deadline) {
			stop()
			return nil, fmt.Errorf("rebound not serving after 15s:\n%s", s.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("rebound log:\n%s", s.Log())
		}
	})
	return s, nil
}

// alive fails the test if the rebound process of tg has exited.
func (tg *mcTarget) alive(t *testing.T) {
	t.Helper()
	if tg.Srv == nil {
		return
	}
	select {
	case <-tg.Srv.done:
		t.Fatalf("rebound exited during the test: %v", tg.Srv.err)
	default:
	}
}

// counters reads every counter of the lab server's metrics, by its full
// name with labels, through 'rebound stats --raw' in the server namespace.
func (tg *mcTarget) counters(t *testing.T) map[string]float64 {
	t.Helper()
	out, code := run(t, tg.Lab.Srv, "stats", "--metrics", tg.Metrics, "--raw")
	if code != 0 {
		t.Fatalf("stats: %s", out)
	}
	m := map[string]float64{}
	for _, line := range strings.Split(out, "\n") {
		i := strings.LastIndexByte(line, ' ')
		if i < 0 || strings.HasPrefix(line, "#") {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			m[line[:i]] = v
		}
	}
	return m
}

// mcFreePort finds a loopback port free for both TCP and UDP.
func mcFreePort(t *testing.T) int {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		l.Close()
		if err != nil {
			continue
		}
		u.Close()
		return port
	}
	t.Fatal("no loopback port free for both TCP and UDP")
	return 0
}

// waitMCVersion waits until tg answers "version" over TCP.
func waitMCVersion(t *testing.T, tg *mcTarget) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		tg.alive(t)
		var line string
		if line, err = tg.textCommand(t, "version\r\n", "\r\n"); err == nil {
			if strings.HasPrefix(line, "VERSION ") {
				return
			}
			err = fmt.Errorf("version: %q", line)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: no memcached-protocol answer at %s: %v", tg.Kind, tg.Addr, err)
}

// dial opens a connection to the memcached port of tg from the clients'
// namespace.
func (tg *mcTarget) dial(t *testing.T, network string) net.Conn {
	t.Helper()
	var c net.Conn
	var err error
	d := func() { c, err = net.DialTimeout(network, tg.Addr, 3*time.Second) }
	if tg.NS != nil {
		tg.NS.Do(t, d)
	} else {
		d()
	}
	if err != nil {
		t.Fatalf("dial %s %s: %v", network, tg.Addr, err)
	}
	return c
}

// textCommand sends one text command over a new TCP connection and reads
// until the reply ends with end.
func (tg *mcTarget) textCommand(t *testing.T, cmd, end string) (string, error) {
	t.Helper()
	var c net.Conn
	var err error
	d := func() { c, err = net.DialTimeout("tcp", tg.Addr, time.Second) }
	if tg.NS != nil {
		tg.NS.Do(t, d)
	} else {
		d()
	}
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(cmd)); err != nil {
		return "", err
	}
	var got []byte
	r := bufio.NewReader(c)
	buf := make([]byte, 64<<10)
	for !bytes.HasSuffix(got, []byte(end)) {
		n, err := r.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			return string(got), err
		}
	}
	return string(got), nil
}

// tool runs a client tool (path and arguments) against tg from the
// clients' namespace, bounded by limit, and returns its combined output and
// exit code (-1: it did not run or was killed at the limit). The process
// is killed by its pid at the limit.
func (tg *mcTarget) tool(t *testing.T, limit time.Duration, path string, args ...string) (string, int) {
	t.Helper()
	testenv.Tool(t, path, "Debian: memcached, libmemcached-tools, python3-pymemcache")
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	var cmd *exec.Cmd
	if tg.NS != nil {
		// ip execs the tool: the pid is the tool's own.
		cmd = exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", tg.NS.Name, path}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, path, args...)
	}
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Errorf("%s %v: still running after %v, killed", path, args, limit)
		return string(out), -1
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &ee):
		return string(out), ee.ExitCode()
	default:
		t.Fatalf("%s %v: %v\n%s", path, args, err, out)
		return "", -1
	}
}

// hostPort splits tg.Addr.
func (tg *mcTarget) hostPort(t *testing.T) (string, string) {
	t.Helper()
	h, p, err := net.SplitHostPort(tg.Addr)
	if err != nil {
		t.Fatal(err)
	}
	return h, p
}

// mcDatagram is one reply datagram of memcached's UDP protocol.
type mcDatagram struct {
	ReqID, Seq, Total, Reserved uint16
	Payload                     []byte
}

// mcUDPRequest frames cmd with memcached's 8-byte UDP header (request id,
// sequence 0, total 1, reserved 0), sends it on c and collects the reply
// datagrams with that request id until done says the reply is complete (or
// limit passes), then listens for settle more to catch any extra.
func mcUDPRequest(t *testing.T, c net.Conn, reqID uint16, cmd string, limit, settle time.Duration, done func([]mcDatagram) bool) []mcDatagram {
	t.Helper()
	req := make([]byte, 8, 8+len(cmd))
	binary.BigEndian.PutUint16(req[0:], reqID)
	binary.BigEndian.PutUint16(req[4:], 1)
	req = append(req, cmd...)
	if _, err := c.Write(req); err != nil {
		t.Fatalf("udp write: %v", err)
	}
	var got []mcDatagram
	buf := make([]byte, 65536)
	deadline := time.Now().Add(limit)
	settled := false
	for {
		_ = c.SetReadDeadline(deadline)
		n, err := c.Read(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return got
			}
			t.Fatalf("udp read: %v", err)
		}
		if n < 8 {
			t.Fatalf("a reply datagram of %d bytes, shorter than the frame header", n)
		}
		d := mcDatagram{
			ReqID: binary.BigEndian.Uint16(buf[0:]), Seq: binary.BigEndian.Uint16(buf[2:]),
			Total: binary.BigEndian.Uint16(buf[4:]), Reserved: binary.BigEndian.Uint16(buf[6:]),
			Payload: append([]byte(nil), buf[8:n]...),
		}
		if d.ReqID != reqID {
			continue // a late reply to an earlier request
		}
		got = append(got, d)
		if !settled && done(got) {
			settled = true
			deadline = time.Now().Add(settle)
		}
	}
}

// mcReassemble joins one message's datagrams in sequence order; it fails
// the test if they do not make exactly one whole message.
func mcReassemble(t *testing.T, ds []mcDatagram) []byte {
	t.Helper()
	if len(ds) == 0 {
		t.Fatal("no reply datagram")
	}
	total := int(ds[0].Total)
	if len(ds) != total {
		t.Fatalf("%d datagrams for a message of total %d: %s", len(ds), total, mcDescribe(ds))
	}
	parts := make([][]byte, total)
	for _, d := range ds {
		if int(d.Total) != total || int(d.Seq) >= total || parts[d.Seq] != nil || d.Reserved != 0 {
			t.Fatalf("datagram headers do not make one message: %s", mcDescribe(ds))
		}
		parts[d.Seq] = d.Payload
	}
	return bytes.Join(parts, nil)
}

func mcDescribe(ds []mcDatagram) string {
	var b strings.Builder
	for _, d := range ds {
		p := d.Payload
		if len(p) > 60 {
			p = p[:60]
		}
		fmt.Fprintf(&b, "[id %d seq %d/%d rsv %d, %d bytes %q] ", d.ReqID, d.Seq, d.Total, d.Reserved, len(d.Payload), p)
	}
	return b.String()
}
