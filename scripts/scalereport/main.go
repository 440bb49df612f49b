// Command scalereport turns the raw measurements of scripts/scale.sh (one
// JSON line per server, queue count and round) into the scaling report:
// a JSON document of rows, one per server and queue count, and an SVG of
// replies/s and replies per server core-second against queues.
//
//	go run ./scripts/scalereport -in raw.jsonl -json scale.json -svg scale.svg
//	go run ./scripts/scalereport -check scale.json      # validate a report's shape
//
// Standard library only.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"sort"
	"strings"
	"time"
)

// raw is one line of scale.sh's output.
type raw struct {
	Server       string  `json:"server"`
	Queues       int     `json:"queues"`
	Round        int     `json:"round"`
	ClkTck       float64 `json:"clk_tck"`
	WallS        float64 `json:"wall_s"`
	ProcessTicks float64 `json:"process_ticks"`
	NAPITicks    float64 `json:"napi_ticks"`
	SoftirqTicks float64 `json:"softirq_ticks"`
	ServerCPUs   string  `json:"server_cpus"`
	ClientCPUs   string  `json:"client_cpus"`
	Bench        struct {
		Throughput float64 `json:"throughput"`
		Received   float64 `json:"received"`
		Lost       float64 `json:"lost"`
		Bad        float64 `json:"bad"`
		Hits       float64 `json:"hits"`
		Misses     float64 `json:"misses"`
		P50        float64 `json:"p50_us"`
		P99        float64 `json:"p99_us"`
	} `json:"bench"`
}

// Row is one server at one queue count, averaged over its rounds.
type Row struct {
	Server          string    `json:"server"`
	Queues          int       `json:"queues"`
	RepliesPerS     float64   `json:"replies_per_s"`
	ServerCores     float64   `json:"server_cores"`       // process + kernel, at the measured rate
	RepliesPerCoreS float64   `json:"replies_per_core_s"` // replies per second of server CPU
	ProcessCores    float64   `json:"process_cores"`      // the server process (user + system)
	KernelCores     float64   `json:"kernel_cores"`       // the server interface's NAPI threads
	SoftirqCores    float64   `json:"softirq_cores"`      // /proc/stat softirq, every CPU, both sides (reference)
	NsPerReply      float64   `json:"ns_per_reply"`       // server CPU per reply
	P50us           float64   `json:"p50_us"`
	P99us           float64   `json:"p99_us"`
	Lost            float64   `json:"lost"`
	Bad             float64   `json:"bad"`
	Misses          float64   `json:"misses"`
	Runs            []float64 `json:"runs_replies_per_s"` // each round's replies/s
	ServerCPUs      string    `json:"server_cpus"`
	ClientCPUs      string    `json:"client_cpus"`
}

// Report is the JSON document.
type Report struct {
	Generated string `json:"generated"`
	Machine   string `json:"machine"`
	Settings  string `json:"settings"`
	Rows      []Row  `json:"rows"`
}

// serverOrder is the order of the rows, the legend and the colours.
var serverOrder = []string{"rebound-xdp", "rebound-afxdp", "rebound-udp", "memcached"}

var serverLabel = map[string]string{
	"rebound-xdp":   "rebound, answers in XDP",
	"rebound-afxdp": "rebound, AF_XDP only",
	"rebound-udp":   "rebound, udp mode",
	"memcached":     "memcached -t Q",
}

func rank(s string) int {
	if i := slices.Index(serverOrder, s); i >= 0 {
		return i
	}
	return len(serverOrder)
}

// build averages the raw lines into rows.
func build(lines []raw) ([]Row, error) {
	type key struct {
		s string
		q int
	}
	groups := map[key][]raw{}
	for _, l := range lines {
		if l.Bench.Received <= 0 || l.ClkTck <= 0 {
			continue // a failed run: no row from it
		}
		k := key{l.Server, l.Queues}
		groups[k] = append(groups[k], l)
	}
	if len(groups) == 0 {
		return nil, errors.New("no measurement with replies")
	}
	var rows []Row
	for k, g := range groups {
		r := Row{Server: k.s, Queues: k.q, ServerCPUs: g[0].ServerCPUs, ClientCPUs: g[0].ClientCPUs}
		n := float64(len(g))
		for _, l := range g {
			proc := l.ProcessTicks / l.ClkTck
			napi := l.NAPITicks / l.ClkTck
			perReply := (proc + napi) / l.Bench.Received // CPU seconds per reply, over the whole run
			tp := l.Bench.Throughput
			r.Runs = append(r.Runs, math.Round(tp))
			r.RepliesPerS += tp / n
			r.ProcessCores += proc / l.Bench.Received * tp / n
			r.KernelCores += napi / l.Bench.Received * tp / n
			if l.WallS > 0 {
				r.SoftirqCores += l.SoftirqTicks / l.ClkTck / l.WallS / n
			}
			r.NsPerReply += perReply * 1e9 / n
			r.P50us += l.Bench.P50 / n
			r.P99us += l.Bench.P99 / n
			r.Lost += l.Bench.Lost
			r.Bad += l.Bench.Bad
			r.Misses += l.Bench.Misses
		}
		r.ServerCores = r.ProcessCores + r.KernelCores
		if r.ServerCores > 0 {
			r.RepliesPerCoreS = r.RepliesPerS / r.ServerCores
		}
		r.RepliesPerS = math.Round(r.RepliesPerS)
		r.RepliesPerCoreS = math.Round(r.RepliesPerCoreS)
		for _, p := range []*float64{&r.ServerCores, &r.ProcessCores, &r.KernelCores, &r.SoftirqCores} {
			*p = math.Round(*p*1000) / 1000
		}
		for _, p := range []*float64{&r.NsPerReply, &r.P50us, &r.P99us} {
			*p = math.Round(*p*10) / 10
		}
		rows = append(rows, r)
	}
	sort.Slice(rows, func(i, j int) bool {
		if a, b := rank(rows[i].Server), rank(rows[j].Server); a != b {
			return a < b
		}
		if rows[i].Server != rows[j].Server {
			return rows[i].Server < rows[j].Server
		}
		return rows[i].Queues < rows[j].Queues
	})
	return rows, nil
}

