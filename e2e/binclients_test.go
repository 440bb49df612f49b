package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rebound-net/rebound/internal/testenv"
	"github.com/rebound-net/rebound/internal/testutil"
)

// Real binary-protocol clients against memcached 1.6 and Rebound, the same
// script through each, the outputs compared line by line:
// python3-binary-memcached, python3-pylibmc with binary=True and Debian's
// ruby-dalli 3.0 (binary by default). With --auth-file, bmemcached and
// Dalli log in through SASL PLAIN and answer as without it; a wrong
// password is refused.

const (
	binaryClientsScript = "testdata/memcache/binary_clients.py"
	dalliScript         = "testdata/memcache/dalli_check.rb"
)

// runClient runs a client script with a deadline and returns its output.
func runClient(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	return string(out), err
}

func needBinaryClients(t *testing.T) {
	t.Helper()
	testenv.Tool(t, "/usr/bin/python3", "Debian: python3")
	if out, err := exec.Command("/usr/bin/python3", "-c", "import bmemcached, pylibmc").CombinedOutput(); err != nil {
		testenv.Skip(t, "python3-binary-memcached and python3-pylibmc (Debian; .ci/run installs them): %v %s", err, out)
	}
}

func needDalli(t *testing.T) {
	t.Helper()
	testenv.Tool(t, "/usr/bin/ruby", "Debian: ruby ruby-dalli")
	if out, err := exec.Command("/usr/bin/ruby", "-e", `require "dalli"; exit(Dalli::VERSION.start_with?("3.0") ? 0 : 1)`).CombinedOutput(); err != nil {
		testenv.Skip(t, "ruby-dalli 3.0 (Debian; .ci/run installs it): %v %s", err, out)
	}
}

// startRebound starts the real binary with memcached's port on loopback
// and returns that address.
func startReboundMC(t *testing.T, args ...string) string {
	t.Helper()
	port, mcPort := mcFreePort(t), mcFreePort(t)
	mcAddr := "127.0.0.1:" + strconv.Itoa(mcPort)
	if _, err := startLocalServer(t, append([]string{"--listen", "127.0.0.1:" + strconv.Itoa(port),
		"--memcache-listen", mcAddr, "--workers", "1"}, args...)...); err != nil {
		t.Fatal(err)
	}
	return mcAddr
}

func sameOutput(t *testing.T, client, want, got string) {
	t.Helper()
	wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
	if len(wl) < 10 {
		t.Fatalf("%s against memcached said too little:\n%s", client, want)
	}
	for i := range max(len(wl), len(gl)) {
		var w, g string
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if w != g {
			t.Errorf("%s, line %d:\nmemcached: %s\nrebound:   %s", client, i+1, w, g)
		}
	}
}

func TestBinaryClients(t *testing.T) {
	oracle := testutil.StartMemcached(t)
	ours := startReboundMC(t)
	t.Run("bmemcached", func(t *testing.T) {
		needBinaryClients(t)
		want, err := runClient(t, "/usr/bin/python3", binaryClientsScript, oracle, "bmemcached")
		if err != nil {
			t.Fatalf("against memcached: %v\n%s", err, want)
		}
		got, err := runClient(t, "/usr/bin/python3", binaryClientsScript, ours, "bmemcached")
		if err != nil {
			t.Fatalf("against rebound: %v\n%s", err, got)
		}
		sameOutput(t, "bmemcached", want, got)
	})
	t.Run("pylibmc", func(t *testing.T) {
		needBinaryClients(t)
		want, err := runClient(t, "/usr/bin/python3", binaryClientsScript, oracle, "pylibmc")
		if err != nil {
			t.Fatalf("against memcached: %v\n%s", err, want)
		}
		got, err := runClient(t, "/usr/bin/python3", binaryClientsScript, ours, "pylibmc")
		if err != nil {
			t.Fatalf("against rebound: %v\n%s", err, got)
		}
		sameOutput(t, "pylibmc", want, got)
	})
	t.Run("dalli", func(t *testing.T) {
		needDalli(t)
		want, err := runClient(t, "/usr/bin/ruby", dalliScript, oracle)
		if err != nil {
			t.Fatalf("against memcached: %v\n%s", err, want)
		}
		got, err := runClient(t, "/usr/bin/ruby", dalliScript, ours)
		if err != nil {
			t.Fatalf("against rebound: %v\n%s", err, got)
		}
		sameOutput(t, "dalli", want, got)
	})
}

// TestBinaryClientsSASL: bmemcached and Dalli log in to Rebound through
// SASL PLAIN (--auth-file) and then answer as memcached without auth does;
// with a wrong password nothing is served.
func TestBinaryClientsSASL(t *testing.T) {
	oracle := testutil.StartMemcached(t)
	file := filepath.Join(t.TempDir(), "auth")
	if err := os.WriteFile(file, []byte("app:s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ours := startReboundMC(t, "--auth-file", file)
	t.Run("bmemcached", func(t *testing.T) {
		needBinaryClients(t)
		want, err := runClient(t, "/usr/bin/python3", binaryClientsScript, oracle, "bmemcached")
		if err != nil {
			t.Fatalf("against memcached: %v\n%s", err, want)
		}
		got, err := runClient(t, "/usr/bin/python3", binaryClientsScript, ours, "bmemcached", "app", "s3cret")
		if err != nil {
			t.Fatalf("against rebound: %v\n%s", err, got)
		}
		sameOutput(t, "bmemcached with SASL", want, got)
		bad, _ := runClient(t, "/usr/bin/python3", binaryClientsScript, ours, "bmemcached", "app", "wrong")
		if strings.Contains(bad, "get 'v'") {
			t.Fatalf("a wrong password was served:\n%s", bad)
		}
	})
	t.Run("dalli", func(t *testing.T) {
		needDalli(t)
		want, err := runClient(t, "/usr/bin/ruby", dalliScript, oracle)
		if err != nil {
			t.Fatalf("against memcached: %v\n%s", err, want)
		}
		got, err := runClient(t, "/usr/bin/ruby", dalliScript, ours, "app", "s3cret")
		if err != nil {
			t.Fatalf("against rebound: %v\n%s", err, got)
		}
		sameOutput(t, "dalli with SASL", want, got)
		bad, _ := runClient(t, "/usr/bin/ruby", dalliScript, ours, "app", "wrong")
		if strings.Contains(bad, `get "v"`) {
			t.Fatalf("a wrong password was served:\n%s", bad)
		}
	})
}
