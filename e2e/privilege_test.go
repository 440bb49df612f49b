package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rebound-net/rebound/client"
	"github.com/rebound-net/rebound/internal/testutil"
)

// capSets reads CapEff and CapPrm of every thread of pid.
func capSets(t *testing.T, pid int) map[string][2]uint64 {
	t.Helper()
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
	if err != nil || len(tasks) == 0 {
		t.Fatalf("threads of %d: %v", pid, err)
	}
	out := map[string][2]uint64{}
	for _, f := range tasks {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // the thread exited
		}
		var eff, prm uint64
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "CapEff:\t"); ok {
				eff, _ = strconv.ParseUint(v, 16, 64)
			}
			if v, ok := strings.CutPrefix(line, "CapPrm:\t"); ok {
				prm, _ = strconv.ParseUint(v, 16, 64)
			}
		}
		out[f] = [2]uint64{eff, prm}
	}
	return out
}

// A served process holds no more than it needs: started as root, once
// serving in xdp mode every thread holds CAP_NET_ADMIN and CAP_BPF only
// (in udp mode, nothing), and it still serves, reloads its allow-list on
// SIGHUP (a new BPF map) and stops cleanly.
func TestLeastPrivilege(t *testing.T) {
	const netAdmin, bpfCap = 12, 39
	for _, m := range []struct {
		name string
		xdp  bool
		want uint64
	}{{"xdp-native", true, 1<<netAdmin | 1<<bpfCap}, {"udp", false, 0}} {
		t.Run(m.name, func(t *testing.T) {
			l := testutil.NewLab(t, 1)
			cfg := filepath.Join(t.TempDir(), "rebound.conf")
			write := func(allow string) {
				if err := os.WriteFile(cfg, []byte("allow_src = [\""+allow+"\"]\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			write("198.18.0.0/24")
			args := []string{"--mode", "udp", "--config", cfg}
			if m.xdp {
				args = []string{"--mode", "xdp", "--xdp-mode", "native", "--iface", l.SrvIf.Name, "--config", cfg}
			}
			s := startServer(t, l.Srv, args...)
			deadline := time.Now().Add(5 * time.Second)
			for !strings.Contains(s.Log(), "dropped the capabilities") {
				if time.Now().After(deadline) {
					t.Fatalf("no capability drop logged:\n%s", s.Log())
				}
				time.Sleep(10 * time.Millisecond)
			}
			for task, c := range capSets(t, s.cmd.Process.Pid) {
				if c[0] != m.want || c[1] != m.want {
					t.Errorf("%s: CapEff %016x CapPrm %016x, want %016x", task, c[0], c[1], m.want)
				}
			}
			ping := func() bool {
				c := dial(t, l.Cli, "198.18.0.2:7000", client.Options{Timeout: 200 * time.Millisecond, Retries: 2, NoTCPRetry: true})
				defer c.Close()
				_, err := c.Ping(context.Background(), []byte("after the drop"))
				return err == nil
			}
			if !ping() {
				t.Fatalf("no answer after dropping capabilities:\n%s", s.Log())
			}
			write("10.0.0.0/8")
			before := strings.Count(s.Log(), "reloaded allow-src")
			_ = s.cmd.Process.Signal(syscall.SIGHUP)
			for strings.Count(s.Log(), "reloaded allow-src") == before {
				if time.Now().After(deadline.Add(5 * time.Second)) {
					t.Fatalf("allow-list not reloaded without the dropped capabilities:\n%s", s.Log())
				}
				time.Sleep(10 * time.Millisecond)
			}
			if ping() {
				t.Fatalf("served after the reload left this source out:\n%s", s.Log())
			}
			if code, _ := s.stop(syscall.SIGTERM); code != 0 || strings.Contains(s.Log(), "could not restore") {
				t.Fatalf("exit %d:\n%s", code, s.Log())
			}
		})
	}
}
