package userspace_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rebound-net/rebound/internal/cpuset"
	"github.com/rebound-net/rebound/internal/testenv"
	"github.com/rebound-net/rebound/internal/testutil"
	"github.com/rebound-net/rebound/userspace"
)

// threadCPUs returns the Cpus_allowed_list of every thread of this
// process.
func threadCPUs(t *testing.T) map[string]int {
	t.Helper()
	dirs, err := filepath.Glob("/proc/self/task/*/status")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, d := range dirs {
		b, err := os.ReadFile(d)
		if err != nil {
			continue // the thread exited
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "Cpus_allowed_list:"); ok {
				out[strings.TrimSpace(v)]++
			}
		}
	}
	return out
}

// Config.CPUs pins queue q's worker thread to CPUs[q] (here in reverse,
// so that the order is seen to matter), and a list shorter than the queues
// is refused before anything serves.
func TestXDPWorkersPinned(t *testing.T) {
	allowed, err := cpuset.Allowed()
	if err != nil {
		t.Fatal(err)
	}
	l := testutil.NewLab(t, 2)
	var short error
	l.Srv.Do(t, func() {
		srv, err := userspace.NewServer(userspace.Config{Mode: userspace.ModeXDP, Iface: l.SrvIf.Name, Listen: ":7000", Workers: 1,
			CPUs: allowed[:1], Handler: userspace.NewService(userspace.ServiceConfig{KVMemory: 8 << 20})})
		if err != nil {
			t.Fatal(err)
		}
		short = srv.Start(context.Background())
		srv.Stop()
	})
	if short == nil || !strings.Contains(short.Error(), "1 CPU(s) for 2 queues") {
		t.Fatalf("one CPU for two queues: %v", short)
	}
	cpus := []int{allowed[len(allowed)-1], allowed[0]}
	if len(allowed) == 1 {
		testenv.Skip(t, "one CPU: nothing to tell the queues apart by")
	}
	startInLab(t, l, userspace.Config{CPUs: cpus})
	want := []string{cpuset.Format(cpus[:1]), cpuset.Format(cpus[1:])}
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := threadCPUs(t)
		if got[want[0]] >= 1 && got[want[1]] >= 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("threads by allowed CPUs %v: want one pinned to %s and one to %s", got, want[0], want[1])
		}
		time.Sleep(10 * time.Millisecond)
	}
}
