package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/rebound-net/rebound/internal/testutil"
)

func lab(t *testing.T, prefix string, args ...string) (string, error) {
	cmd := exec.Command("bash", append([]string{"../scripts/lab.sh"}, args...)...)
	cmd.Env = append(os.Environ(), "LAB_PREFIX="+prefix, "LAB_QUEUES=2")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func netnsExists(t *testing.T, name string) bool {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == name {
			return true
		}
	}
	return false
}

// scripts/lab.sh: up twice is up once, the lab serves, down removes
// exactly its namespaces, and down twice is fine.
func TestLabScriptIdempotent(t *testing.T) {
	testutil.RequirePriv(t)
	prefix := fmt.Sprintf("rl%d", os.Getpid()%100000)
	t.Cleanup(func() { _, _ = lab(t, prefix, "down") })
	for i := 0; i < 2; i++ {
		if out, err := lab(t, prefix, "up"); err != nil {
			t.Fatalf("up #%d: %v\n%s", i+1, err, out)
		}
	}
	for _, ns := range []string{prefix + "-srv", prefix + "-cli"} {
		if !netnsExists(t, ns) {
			t.Fatalf("namespace %s missing after up", ns)
		}
	}
	srv := startServer(t, &testutil.NS{Name: prefix + "-srv"}, "--mode", "xdp", "--iface", prefix+"s0")
	out, code := run(t, &testutil.NS{Name: prefix + "-cli"}, "call", "--target", "198.18.0.2:7000", "ping", "lab")
	if code != 0 || !strings.Contains(out, "lab") {
		t.Fatalf("ping through the lab: exit %d\n%s", code, out)
	}
	if code, _ := srv.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("server exit %d", code)
	}
	if out, err := lab(t, prefix, "exec", "cli", "true"); err != nil {
		t.Fatalf("exec: %v %s", err, out)
	}
	for i := 0; i < 2; i++ {
		if out, err := lab(t, prefix, "down"); err != nil {
			t.Fatalf("down #%d: %v\n%s", i+1, err, out)
		}
	}
	for _, ns := range []string{prefix + "-srv", prefix + "-cli"} {
		if netnsExists(t, ns) {
			t.Fatalf("namespace %s still there after down", ns)
		}
	}
}
