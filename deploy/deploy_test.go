package deploy_test

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/rebound-net/rebound/doctor"
	"github.com/rebound-net/rebound/internal/testenv"
	"github.com/rebound-net/rebound/userspace"
)

const installedBinary = "/usr/local/bin/rebound"

// systemdAnalyze returns the path of systemd-analyze, or skips the test
// loudly; with CI=true or REBOUND_REQUIRE_PRIV=1 its absence fails it.
func systemdAnalyze(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("systemd-analyze")
	if err != nil {
		testenv.Skip(t, "systemd-analyze not found (Debian: systemd): the unit is not verified")
	}
	return p
}

// buildRebound builds the rebound command into dir: verify wants the
// binary of ExecStart to exist, and the unit's command lines are run
// against it.
func buildRebound(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "rebound")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/rebound-net/rebound/cmd/rebound")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// install copies the unit, with ExecStart's binary replaced by bin, and
// the given drop-ins into a fresh unit directory, and returns the unit's
// path.
func install(t *testing.T, dir, bin string, extra string, dropins ...string) string {
	t.Helper()
	unit, err := os.ReadFile("rebound.service")
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(unit), installedBinary, bin) + extra
	if err := os.WriteFile(filepath.Join(dir, "rebound.service"), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, d := range dropins {
		b, err := os.ReadFile(d)
		if err != nil {
			t.Fatal(err)
		}
		dd := filepath.Join(dir, "rebound.service.d")
		if err := os.MkdirAll(dd, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dd, filepath.Base(d)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "rebound.service")
}

// verify runs systemd-analyze verify on the unit and returns what it says
// about it (drop-ins are read from the unit's directory).
func verify(t *testing.T, analyze, unit string) []string {
	t.Helper()
	cmd := exec.Command(analyze, "verify", unit)
	cmd.Env = append(os.Environ(), "SYSTEMD_UNIT_PATH="+filepath.Dir(unit)+":", "SYSTEMD_LOG_COLOR=0")
	out, err := cmd.CombinedOutput()
	var about []string
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		line := sc.Text()
		if strings.Contains(line, filepath.Dir(unit)) || strings.Contains(line, "rebound") {
			about = append(about, line)
		} else if strings.TrimSpace(line) != "" {
			t.Logf("systemd-analyze (not about the unit): %s", line)
		}
	}
	if err != nil {
		about = append(about, "systemd-analyze verify: "+err.Error())
	}
	return about
}

func TestVerifyUnit(t *testing.T) {
	analyze := systemdAnalyze(t)
	bin := buildRebound(t, t.TempDir())
	for _, tc := range []struct {
		name    string
		dropins []string
	}{{"as shipped", nil}} {
		t.Run(tc.name, func(t *testing.T) {
			unit := install(t, t.TempDir(), bin, "", tc.dropins...)
			if lines := verify(t, analyze, unit); len(lines) > 0 {
				t.Errorf("systemd-analyze verify complains:\n%s", strings.Join(lines, "\n"))
			}
		})
	}
	// The check sees a broken unit: a test of the test.
	t.Run("a broken unit is caught", func(t *testing.T) {
		unit := install(t, t.TempDir(), bin, "NoSuchKey=1\n")
		if lines := verify(t, analyze, unit); len(lines) == 0 {
			t.Error("verify said nothing about an unknown key")
		}
	})
	t.Run("a missing binary is caught", func(t *testing.T) {
		unit := install(t, t.TempDir(), filepath.Join(t.TempDir(), "absent"), "")
		if lines := verify(t, analyze, unit); len(lines) == 0 {
			t.Error("verify said nothing about a missing ExecStart binary")
		}
	})
	// The unit's command lines exist in the binary.
	for _, args := range [][]string{{"serve", "-h"}, {"doctor", "-h"}} {
		if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil || !strings.Contains(string(out), "-iface") {
			t.Errorf("rebound %v: %v\n%s", args, err, out)
		}
	}
}

