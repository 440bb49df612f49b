// Package e2e drives the rebound binary in the veth lab: a server namespace
// and a client namespace made by each test, ordinary kernel sockets on the
// client side (so the client's kernel checks every reply), raw frames where
// a case needs them. Every test needs root; see testutil.RequirePriv.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rebound-net/rebound/client"
	"github.com/rebound-net/rebound/internal/testutil"
)

// The rebound binary, built once per test run by the first test that needs
// it (after its privilege check, so that a run without root skips cleanly).
var (
	binOnce sync.Once
	binDir  string
	bin     string
	binErr  error
)

func reboundBin(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		if binDir, binErr = os.MkdirTemp("", "rebound-e2e-"); binErr != nil {
			return
		}
		bin = filepath.Join(binDir, "rebound")
		build := exec.Command("go", "build", "-o", bin, "../cmd/rebound")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("build rebound: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return bin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// server is a rebound serve process in the lab's server namespace.
type server struct {
	t    *testing.T
	cmd  *exec.Cmd
	mu   sync.Mutex
	log  bytes.Buffer
	done chan struct{}
	err  error // Wait's result, once done
}

func (s *server) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.Write(p)
}

func (s *server) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

// startServer runs 'rebound serve' in ns with args and waits until it says
// it is serving.
func startServer(t *testing.T, ns *testutil.NS, args ...string) *server {
	t.Helper()
	s := startProcess(t, ns, args...)
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(s.Log(), "msg=serving") {
		select {
		case <-s.done:
			t.Fatalf("server exited at start (%v):\n%s", s.err, s.Log())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("server not serving after 15s:\n%s", s.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return s
}

// startProcess runs 'rebound serve' without waiting for it.
func startProcess(t *testing.T, ns *testutil.NS, args ...string) *server {
	t.Helper()
	s := &server{t: t, done: make(chan struct{})}
	full := append([]string{"netns", "exec", ns.Name, reboundBin(t), "serve", "--log-level", "debug"}, args...)
	s.cmd = exec.Command("ip", full...)
	s.cmd.Stdout, s.cmd.Stderr = s, s
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start server: %v", err)
	}
	go func() { s.err = s.cmd.Wait(); close(s.done) }()
	t.Cleanup(func() {
		select {
		case <-s.done:
		default:
			_ = s.cmd.Process.Kill()
			<-s.done
		}
		if t.Failed() {
			t.Logf("server log:\n%s", s.Log())
		}
	})
	return s
}

// stop signals the server and returns its exit code and how long it took.
func (s *server) stop(sig syscall.Signal) (int, time.Duration) {
	start := time.Now()
	_ = s.cmd.Process.Signal(sig)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		s.t.Fatalf("server still running 10s after %v", sig)
	}
	code := 0
	if s.err != nil {
		if ee, ok := s.err.(*exec.ExitError); ok {
			code = ee.ExitCode()
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				code = 128 + int(ws.Signal())
			}
		} else {
			code = -1
		}
	}
	return code, time.Since(start)
}

// run runs the rebound binary with args in ns and returns its output and
// exit code.
func run(t *testing.T, ns *testutil.NS, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns.Name, reboundBin(t)}, args...)...)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run %v: %v", args, err)
	}
	return string(out), code
}

// dial makes a client inside ns.
func dial(t *testing.T, ns *testutil.NS, addr string, opts client.Options) *client.Client {
	t.Helper()
	var c *client.Client
	var err error
	ns.Do(t, func() { c, err = client.Dial(context.Background(), addr, opts) })
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// metric reads one counter (summed over its label sets) from the server's
// metrics endpoint, through 'rebound stats' in the server namespace.
func metric(t *testing.T, ns *testutil.NS, addr, name string, labels ...string) float64 {
	t.Helper()
	out, code := run(t, ns, "stats", "--metrics", addr, "--raw")
	if code != 0 {
		t.Fatalf("stats: %s", out)
	}
	var sum float64
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(line, l)
		}
		if !ok {
			continue
		}
		var v float64
		fmt.Sscanf(line[strings.LastIndexByte(line, ' ')+1:], "%g", &v)
		sum += v
	}
	return sum
}

// xdpAttached reports whether the interface has an XDP program.
func xdpAttached(t *testing.T, v testutil.Veth) bool {
	t.Helper()
	l, err := v.NS.Netlink.LinkByIndex(v.Index)
	if err != nil {
		t.Fatal(err)
	}
	x := l.Attrs().Xdp
	return x != nil && x.Attached
}

// modes are the server configurations every applicable case runs in.
var modes = []struct {
	name string
	args func(l *testutil.Lab) []string
	xdp  bool
}{
	{"xdp-native", func(l *testutil.Lab) []string {
		return []string{"--mode", "xdp", "--xdp-mode", "native", "--iface", l.SrvIf.Name}
	}, true},
	{"xdp-generic", func(l *testutil.Lab) []string {
		return []string{"--mode", "xdp", "--xdp-mode", "generic", "--iface", l.SrvIf.Name}
	}, true},
	{"udp", func(l *testutil.Lab) []string { return []string{"--mode", "udp"} }, false},
}
