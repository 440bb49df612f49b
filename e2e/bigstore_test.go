package e2e

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/rebound-net/rebound/internal/testenv"
)

// bigstoreReport is the part of scripts/bigstore.sh's
// RESULTS/bigstore-report.json the test reads.
type bigstoreReport struct {
	Items   int `json:"items"`
	Keys    int `json:"keys"`
	Rounds  int `json:"rounds"`
	Servers map[string]struct {
		Runs []struct {
			Round      int     `json:"round"`
			Throughput float64 `json:"throughput"`
			P50        float64 `json:"p50_us"`
			P99        float64 `json:"p99_us"`
			P999       float64 `json:"p999_us"`
			Hits       uint64  `json:"hits"`
			Misses     uint64  `json:"misses"`
			Bad        uint64  `json:"bad"`
		} `json:"runs"`
		Mem map[string]struct {
			Items     uint64 `json:"items"`
			Evictions uint64 `json:"evictions"`
			RSS       uint64 `json:"rss"`
			HWM       uint64 `json:"hwm"`
		} `json:"mem"`
		P999Mean float64 `json:"p999_us_mean"`
	} `json:"servers"`
	Ratio       float64   `json:"p999_ratio"`
	RatioRounds []float64 `json:"p999_ratio_rounds"`
	Pass        bool      `json:"pass"`
	Errors      []string  `json:"errors"`
}

// scripts/bigstore.sh for real, small: 200,000 items in one server, none
// in the other, one round of a one-second load against each. The report
// it writes holds both servers' figures, the filled server every item,
// and a p99.9 ratio that is the one its figures give. Speed itself is the
// script's to report, not this test's to assert.
func TestBigstoreScript(t *testing.T) {
	if testing.Short() {
		testenv.Skip(t, "-short: runs two servers and a load against each (about 10 s)")
	}
	if _, err := exec.LookPath("python3"); err != nil {
		testenv.Skip(t, "python3 not found (the script's report needs it): %v", err)
	}
	const items, keys = 200_000, 2000
	dir := t.TempDir()
	cmd := exec.Command("bash", "../scripts/bigstore.sh")
	cmd.Env = append(os.Environ(), "BIN="+reboundBin(t), "RESULTS="+dir, "BIG_ITEMS="+strconv.Itoa(items), "BIG_MEM=256",
		"BIG_KEYS="+strconv.Itoa(keys), "BIG_DURATION=1s", "BIG_WARMUP=200ms", "ROUNDS=1", "BIG_PORT="+strconv.Itoa(bigstorePorts(t)))
	out, err := cmd.CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("bigstore.sh: %v", err)
	}
	for _, want := range []string{"| 1 | big | " + fmt.Sprintf("%d,%03d", (items+keys)/1000, (items+keys)%1000), "| 1 | empty | 2,000 |", "| mean | big / empty |"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the table lacks %q", want)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "bigstore-report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rep bigstoreReport
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Items != items || rep.Keys != keys || rep.Rounds != 1 || len(rep.Errors) > 0 {
		t.Errorf("items %d, keys %d, rounds %d, errors %q", rep.Items, rep.Keys, rep.Rounds, rep.Errors)
	}
	// What each server holds after the fill and after the load: the load
	// stores its keys in both, and nothing is evicted.
	held := map[string][2]uint64{"big": {items, items + keys}, "empty": {0, keys}}
	for _, name := range []string{"big", "empty"} {
		s, ok := rep.Servers[name]
		if !ok {
			t.Fatalf("no figures for the %s server", name)
		}
		if len(s.Runs) != 1 {
			t.Fatalf("%s: %d runs, want 1", name, len(s.Runs))
		}
		r := s.Runs[0]
		if r.Round != 1 || r.Throughput <= 0 || r.P50 <= 0 || r.P99 < r.P50 || r.P999 < r.P99 || r.Hits == 0 || r.Misses != 0 || r.Bad != 0 {
			t.Errorf("%s: %+v", name, r)
		}
		if s.P999Mean != r.P999 {
			t.Errorf("%s: p99.9 mean %v of one run %v", name, s.P999Mean, r.P999)
		}
		for i, stage := range []string{"fill", "load"} {
			m, ok := s.Mem[stage]
			if !ok {
				t.Fatalf("%s: no memory figures after the %s", name, stage)
			}
			if m.Items != held[name][i] || m.Evictions != 0 {
				t.Errorf("%s after the %s: %d items, %d evicted; want %d, none", name, stage, m.Items, m.Evictions, held[name][i])
			}
			if m.RSS == 0 || m.HWM < m.RSS {
				t.Errorf("%s after the %s: VmRSS %d, VmHWM %d", name, stage, m.RSS, m.HWM)
			}
		}
	}
	want := rep.Servers["big"].Runs[0].P999 / rep.Servers["empty"].Runs[0].P999
	if math.Abs(rep.Ratio-want) > 1e-9*want || len(rep.RatioRounds) != 1 || math.Abs(rep.RatioRounds[0]-want) > 1e-9*want {
		t.Errorf("p99.9 ratio %v (rounds %v), the figures give %v", rep.Ratio, rep.RatioRounds, want)
	}
	if rep.Pass != (rep.Ratio <= 1.2) {
		t.Errorf("pass %v with a ratio of %.2f", rep.Pass, rep.Ratio)
	}
	// The fill's own record agrees with what the server held.
	var fill struct {
		Sets  int `json:"sets"`
		Stats struct {
			CurrItems int `json:"curr_items"`
		} `json:"stats"`
	}
	if b, err := os.ReadFile(filepath.Join(dir, "bigstore-fill.json")); err != nil {
		t.Error(err)
	} else if err := json.Unmarshal(b, &fill); err != nil || fill.Sets != items || fill.Stats.CurrItems != items {
		t.Errorf("bigstore-fill.json: %+v, %v", fill, err)
	}
}

// bigstorePorts returns a port P with P to P+3 free on loopback for TCP and
// UDP: the script's two servers take two ports each from BIG_PORT up.
func bigstorePorts(t *testing.T) int {
	t.Helper()
	free := func(port int) bool {
		a := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		l, err := net.Listen("tcp", a)
		if err != nil {
			return false
		}
		defer l.Close()
		u, err := net.ListenPacket("udp", a)
		if err != nil {
			return false
		}
		u.Close()
		return true
	}
	for range 50 {
		// Below Linux's ephemeral range (32768 up), where nothing is handed out unasked.
		p := 20000 + rand.IntN(12000)
		if free(p) && free(p+1) && free(p+2) && free(p+3) {
			return p
		}
	}
	t.Fatal("no four consecutive loopback ports free for TCP and UDP")
	return 0
}
