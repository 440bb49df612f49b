package e2e

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rebound-net/rebound/client"
	"github.com/rebound-net/rebound/codec/rebound"
	"github.com/rebound-net/rebound/loadgen"
)

// SIGHUP reloads the allow-list, the trusted sources and the listen
// addresses from --config under load without losing a reply; a bad file, or a bad prefix in it,
// leaves the lists in force as they were; the listen ports move without a
// lost reply; a setting that cannot change live is reported.
func TestConfigReloadUnderLoad(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "rebound.conf")
	write := func(body string) {
		if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	port, mcPort := mcFreePort(t), mcFreePort(t)
	write("listen = \"127.0.0.1:" + strconv.Itoa(port) + "\"\nmemcache_listen = \"127.0.0.1:" + strconv.Itoa(mcPort) + "\"\nallow_src = [\"127.0.0.0/8\"]\n")
	s, err := startLocalServer(t, "--mode", "udp", "--config", cfg, "--workers", "1")
	if err != nil {
		t.Fatal(err)
	}
	target := "127.0.0.1:" + strconv.Itoa(port)
	hup := func(wantLog string) {
		t.Helper()
		before := strings.Count(s.Log(), wantLog)
		if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for strings.Count(s.Log(), wantLog) == before {
			if time.Now().After(deadline) {
				t.Fatalf("no %q in the log 5s after SIGHUP:\n%s", wantLog, s.Log())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	// Reload twice under load: the lists change, the client stays in.
	res := make(chan *loadgen.BenchResult, 1)
	go func() {
		r, err := loadgen.Bench(context.Background(), loadgen.BenchConfig{Target: target, Window: 32, Flows: 2,
			Duration: 2 * time.Second, Warmup: 100 * time.Millisecond, Timeout: time.Second,
			Mix: []loadgen.OpShare{{Op: rebound.OpPing, Weight: 1}}})
		if err != nil {
			t.Errorf("bench: %v", err)
		}
		res <- r
	}()
	time.Sleep(600 * time.Millisecond) // the load runs meanwhile
	write("listen = \"127.0.0.1:" + strconv.Itoa(port) + "\"\nmemcache_listen = \"127.0.0.1:" + strconv.Itoa(mcPort) + "\"\nallow_src = [\"127.0.0.0/8\", \"10.0.0.0/8\"]\ntrust_src = [\"127.0.0.1/32\"]\n")
	hup("reloaded trust-src")
	time.Sleep(400 * time.Millisecond)
	write("listen = \"127.0.0.1:" + strconv.Itoa(port) + "\"\nmemcache_listen = \"127.0.0.1:" + strconv.Itoa(mcPort) + "\"\nallow_src = [\"::1/128\", \"127.0.0.1/32\"]\n")
	hup("reloaded allow-src")
	r := <-res
	if r == nil || r.Received == 0 || r.Lost != 0 {
		t.Fatalf("load across two reloads: %+v", r)
	}
	t.Logf("across two reloads: %d requests, %d answered, %d lost", r.Sent, r.Received, r.Lost)

	// Move memcached's port under load on the Rebound port: no reply lost,
	// memcached answers on the new port, no longer on the old one.
	mcPort2 := mcFreePort(t)
	conf := func(listenPort, mcp int, allow string) string {
		return "listen = \"127.0.0.1:" + strconv.Itoa(listenPort) + "\"\nmemcache_listen = \"127.0.0.1:" + strconv.Itoa(mcp) +
			"\"\nallow_src = [" + allow + "]\n"
	}
	go func() {
		r, err := loadgen.Bench(context.Background(), loadgen.BenchConfig{Target: target, Window: 32, Flows: 2,
			Duration: 1500 * time.Millisecond, Warmup: 100 * time.Millisecond, Timeout: time.Second,
			Mix: []loadgen.OpShare{{Op: rebound.OpPing, Weight: 1}}})
		if err != nil {
			t.Errorf("bench: %v", err)
		}
		res <- r
	}()
	time.Sleep(500 * time.Millisecond) // the load runs meanwhile
	write(conf(port, mcPort2, `"127.0.0.0/8"`))
	hup("moved the listen addresses")
	if r := <-res; r == nil || r.Received == 0 || r.Lost != 0 {
		t.Fatalf("load across a port move: %+v", r)
	}
	if c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(mcPort2)); err != nil {
		t.Fatalf("memcached not on its new port: %v", err)
	} else {
		c.Close()
	}
	if c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(mcPort)); err == nil {
		c.Close()
		t.Fatal("memcached still accepts on its old port")
	}

	ping := func(target string) bool {
		c, err := client.Dial(context.Background(), target, client.Options{Timeout: 200 * time.Millisecond, Retries: 1})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_, err = c.Ping(context.Background(), []byte("x"))
		return err == nil
	}
	// Move the Rebound port: answered on the new one, not on the old.
	port2 := mcFreePort(t)
	target2 := "127.0.0.1:" + strconv.Itoa(port2)
	write(conf(port2, mcPort2, `"127.0.0.0/8"`))
	hup("moved the listen addresses")
	if !ping(target2) || ping(target) {
		t.Fatalf("after moving to %s: new answers %v, old answers %v", target2, ping(target2), ping(target))
	}
	// A list without us: no longer served.
	write(conf(port2, mcPort2, `"10.0.0.0/8"`))
	hup("reloaded allow-src")
	if ping(target2) {
		t.Fatal("served after a reload that left this source out")
	}
	// A bad prefix, then a file that does not parse: the list in force
	// stays (still not served), and the server runs on.
	write(conf(port2, mcPort2, `"127.0.0.0/8", "not-a-prefix"`))
	hup("allow-src not reloaded")
	write("allow_src = [\"127.0.0.0/8\"\n")
	hup("config not reloaded")
	if ping(target2) {
		t.Fatal("a refused reload changed the list in force")
	}
	// A setting that cannot change live is reported, and the rest applies.
	write(conf(port2, mcPort2, `"127.0.0.0/8"`) + "kv_memory = \"64MiB\"\n")
	hup("reloaded allow-src")
	if !ping(target2) {
		t.Fatal("not served after a reload that let this source in again")
	}
	if !strings.Contains(s.Log(), "kv-memory changed in the config") {
		t.Errorf("a changed kv_memory was not reported as needing a restart:\n%s", s.Log())
	}
}

// A key that is not a setting is refused at start.
func TestConfigFileErrors(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "rebound.conf")
	if err := os.WriteFile(cfg, []byte("no_such_setting = 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(reboundBin(t), "serve", "--config", cfg).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), "unknown setting \"no_such_setting\"") {
		t.Fatalf("%v: %s", err, out)
	}
}
