package client_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/rebound-net/rebound/client"
	"github.com/rebound-net/rebound/internal/testenv"
	"github.com/rebound-net/rebound/internal/testutil"
)

func ringKeys(n int) [][]byte {
	keys := make([][]byte, n)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "user:%d:profile", i)
	}
	return keys
}

func mustRing(t *testing.T, servers ...string) *client.Ring {
	t.Helper()
	r, err := client.NewRing(servers)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// The ring picks what an independent implementation of libmemcached's
// ketama layout (testdata/ketama.py) picks, for 1000 keys.
func TestRingMatchesKetamaScript(t *testing.T) {
	python := testenv.Tool(t, "/usr/bin/python3", "Debian: python3")
	keys := ringKeys(1000)
	many := make([]string, 25) // 25 servers: 156 points each, not 160
	for i := range many {
		many[i] = fmt.Sprintf("10.0.1.%d:11211", i+1)
	}
	for _, servers := range [][]string{
		{"10.0.0.1:11211", "10.0.0.2:11212", "cache-3.example:22122"},
		{"127.0.0.1:11211", "127.0.0.1:11212"},
		many,
	} {
		ring := mustRing(t, servers...)
		cmd := exec.Command(python, append([]string{"testdata/ketama.py"}, servers...)...)
		cmd.Stdin = bytes.NewReader(append(bytes.Join(keys, []byte("\n")), '\n'))
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("ketama.py: %v", err)
		}
		want := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
		if len(want) != len(keys) {
			t.Fatalf("ketama.py gave %d lines for %d keys", len(want), len(keys))
		}
		differ := 0
		for i, k := range keys {
			if got := ring.Pick(k); got != want[i] {
				if differ++; differ <= 5 {
					t.Errorf("%d servers: key %q: ring picks %s, ketama.py %s", len(servers), k, got, want[i])
				}
			}
		}
		if differ > 0 {
			t.Fatalf("%d servers: %d of %d keys differ", len(servers), differ, len(keys))
		}
	}
}

// Keys spread over the servers within reasonable bounds.
func TestRingSpread(t *testing.T) {
	keys := ringKeys(30000)
	for _, servers := range [][]string{
		{"10.0.0.1:11211", "10.0.0.2:11211"},
		{"10.0.0.1:11211", "10.0.0.2:11211", "10.0.0.3:11211"},
	} {
		ring := mustRing(t, servers...)
		per := map[string]int{}
		for _, k := range keys {
			per[ring.Pick(k)]++
		}
		fair := float64(len(keys)) / float64(len(servers))
		for _, s := range servers {
			if share := float64(per[s]) / fair; share < 0.75 || share > 1.25 {
				t.Errorf("%d servers: %s has %d keys, %.2f of its fair share", len(servers), s, per[s], share)
			}
		}
		t.Logf("%d servers: %v", len(servers), per)
	}
}

// Adding a server moves about 1/n of the keys, all to the new server.
func TestRingStableWhenServerAdded(t *testing.T) {
	keys := ringKeys(30000)
	before := mustRing(t, "10.0.0.1:11211", "10.0.0.2:11211", "10.0.0.3:11211")
	after := mustRing(t, "10.0.0.1:11211", "10.0.0.2:11211", "10.0.0.3:11211", "10.0.0.4:11211")
	moved := 0
	for _, k := range keys {
		b, a := before.Pick(k), after.Pick(k)
		if a == b {
			continue
		}
		moved++
		if a != "10.0.0.4:11211" {
			t.Fatalf("key %q moved from %s to %s, not to the new server", k, b, a)
		}
	}
	if frac := float64(moved) / float64(len(keys)); frac < 0.15 || frac > 0.35 {
		t.Fatalf("%.3f of the keys moved, want about 1/4", frac)
	}
}

func TestNewRingErrors(t *testing.T) {
	for _, servers := range [][]string{nil, {"nocolon"}, {"a:1", "a:1"}, {"a:port"}, {":11211"}} {
		if _, err := client.NewRing(servers); err == nil {
			t.Errorf("NewRing(%q) accepted", servers)
		}
	}
}

// A cluster stores each key on the server the ring picks, and reads it
// back from there over UDP.
func TestClusterRoutesByRing(t *testing.T) {
	servers := []string{testutil.LoopbackServer(t), testutil.LoopbackServer(t), testutil.LoopbackServer(t)}
	ctx := context.Background()
	cl, err := client.DialCluster(ctx, servers, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	direct := map[string]*client.Client{}
	for _, s := range servers {
		c, err := client.Dial(ctx, s, client.Options{TCP: true})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		direct[s] = c
	}
	keys := ringKeys(60)
	per := map[string]int{}
	for _, k := range keys {
		if err := cl.Set(ctx, k, k, 0); err != nil {
			t.Fatal(err)
		}
		owner := cl.Ring().Pick(k)
		per[owner]++
		for s, c := range direct {
			v, err := c.Get(ctx, k)
			if s == owner && (err != nil || !bytes.Equal(v, k)) || s != owner && !errors.Is(err, client.ErrNotFound) {
				t.Fatalf("key %q owned by %s: on %s: %q %v", k, owner, s, v, err)
			}
		}
		if v, err := cl.Get(ctx, k); err != nil || !bytes.Equal(v, k) {
			t.Fatalf("cluster get %q: %q %v", k, v, err)
		}
	}
	if len(per) != len(servers) {
		t.Fatalf("60 keys went to %d servers of 3: %v", len(per), per)
	}
	for _, k := range keys {
		if err := cl.Del(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
}

func TestMemcacheClusterRoutesByRing(t *testing.T) {
	_, mc1 := idleServer(t)
	_, mc2 := idleServer(t)
	servers := []string{mc1, mc2}
	ctx := context.Background()
	cl, err := client.DialMemcacheCluster(ctx, servers, client.MemcacheOptions{UDP: true})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for _, k := range ringKeys(40) {
		if err := cl.Set(ctx, k, k, 3, 0); err != nil {
			t.Fatal(err)
		}
		owner := cl.Ring().Pick(k)
		for _, s := range servers {
			m, err := client.DialMemcache(ctx, s, client.MemcacheOptions{})
			if err != nil {
				t.Fatal(err)
			}
			it, err := m.Get(ctx, k)
			m.Close()
			if s == owner && (err != nil || !bytes.Equal(it.Value, k)) || s != owner && !errors.Is(err, client.ErrCacheMiss) {
				t.Fatalf("key %q owned by %s: on %s: %q %v", k, owner, s, it.Value, err)
			}
		}
		if it, err := cl.Get(ctx, k); err != nil || !bytes.Equal(it.Value, k) || it.Flags != 3 {
			t.Fatalf("cluster get %q over UDP: %+v %v", k, it, err)
		}
		if err := cl.Delete(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
}
