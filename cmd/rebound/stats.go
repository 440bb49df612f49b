package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

const statsExamples = `  rebound stats --metrics 127.0.0.1:9100          # a summary of a server started with --metrics 127.0.0.1:9100
  rebound stats --metrics 127.0.0.1:9100 --raw    # the rebound_* metric lines as they are
  rebound stats --metrics 127.0.0.1:9100 --watch 1s             # rates each second until interrupted
  rebound stats --metrics 127.0.0.1:9100 --watch 5s --count 12  # a minute of 5-second rates

With --watch, a line per interval: per-second rates over the interval of
requests (as the transports count them: a datagram or AF_XDP frame each,
a read of a TCP stream, and the GETs the XDP program answered), replies, GET hits and misses (memcached's protocol, and hits answered in
XDP), memcached sets, bytes read and written over memcached's protocol,
dropped requests, error replies and send errors, and evictions; then the
items and bytes the store holds and the memcached connections open. A
counter that went down (the server restarted) counts from zero. When it
stops (after --count lines, or on an interrupt) it prints the totals over
the whole watch.
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
	every := fs.Duration("watch", 0, "print per-second rates every `INTERVAL` (e.g. 1s) until interrupted")
	count := fs.Int("count", 0, "with --watch: stop after `N` lines (0: until interrupted)")
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	if *every != 0 {
		if *every < 10*time.Millisecond || *count < 0 || *raw || *all {
			fmt.Fprintln(stderr, "rebound stats: --watch takes an interval of 10ms or more, a --count of 0 or more, and neither --raw nor --all")
			return exitUsage
		}
		ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer cancel()
		return watch(ctx, *addr, *every, *count, stdout, stderr)
	}
	if *count != 0 {
		fmt.Fprintln(stderr, "rebound stats: --count goes with --watch")
		return exitUsage
	}
	body, err := scrape(*addr)
	if err != nil {
		fmt.Fprintf(stderr, "rebound stats: %v\n", err)
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

// scrape fetches the server's metrics page.
func scrape(addr string) ([]byte, error) {
	hc := &http.Client{Timeout: 5 * time.Second}
	resp, err := hc.Get("http://" + addr + "/metrics")
	if err != nil {
		return nil, fmt.Errorf("%w (is the server running with --metrics %s?)", err, addr)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s answered %s", addr, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", addr, err)
	}
	return body, nil
}

// counters is what --watch follows: the counters it turns into rates (in
// the order of rateNames) and the gauges it prints as they are.
type counters struct {
	at                  time.Time
	c                   [numRates]float64
	items, bytes, conns float64
}

// The rates --watch prints, in its columns' order.
const (
	rateRequests = iota
	rateReplies
	rateHits
	rateMisses
	rateSets
	rateReadBytes
	rateWrittenBytes
	rateDrops
	rateErrors
	rateEvictions
	numRates
)

var rateNames = [numRates]string{"req/s", "replies/s", "hits/s", "misses/s", "sets/s", "bytes-in/s", "bytes-out/s", "drops/s", "errors/s", "evict/s"}

// countersOf adds the samples up into what --watch follows.
func countersOf(samples []sample, at time.Time) counters {
	k := counters{at: at}
	for _, s := range samples {
		switch s.name {
		case "rebound_requests_total":
			k.c[rateRequests] += s.value
		case "rebound_replies_total":
			k.c[rateReplies] += s.value
		case "rebound_xdp_answers_total":
			if s.labels["outcome"] == "hit" { // answered in XDP: never reached a worker
				k.c[rateRequests] += s.value
				k.c[rateReplies] += s.value
				k.c[rateHits] += s.value
			}
		case "rebound_memcache_outcomes_total":
			if s.labels["cmd"] == "get" && s.labels["outcome"] == "hit" {
				k.c[rateHits] += s.value
			} else if s.labels["cmd"] == "get" && s.labels["outcome"] == "miss" {
				k.c[rateMisses] += s.value
			}
		case "rebound_memcache_commands_total":
			if s.labels["cmd"] == "set" {
				k.c[rateSets] += s.value
			}
		case "rebound_memcache_bytes_total":
			if s.labels["direction"] == "read" {
				k.c[rateReadBytes] += s.value
			} else {
				k.c[rateWrittenBytes] += s.value
			}
		case "rebound_drops_total":
			k.c[rateDrops] += s.value
		case "rebound_rejects_total", "rebound_tx_errors_total":
			k.c[rateErrors] += s.value
		case "rebound_kv_evictions_total":
			k.c[rateEvictions] += s.value
		case "rebound_kv_items":
			k.items = s.value
		case "rebound_kv_bytes":
			k.bytes = s.value
		case "rebound_memcache_connections":
			k.conns = s.value
		}
	}
	return k
}

// deltas returns how much each counter grew from prev to cur; a counter
// that went down was reset (the server restarted) and counts from zero.
func deltas(prev, cur counters) [numRates]float64 {
	var d [numRates]float64
	for i := range d {
		d[i] = cur.c[i] - prev.c[i]
		if d[i] < 0 {
			d[i] = cur.c[i]
		}
	}
	return d
}

// watch prints a line of rates every interval until ctx ends or count
// lines are out (count 0: no bound), then the totals over the watch.
func watch(ctx context.Context, addr string, every time.Duration, count int, stdout, stderr io.Writer) int {
	read := func() (counters, error) {
		body, err := scrape(addr)
		if err != nil {
			return counters{}, err
		}
		at := time.Now()
		samples, err := parseSamples(bytes.NewReader(body))
		if err != nil {
			return counters{}, fmt.Errorf("%s: not the Prometheus text format: %w", addr, err)
		}
		return countersOf(samples, at), nil
	}
	first, err := read()
	if err != nil {
		fmt.Fprintf(stderr, "rebound stats: %v\n", err)
		return exitFailure
	}
	header := "time    "
	for _, n := range append(rateNames[:], "items", "bytes", "conns") {
		header += fmt.Sprintf(" %11s", n)
	}
	var total [numRates]float64
	prev, lines := first, 0
	tick := time.NewTicker(every)
	defer tick.Stop()
watching:
	for count == 0 || lines < count {
		select {
		case <-ctx.Done():
			break watching // interrupted: print the totals
		case <-tick.C:
		}
		cur, err := read()
		if err != nil { // the server went away for a moment: say so, go on
			fmt.Fprintf(stderr, "rebound stats: %v\n", err)
			continue
		}
		d := deltas(prev, cur)
		secs := cur.at.Sub(prev.at).Seconds()
		if lines%20 == 0 {
			fmt.Fprintln(stdout, header)
		}
		line := cur.at.Format("15:04:05")
		for i := range d {
			total[i] += d[i]
			line += fmt.Sprintf(" %11.0f", d[i]/secs)
		}
		fmt.Fprintf(stdout, "%s %11.0f %11.0f %11.0f\n", line, cur.items, cur.bytes, cur.conns)
		prev = cur
		lines++
	}
	secs := prev.at.Sub(first.at).Seconds()
	fmt.Fprintf(stdout, "total over %.1fs:", secs)
	for i, n := range rateNames {
		fmt.Fprintf(stdout, " %s %.0f", strings.TrimSuffix(n, "/s"), total[i])
		if i < len(rateNames)-1 {
			fmt.Fprint(stdout, ",")
		}
	}
	fmt.Fprintln(stdout)
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
