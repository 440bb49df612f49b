package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/rebound-net/rebound/internal/testenv"
	"github.com/rebound-net/rebound/internal/testutil"
)

func rawLine(server string, q, round int, tp, procTicks, napiTicks float64) string {
	return fmt.Sprintf(`{"server":%q,"queues":%d,"round":%d,"clk_tck":100,"wall_s":3.2,"process_ticks":%v,"napi_ticks":%v,"softirq_ticks":50,`+
		`"server_cpus":"1","client_cpus":"0","bench":{"throughput":%v,"received":%v,"lost":0,"bad":0,"hits":%v,"misses":0,"p50_us":80,"p99_us":300}}`,
		server, q, round, procTicks, napiTicks, tp, tp*3, tp*3)
}

// Rows average their rounds; a reply's cost is the server's CPU over the
// replies of the whole run; the report and its plot have every server.
func TestBuildCheckRender(t *testing.T) {
	var lines []string
	for _, s := range serverOrder {
		for q := 1; q <= 2; q++ {
			lines = append(lines, rawLine(s, q, 1, 100000*float64(q), 150, 60), rawLine(s, q, 2, 120000*float64(q), 150, 60))
		}
	}
	lines = append(lines, `{"server":"memcached","queues":3,"round":1,"clk_tck":100,"bench":{}}`) // a failed run: no row
	raws, err := readRaw(strings.NewReader(strings.Join(lines, "\n")))
	if err != nil {
		t.Fatal(err)
	}
	rows, err := build(raws)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 8 || rows[0].Server != "rebound-xdp" || rows[0].Queues != 1 || rows[7].Server != "memcached" || rows[7].Queues != 2 {
		t.Fatalf("rows %+v", rows)
	}
	r := rows[0]
	// Round 1: 2.1 CPU s over 300k replies = 7 us each, at 100k/s = 0.7
	// cores; round 2: 2.1 s over 360k, at 120k/s = 0.7 cores.
	if r.RepliesPerS != 110000 || r.ServerCores != 0.7 || r.ProcessCores != 0.5 || r.KernelCores != 0.2 ||
		r.RepliesPerCoreS != 157143 || len(r.Runs) != 2 {
		t.Fatalf("row %+v", r)
	}
	rep := &Report{Machine: "test", Settings: "s", Rows: rows}
	if err := Check(rep); err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	renderSVG(&sb, rep)
	svg := sb.String()
	for _, want := range []string{"<svg", "</svg>", "replies per server core-second", "memcached -t Q", "rebound, answers in XDP", "polyline"} {
		if !strings.Contains(svg, want) {
			t.Errorf("svg lacks %q", want)
		}
	}
	for name, bad := range map[string]func(*Row){
		"unknown server": func(r *Row) { r.Server = "redis" },
		"no replies":     func(r *Row) { r.RepliesPerS = 0 },
		"no cores":       func(r *Row) { r.ServerCores, r.ProcessCores, r.KernelCores = 0, 0, 0 },
		"split":          func(r *Row) { r.KernelCores += 0.5 },
		"per core":       func(r *Row) { r.RepliesPerCoreS *= 2 },
		"queues":         func(r *Row) { r.Queues = 0 },
	} {
		rows2 := append([]Row(nil), rows...)
		bad(&rows2[3])
		if err := Check(&Report{Rows: rows2}); err == nil {
			t.Errorf("%s: Check passed", name)
		}
	}
	if err := Check(&Report{}); err == nil {
		t.Error("an empty report passed")
	}
}

// scripts/bench.sh --scale for real, short: 1 and 2 queues (1 on a
// one-CPU machine), each server once; the report it writes has the shape.
func TestScaleScript(t *testing.T) {
	testutil.RequirePriv(t)
	if testing.Short() {
		testenv.Skip(t, "-short: the scaling run takes about a minute")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "rebound")
	if out, err := exec.Command("go", "build", "-o", bin, filepath.Join(root, "cmd/rebound")).CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	queues := "1 2"
	if runtime.NumCPU() < 2 {
		queues = "1"
	}
	cmd := exec.Command(filepath.Join(root, "scripts/bench.sh"), "--scale")
	cmd.Env = append(os.Environ(), "BIN="+bin, "RESULTS="+dir, "OUT_NAME=scale-test", "QUEUES="+queues, "DURATION=1", "WARMUP=0.2",
		"ROUNDS=1", "WINDOW=32", fmt.Sprintf("LAB_PREFIX=rq%d", os.Getpid()%100000))
	out, err := cmd.CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("bench.sh --scale: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "scale-test.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rep Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if err := Check(&rep); err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for _, q := range strings.Fields(queues) {
		for _, s := range serverOrder {
			if s == "memcached" {
				if _, err := exec.LookPath("memcached"); err != nil {
					continue
				}
			}
			want[s+" "+q] = true
		}
	}
	for _, r := range rep.Rows {
		if r.Lost > r.RepliesPerS/10 || r.Bad != 0 || r.Misses != 0 {
			t.Errorf("%s %d queues: lost %v bad %v misses %v", r.Server, r.Queues, r.Lost, r.Bad, r.Misses)
		}
		delete(want, fmt.Sprintf("%s %d", r.Server, r.Queues))
	}
	if len(want) > 0 {
		t.Fatalf("rows missing: %v", want)
	}
	if svg, err := os.ReadFile(filepath.Join(dir, "scale-test.svg")); err != nil || !strings.Contains(string(svg), "</svg>") {
		t.Fatalf("svg: %v", err)
	}
}