// Check validates a report's shape: rows for known servers and queue
// counts from 1, positive rates and cores, and replies per core-second
// that are replies/s over server cores.
func Check(r *Report) error {
	if len(r.Rows) == 0 {
		return errors.New("no rows")
	}
	seen := map[string]bool{}
	for i, row := range r.Rows {
		at := fmt.Sprintf("row %d (%s, %d queues)", i, row.Server, row.Queues)
		switch {
		case rank(row.Server) == len(serverOrder):
			return fmt.Errorf("%s: unknown server %q", at, row.Server)
		case row.Queues < 1:
			return fmt.Errorf("%s: queues below 1", at)
		case !(row.RepliesPerS > 0):
			return fmt.Errorf("%s: replies_per_s %v", at, row.RepliesPerS)
		case !(row.ServerCores > 0):
			return fmt.Errorf("%s: server_cores %v", at, row.ServerCores)
		case math.Abs(row.ProcessCores+row.KernelCores-row.ServerCores) > 0.002:
			return fmt.Errorf("%s: process %v + kernel %v cores is not server_cores %v", at, row.ProcessCores, row.KernelCores, row.ServerCores)
		case math.Abs(row.RepliesPerCoreS*row.ServerCores-row.RepliesPerS) > 0.01*row.RepliesPerS:
			return fmt.Errorf("%s: replies_per_core_s %v x server_cores %v is not replies_per_s %v", at, row.RepliesPerCoreS, row.ServerCores, row.RepliesPerS)
		case len(row.Runs) == 0:
			return fmt.Errorf("%s: no runs", at)
		}
		k := fmt.Sprint(row.Server, row.Queues)
		if seen[k] {
			return fmt.Errorf("%s: twice", at)
		}
		seen[k] = true
	}
	return nil
}

func readRaw(r io.Reader) ([]raw, error) {
	var out []raw
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var l raw
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		out = append(out, l)
	}
	return out, sc.Err()
}

func main() {
	in := flag.String("in", "", "raw measurements from scale.sh (JSON lines)")
	jsonOut := flag.String("json", "", "write the report here")
	svgOut := flag.String("svg", "", "write the plot here")
	machine := flag.String("machine", "", "the machine, in words")
	settings := flag.String("settings", "", "the load, in words")
	check := flag.String("check", "", "validate this report and exit")
	flag.Parse()
	if err := run(*in, *jsonOut, *svgOut, *machine, *settings, *check); err != nil {
		fmt.Fprintln(os.Stderr, "scalereport:", err)
		os.Exit(1)
	}
}

func run(in, jsonOut, svgOut, machine, settings, check string) error {
	if check != "" {
		b, err := os.ReadFile(check)
		if err != nil {
			return err
		}
		var r Report
		if err := json.Unmarshal(b, &r); err != nil {
			return fmt.Errorf("%s: %w", check, err)
		}
		if err := Check(&r); err != nil {
			return fmt.Errorf("%s: %w", check, err)
		}
		return nil
	}
	if in == "" || jsonOut == "" {
		return errors.New("want -in and -json (or -check)")
	}
	f, err := os.Open(in)
	if err != nil {
		return err
	}
	lines, err := readRaw(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("%s: %w", in, err)
	}
	rows, err := build(lines)
	if err != nil {
		return fmt.Errorf("%s: %w", in, err)
	}
	rep := &Report{Generated: time.Now().UTC().Format(time.RFC3339), Machine: machine, Settings: settings, Rows: rows}
	if err := Check(rep); err != nil {
		return err
	}
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(jsonOut, append(b, '\n'), 0o644); err != nil {
		return err
	}
	if svgOut != "" {
		var sb strings.Builder
		renderSVG(&sb, rep)
		if err := os.WriteFile(svgOut, []byte(sb.String()), 0o644); err != nil {
			return err
		}
	}
	return nil
}
