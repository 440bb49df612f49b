package e2e

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/rebound-net/rebound/client"
	"github.com/rebound-net/rebound/internal/testutil"
)

// ipIn runs an ip(8) command inside ns and returns its output and error.
func ipIn(ns *testutil.NS, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns.Name, "ip"}, args...)...).CombinedOutput()
	return string(out), err
}

// answers reports whether a PING from the client namespace is answered
// within a few retries.
func answers(t *testing.T, l *testutil.Lab) bool {
	t.Helper()
	c := dial(t, l.Cli, "198.18.0.2:7000", client.Options{Timeout: 200 * time.Millisecond, Retries: 3})
	defer c.Close()
	_, err := c.Ping(context.Background(), []byte("still there?"))
	return err == nil
}

// Faults on the veth lab, each ending with the server answering (or, when
// its interface is gone, exiting with a clear error) and every frame
// accounted for.
func TestFaults(t *testing.T) {
	for _, m := range modes[:2] {
		t.Run(m.name, func(t *testing.T) {
			t.Run("link down and up under load", func(t *testing.T) {
				l := testutil.NewLab(t, 1)
				s := startServer(t, l.Srv, m.args(l)...)
				res := loadFor(t, l, 3*time.Second, 256)
				time.Sleep(500 * time.Millisecond) // let the load build up
				if out, err := ipIn(l.Srv, "link", "set", l.SrvIf.Name, "down"); err != nil {
					t.Fatalf("link down: %v %s", err, out)
				}
				time.Sleep(1500 * time.Millisecond) // the fault itself lasts this long
				if out, err := ipIn(l.Srv, "link", "set", l.SrvIf.Name, "up"); err != nil {
					t.Fatalf("link up: %v %s", err, out)
				}
				<-res
				deadline := time.Now().Add(10 * time.Second)
				for !answers(t, l) {
					if time.Now().After(deadline) {
						t.Fatalf("no answer 10s after the link came back:\n%s", s.Log())
					}
				}
				if code, _ := s.stop(15); code != 0 || strings.Contains(s.Log(), "does not balance") {
					t.Fatalf("exit %d after the fault:\n%s", code, s.Log())
				}
			})
			t.Run("XDP removed from outside", func(t *testing.T) {
				l := testutil.NewLab(t, 1)
				s := startServer(t, l.Srv, m.args(l)...)
				// The program is attached through a bpf_link, which the
				// netlink detach cannot remove: the attempt fails and
				// serving goes on through AF_XDP.
				out, err := ipIn(l.Srv, "link", "set", "dev", l.SrvIf.Name, "xdp", "off")
				if err == nil && !xdpAttached(t, l.SrvIf) {
					t.Logf("ip link set xdp off succeeded: %s", out)
				}
				if !xdpAttached(t, l.SrvIf) {
					t.Fatalf("the XDP program was removed from outside (%s)", out)
				}
				if !answers(t, l) {
					t.Fatalf("no answer after 'xdp off' (%v: %s):\n%s", err, out, s.Log())
				}
				if code, _ := s.stop(15); code != 0 {
					t.Fatalf("exit %d:\n%s", code, s.Log())
				}
			})
			t.Run("interface deleted while serving", func(t *testing.T) {
				l := testutil.NewLab(t, 1)
				s := startServer(t, l.Srv, m.args(l)...)
				if !answers(t, l) {
					t.Fatalf("no answer before the fault:\n%s", s.Log())
				}
				if out, err := ipIn(l.Srv, "link", "del", l.SrvIf.Name); err != nil {
					t.Fatalf("link del: %v %s", err, out)
				}
				select {
				case <-s.done:
				case <-time.After(10 * time.Second):
					t.Fatalf("server still running 10s after its interface was deleted:\n%s", s.Log())
				}
				if s.err == nil || !strings.Contains(s.Log(), "is gone") {
					t.Fatalf("exit %v, want a failure naming the deleted interface:\n%s", s.err, s.Log())
				}
			})
		})
	}
}
