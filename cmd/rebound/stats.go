package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

const statsExamples = `  rebound stats --metrics 127.0.0.1:9100          # a summary of a server started with --metrics 127.0.0.1:9100
  rebound stats --metrics 127.0.0.1:9100 --raw    # the rebound_* metric lines as they are
`

// sample is one metric line: name, labels, value.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

// parseSamples reads the Prometheus text format (with prometheus/common's
// parser, the reference one) and returns the rebound_* counters and gauges.
func parseSamples(r io.Reader) ([]sample, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, err
	}
	var out []sample
	for name, f := range families {
		if !strings.HasPrefix(name, "rebound_") {
			continue
		}
		for _, m := range f.GetMetric() {
			var v float64
			switch {
			case m.Counter != nil:
				v = m.GetCounter().GetValue()
			case m.Gauge != nil:
				v = m.GetGauge().GetValue()
			case m.Untyped != nil:
				v = m.GetUntyped().GetValue()
			default:
				continue // histograms: not in the summary
			}
			s := sample{name: name, labels: map[string]string{}, value: v}
			for _, l := range m.GetLabel() {
				s.labels[l.GetName()] = l.GetValue()
			}
			out = append(out, s)
		}
	}
	return out, nil
}

func statsCmd(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("stats", "stats --metrics HOST:PORT [--raw | --all]", statsExamples, stderr)
	addr := fs.String("metrics", "127.0.0.1:9100", "the server's --metrics `HOST:PORT`")
	raw := fs.Bool("raw", false, "print the rebound_* metric lines as they are")
	all := fs.Bool("all", false, "print every metric line, the Go runtime's and the process's included")
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	hc := &http.Client{Timeout: 5 * time.Second}
	resp, err := hc.Get("http://" + *addr + "/metrics")
	if err != nil {
		fmt.Fprintf(stderr, "rebound stats: %v (is the server running with --metrics %s?)\n", err, *addr)
		return exitFailure
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "rebound stats: %s answered %s\n", *addr, resp.Status)
		return exitFailure
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		fmt.Fprintf(stderr, "rebound stats: read %s: %v\n", *addr, err)
		return exitFailure
	}
	if *raw || *all {
		for _, line := range strings.Split(string(body), "\n") {
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			if *all || strings.HasPrefix(line, "rebound_") {
				fmt.Fprintln(stdout, line)
			}
		}
		return exitOK
	}
	samples, err := parseSamples(bytes.NewReader(body))
	if err != nil {
		fmt.Fprintf(stderr, "rebound stats: %s: not the Prometheus text format: %v\n", *addr, err)
		return exitFailure
	}
	printSummary(stdout, samples)
	return exitOK
}

// printSummary prints the counters an operator looks at first: per worker,
// the XDP program's outcomes, the AF_XDP sockets' kernel events, the store.
func printSummary(w io.Writer, samples []sample) {
	type key struct{ transport, queue string }
	type row struct {
		rx, tx, drops, rejects, txErr float64
		state                         string
	}
	rows := map[key]*row{}
	reasons := map[string]float64{}
	xdpOut := map[string]float64{}
	xsk := map[string]float64{}
	kv := map[string]float64{}
	mc := map[string]float64{}
	answers := map[string]float64{}
	get := func(k key) *row {
		if rows[k] == nil {
			rows[k] = &row{}
		}
		return rows[k]
	}
	for _, s := range samples {
		k := key{s.labels["transport"], s.labels["queue"]}
		switch s.name {
		case "rebound_requests_total":
			get(k).rx += s.value
		case "rebound_replies_total":
			get(k).tx += s.value
		case "rebound_drops_total":
			get(k).drops += s.value
			reasons["dropped: "+s.labels["reason"]] += s.value
		case "rebound_rejects_total":
			get(k).rejects += s.value
			reasons["answered with an error: "+s.labels["reason"]] += s.value
		case "rebound_tx_errors_total":
			get(k).txErr += s.value
		case "rebound_xdp_packets_total":
			xdpOut[s.labels["outcome"]] += s.value
		case "rebound_xdp_answers_total":
			if s.value != 0 {
				answers[s.labels["op"]+" "+s.labels["outcome"]] += s.value
			}
		case "rebound_xdp_answer_items":
			answers["items held"] = s.value
		case "rebound_xdp_answer_no_room_total":
			answers["writes not held (no room)"] = s.value
		case "rebound_xdp_answers_failed":
			if s.value != 0 {
				answers["FAILED: answering turned off"] = s.value
			}
		case "rebound_xsk_events_total":
			xsk[s.labels["event"]] += s.value
		case "rebound_kv_items", "rebound_kv_evictions_total", "rebound_kv_expired_total", "rebound_kv_bytes":
			kv[strings.TrimPrefix(s.name, "rebound_kv_")] = s.value
		case "rebound_worker_up":
			if s.value == 0 {
				get(k).state = "FAILED"
			} else if get(k).state == "" {
				get(k).state = "ok"
			}
		case "rebound_worker_tx_stalled":
			if s.value != 0 && get(k).state != "FAILED" {
				get(k).state = "tx stalled"
			}
		case "rebound_memcache_commands_total":
			mc[s.labels["cmd"]+" commands"] += s.value
		case "rebound_memcache_outcomes_total":
			if s.value != 0 {
				mc[s.labels["cmd"]+" "+s.labels["outcome"]] += s.value
			}
		case "rebound_memcache_connections":
			mc["connections open"] = s.value
		}
	}
	keys := make([]key, 0, len(rows))
	for k := range rows {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].transport != keys[j].transport {
			return keys[i].transport > keys[j].transport // xdp, udp, tcp
		}
		return keys[i].queue < keys[j].queue
	})
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "transport\tqueue\tstate\trequests\treplies\tdropped\terror replies\tsend errors\t")
	for _, k := range keys {
		r := rows[k]
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.0f\t%.0f\t%.0f\t%.0f\t%.0f\t\n", k.transport, k.queue, r.state, r.rx, r.tx, r.drops, r.rejects, r.txErr)
	}
	tw.Flush()
	printMap := func(title string, m map[string]float64) {
		if len(m) == 0 {
			return
		}
		names := make([]string, 0, len(m))
		for n := range m {
			names = append(names, n)
		}
		sort.Strings(names)
		fmt.Fprintf(w, "\n%s\n", title)
		for _, n := range names {
			fmt.Fprintf(w, "  %-40s %.0f\n", n, m[n])
		}
	}
	printMap("why requests were not answered normally:", reasons)
	printMap("XDP program (packets by outcome):", xdpOut)
	printMap("answers in XDP (hit: sent with XDP_TX; others went to userspace):", answers)
	printMap("AF_XDP sockets (kernel events, all queues):", xsk)
	printMap("kv store:", kv)
	printMap("memcached:", mc)
}
