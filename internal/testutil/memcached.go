package testutil

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/rebound-net/rebound/internal/testenv"
)

// MemcachedPath is the real memcached the differential tests use as their
// oracle.
const MemcachedPath = "/usr/bin/memcached"

// StartMemcached starts the real memcached on a free loopback port, for TCP
// and UDP on the same port number, with one worker thread and any extra
// arguments (e.g. "-I", "2m"), waits until it answers "version", stops it
// by its pid when the test ends, and returns its address ("127.0.0.1:port").
//
// Without the binary the test is skipped, loudly; it fails instead when
// REBOUND_REQUIRE_PRIV=1 or CI=true, so that a missing oracle can never
// pass a run where it matters.
func StartMemcached(t testing.TB, args ...string) string {
	t.Helper()
	testenv.Tool(t, MemcachedPath, "Debian: memcached")
	var lastErr error
	for range 5 {
		port, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		p := strconv.Itoa(port)
		argv := []string{"-l", "127.0.0.1", "-p", p, "-U", p, "-t", "1"}
		if os.Geteuid() == 0 {
			argv = append(argv, "-u", "root") // memcached refuses to run as root otherwise
		}
		cmd := exec.Command(MemcachedPath, append(argv, args...)...)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		addr := net.JoinHostPort("127.0.0.1", p)
		var gone bool
		if lastErr, gone = waitMemcached(addr, exited); lastErr == nil {
			t.Cleanup(func() {
				_ = cmd.Process.Kill()
				<-exited
			})
			return addr
		}
		if !gone { // a port taken between the probe and the start: try another
			_ = cmd.Process.Kill()
			<-exited
		}
	}
	t.Fatalf("memcached did not start: %v", lastErr)
	return ""
}

// freePort finds a port free for both TCP and UDP on loopback.
func freePort() (int, error) {
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		l.Close()
		if err != nil {
			continue
		}
		u.Close()
		return port, nil
	}
	return 0, fmt.Errorf("no port free for both TCP and UDP")
}

// waitMemcached waits until addr answers "version"; gone reports that the
// process exited (its exit was read from exited).
func waitMemcached(addr string, exited <-chan error) (err error, gone bool) {
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("memcached exited: %v", err), true
		default:
		}
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			_ = c.SetDeadline(time.Now().Add(time.Second))
			_, err = c.Write([]byte("version\r\n"))
			if err == nil {
				var line string
				line, err = bufio.NewReader(c).ReadString('\n')
				if err == nil && len(line) > 8 && line[:8] == "VERSION " {
					c.Close()
					return nil, false
				}
			}
			c.Close()
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("memcached at %s did not answer within 5s", addr), false
}