// unitValues returns every value of key in the unit, in order.
func unitValues(t *testing.T, path, key string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var vals []string
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && strings.TrimSpace(k) == key {
			vals = append(vals, strings.TrimSpace(v))
		}
	}
	return vals
}

// TestUnitPrivileges pins down what the unit grants: the four capabilities
// XDP needs (rebound doctor checks the same), no more, and locked memory
// by limit rather than by CAP_IPC_LOCK.
func TestUnitPrivileges(t *testing.T) {
	want := []string{"CAP_BPF", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_PERFMON"}
	for _, key := range []string{"AmbientCapabilities", "CapabilityBoundingSet"} {
		v := unitValues(t, "rebound.service", key)
		if len(v) != 1 {
			t.Fatalf("%s set %d times, want once", key, len(v))
		}
		got := strings.Fields(v[0])
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("%s=%v, want %v", key, got, want)
		}
	}
	for key, want := range map[string]string{
		"LimitMEMLOCK": "infinity", "DynamicUser": "yes", "NoNewPrivileges": "yes", "ProtectSystem": "strict",
		"EnvironmentFile": "-/etc/default/rebound", "Restart": "on-failure",
		"ExecStart": installedBinary + " serve --iface ${REBOUND_IFACE} $REBOUND_ARGS",
	} {
		if v := unitValues(t, "rebound.service", key); len(v) != 1 || v[0] != want {
			t.Errorf("%s=%q, want %q", key, v, want)
		}
	}
	fams := strings.Fields(strings.Join(unitValues(t, "rebound.service", "RestrictAddressFamilies"), " "))
	for _, f := range []string{"AF_XDP", "AF_NETLINK", "AF_INET", "AF_INET6"} {
		if !slices.Contains(fams, f) {
			t.Errorf("RestrictAddressFamilies lacks %s: %v", f, fams)
		}
	}
	if v := unitValues(t, "rebound.service", "SystemCallFilter"); len(v) == 0 || !slices.Contains(strings.Fields(v[0]), "bpf") {
		t.Errorf("SystemCallFilter=%v: serve needs bpf(), which @system-service lacks", v)
	}
}

// TestDefaultFile: the EnvironmentFile sets only what the unit reads.
func TestDefaultFile(t *testing.T) {
	b, err := os.ReadFile("rebound.default")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		if line = strings.TrimSpace(line); line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, _, ok := strings.Cut(line, "=")
		if !ok || (k != "REBOUND_IFACE" && k != "REBOUND_ARGS") {
			t.Errorf("rebound.default: %q: want REBOUND_IFACE= or REBOUND_ARGS=", line)
		}
		seen[k] = true
	}
	if !seen["REBOUND_IFACE"] || !seen["REBOUND_ARGS"] {
		t.Errorf("rebound.default sets %v, want both REBOUND_IFACE and REBOUND_ARGS", seen)
	}
}

// TestUnitOpenFiles: the unit's LimitNOFILE holds serve's default
// --max-conns (every TCP port together), with its sockets, on a large host (256
// CPUs, 256 queues): serve and doctor count the same way.
func TestUnitOpenFiles(t *testing.T) {
	b, err := os.ReadFile("rebound.service")
	if err != nil {
		t.Fatal(err)
	}
	var limit uint64
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "LimitNOFILE="); ok {
			if limit, err = strconv.ParseUint(v, 10, 64); err != nil {
				t.Fatalf("LimitNOFILE=%s: %v", v, err)
			}
		}
	}
	need := doctor.ServeFiles(doctor.DefaultMaxConns, 256, 256)
	if limit < need {
		t.Fatalf("LimitNOFILE=%d, want at least %d (--max-conns %d, 256 CPUs and queues)", limit, need, doctor.DefaultMaxConns)
	}
	if doctor.DefaultMaxConns != userspace.DefaultMaxConns {
		t.Fatalf("doctor counts %d connections a port, serve defaults to %d", doctor.DefaultMaxConns, userspace.DefaultMaxConns)
	}
}
