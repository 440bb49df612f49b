package deploy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"go/build"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/rebound-net/rebound/bpf"
	"github.com/rebound-net/rebound/internal/testenv"
	"github.com/rebound-net/rebound/internal/testutil"
	"github.com/rebound-net/rebound/userspace"
	"github.com/rebound-net/rebound/userspace/mcserve"
	"github.com/rebound-net/rebound/userspace/store"
)

// dashboard is the part of a Grafana dashboard the test reads.
type dashboard struct {
	Title      string  `json:"title"`
	UID        string  `json:"uid"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name       string `json:"name"`
			Type       string `json:"type"`
			Definition string `json:"definition"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID      int    `json:"id"`
	Type    string `json:"type"`
	Title   string `json:"title"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
}

// promKeywords are PromQL's words that are not metric names: keywords,
// binary operators and the aggregations (which may be followed by
// "by (...)" before their "(").
var promKeywords = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
	"bool": true, "and": true, "or": true, "unless": true, "offset": true, "atan2": true,
	"inf": true, "nan": true, "Inf": true, "NaN": true,
	"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true, "stdvar": true, "count": true,
	"count_values": true, "bottomk": true, "topk": true, "quantile": true, "limitk": true, "limit_ratio": true,
}

// skipString returns the index just past the string literal that starts
// at i, or -1 when it does not end.
func skipString(expr string, i int) int {
	q := expr[i]
	for j := i + 1; j < len(expr); j++ {
		switch {
		case expr[j] == '\\' && q != '`':
			j++
		case expr[j] == q:
			return j + 1
		}
	}
	return -1
}

// selector is a metric a query selects and the labels it matches on.
type selector struct {
	name   string
	labels []string
}

// query is what the test reads of a PromQL expression: its selectors and
// the labels it groups or matches by (by, without, on, ignoring,
// group_left, group_right).
type query struct {
	selectors []selector
	grouping  []string
}

func (q query) names() []string {
	var out []string
	for _, s := range q.selectors {
		out = append(out, s.name)
	}
	return out
}

// metricNames returns the metric names a PromQL expression selects.
func metricNames(expr string) ([]string, error) {
	q, err := parseQuery(expr)
	return q.names(), err
}

// parseQuery reads a PromQL expression's selectors: the identifiers that
// are not functions or aggregations (followed by "("), keywords, label
// names (inside {...} and by/without/on/ignoring (...)), durations (inside
// [...]), strings, numbers or Grafana variables ($x); with the label names
// of the matchers in the braces that follow each.
func parseQuery(expr string) (query, error) {
	var q query
	labelList := false // inside by (...), without (...), on (...), ignoring (...)
	attach := -1       // the selector a "{" right here belongs to
	for i := 0; i < len(expr); {
		if c := expr[i]; c != '{' && !isIdent(c) {
			attach = -1
		}
		c := expr[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			if i = skipString(expr, i); i < 0 {
				return q, fmt.Errorf("unterminated string in %s", expr)
			}
		case c == '{' || c == '[':
			end := map[byte]byte{'{': '}', '[': ']'}[c]
			j, expectLabel := i+1, c == '{'
			for j < len(expr) && expr[j] != end {
				switch b := expr[j]; {
				case b == '"' || b == '\'' || b == '`':
					if j = skipString(expr, j); j < 0 {
						return q, fmt.Errorf("unterminated string in %s", expr)
					}
					continue
				case b == ',':
					expectLabel = c == '{'
				case expectLabel && isIdent(b):
					k := j
					for k < len(expr) && isIdent(expr[k]) {
						k++
					}
					if attach >= 0 {
						q.selectors[attach].labels = append(q.selectors[attach].labels, expr[j:k])
					}
					expectLabel = false
					j = k
					continue
				}
				j++
			}
			if j >= len(expr) {
				return q, fmt.Errorf("unclosed %c at %d", c, i)
			}
			attach = -1
			i = j + 1
		case c == '$':
			i++
			for i < len(expr) && (isIdent(expr[i]) || expr[i] == '{' || expr[i] == '}') {
				i++
			}
		case c >= '0' && c <= '9' || c == '.':
			for i < len(expr) && (isIdent(expr[i]) || expr[i] == '.') {
				i++
			}
		case isIdent(c):
			j := i
			for j < len(expr) && isIdent(expr[j]) {
				j++
			}
			word := expr[i:j]
			k := j
			for k < len(expr) && expr[k] == ' ' {
				k++
			}
			call := k < len(expr) && expr[k] == '('
			attach = -1
			switch {
			case word == "by" || word == "without" || word == "on" || word == "ignoring" || word == "group_left" || word == "group_right":
				labelList = call
			case labelList:
				q.grouping = append(q.grouping, word)
			case call || promKeywords[word]:
			default:
				q.selectors = append(q.selectors, selector{name: word})
				attach = len(q.selectors) - 1
			}
			i = j
		case c == ')':
			labelList = false
			i++
		default:
			i++
		}
	}
	return q, nil
}

func isIdent(c byte) bool {
	return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func TestMetricNames(t *testing.T) {
	for _, c := range []struct {
		expr string
		want string
	}{
		{`rebound_kv_items`, "rebound_kv_items"},
		{`sum by (transport, queue) (rate(rebound_requests_total{instance=~"$instance",x="a}b"}[$__rate_interval]))`, "rebound_requests_total"},
		{`histogram_quantile(0.99, sum by (le) (rate(h_bucket{a="1"}[5m]))) / on (job) group_left (x) b_total offset 5m`, "h_bucket b_total"},
		{`(a + b) / ignoring (q) c > bool 1e3 and d unless e or max without (z) (f)`, "a b c d e f"},
		{`label_values(rebound_worker_up{job=~"$job"}, instance)`, "rebound_worker_up instance"}, // the caller cuts label_values
		{`x{y='z\'w'} * ${var} + 0x1F`, "x"},
	} {
		got, err := metricNames(c.expr)
		if err != nil || strings.Join(got, " ") != c.want {
			t.Errorf("%s: %q, %v; want %q", c.expr, got, err, c.want)
		}
	}
	q, err := parseQuery(`sum by (cmd, outcome) (rate(m_total{instance=~"$i", cmd="g,{x}", outcome!~'h'}[5m])) / on (job) n{a="1"} + o`)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(q.selectors, q.grouping); got != "[{m_total [instance cmd outcome]} {n [a]} {o []}] [cmd outcome job]" {
		t.Errorf("selectors and grouping: %s", got)
	}
	series := scrapeSeries("# HELP a x\na_total{cmd=\"get\",odd=\"a=\\\"b,c\"} 1\nb 2\n")
	if got := fmt.Sprint(series); got != "map[a_total:map[cmd:true odd:true] b:map[]]" {
		t.Errorf("scrapeSeries: %s", got)
	}
	for _, bad := range []string{`a{b="c}`, `rate(a[5m)`, `"open`} {
		if _, err := metricNames(bad); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

var labelValues = regexp.MustCompile(`^label_values\((.*),\s*[a-zA-Z_]\w*\)$`)

// usedQuery is one query of the dashboard and where it is.
type usedQuery struct {
	where string
	q     query
}

// dashboardMetrics reads the dashboard and returns every metric name its
// panels and variables query, each with where, and the queries.
func dashboardMetrics(t *testing.T) (map[string][]string, []usedQuery) {
	t.Helper()
	b, err := os.ReadFile("grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("grafana-dashboard.json: %v", err)
	}
	if d.Title == "" || d.UID == "" || len(d.Panels) == 0 {
		t.Fatalf("dashboard without title, uid or panels: %q %q %d", d.Title, d.UID, len(d.Panels))
	}
	used := map[string][]string{}
	var queries []usedQuery
	add := func(where, expr string) {
		q, err := parseQuery(expr)
		if err != nil || len(q.selectors) == 0 {
			t.Errorf("%s: %q: no metric (%v)", where, expr, err)
		}
		for _, n := range q.names() {
			used[n] = append(used[n], where)
		}
		queries = append(queries, usedQuery{where, q})
	}
	ids := map[int]bool{}
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d twice", p.ID)
		}
		ids[p.ID] = true
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			add(fmt.Sprintf("panel %q %s", p.Title, q.RefID), q.Expr)
		}
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		m := labelValues.FindStringSubmatch(v.Definition)
		if m == nil {
			t.Errorf("variable %s: %q is not label_values(selector, label)", v.Name, v.Definition)
			continue
		}
		add("variable "+v.Name, m[1])
	}
	return used, queries
}

// scrapeSeries returns the sample names on a Prometheus text page, each
// with the names of the labels its series carry.
func scrapeSeries(body string) map[string]map[string]bool {
	series := map[string]map[string]bool{}
	for _, line := range strings.Split(body, "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.IndexAny(line, "{ ")
		if i <= 0 {
			continue
		}
		labels := series[line[:i]]
		if labels == nil {
			labels = map[string]bool{}
			series[line[:i]] = labels
		}
		if line[i] != '{' {
			continue
		}
		// name="value",... up to the closing brace; values are quoted.
		for j := i + 1; j < len(line) && line[j] != '}'; {
			eq := strings.IndexByte(line[j:], '=')
			if eq < 0 {
				break
			}
			labels[strings.TrimSpace(strings.TrimPrefix(line[j:j+eq], ","))] = true
			if k := skipString(line, j+eq+1); k > 0 {
				j = k
			} else {
				break
			}
		}
	}
	return series
}

func get(url string) (string, error) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("%s: %s", url, resp.Status)
	}
	return string(b), err
}

// metricsOf returns the series the server's metrics handler serves now.
func metricsOf(srv *userspace.Server, svc *userspace.Service) map[string]map[string]bool {
	rec := httptest.NewRecorder()
	userspace.MetricsHandler(srv, svc).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	return scrapeSeries(rec.Body.String())
}

// TestDashboardMetricsExist checks that every metric the Grafana
// dashboard queries exists on a running server: Rebound's own (in udp
// mode with memcached's protocol, after a request dropped and one
// answered with an error; in xdp mode with answers in XDP, on the veth
// lab, as root) and the memcached_exporter's, run against Rebound's
// memcached port as fleets run it. Where a source cannot run here (no
// root, no exporter binary) its metrics are not checked and the test
// says so (and fails under CI=true or REBOUND_REQUIRE_PRIV=1).
func TestDashboardMetricsExist(t *testing.T) {
	used, queries := dashboardMetrics(t)
	have := map[string]map[string]bool{}
	merge := func(series map[string]map[string]bool) {
		for n, labels := range series {
			if have[n] == nil {
				have[n] = map[string]bool{}
			}
			for l := range labels {
				have[n][l] = true
			}
		}
	}
	ran := map[string]bool{}
	source := func(name string) string {
		switch {
		case strings.HasPrefix(name, "memcached_"):
			return "exporter"
		case strings.HasPrefix(name, "rebound_xdp_"), strings.HasPrefix(name, "rebound_xsk_"):
			return "xdp"
		}
		return "udp"
	}

	t.Run("udp", func(t *testing.T) {
		st := store.New(store.Config{MemoryLimit: 16 << 20})
		svc := userspace.NewService(userspace.ServiceConfig{Store: st})
		srv, err := userspace.NewServer(userspace.Config{Mode: userspace.ModeUDP, Listen: "127.0.0.1:0", Workers: 1,
			MemcacheListen: "127.0.0.1:0", Handler: svc, Memcache: mcserve.New(mcserve.Config{Store: st})})
		if err != nil {
			t.Fatal(err)
		}
		if err := srv.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(srv.Stop)
		mcAddr := srv.MemcacheAddr().String()
		// A value too large for a UDP reply to an untrusted source: its
		// GET over UDP is answered with an error (rejects, amplification);
		// a datagram too short for the Rebound header is dropped.
		c, err := net.Dial("tcp", mcAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		big := strings.Repeat("v", 4000)
		fmt.Fprintf(c, "set big 0 0 %d\r\n%s\r\nget big\r\nget nope\r\nmn\r\n", len(big), big)
		if _, err := io.ReadAll(io.LimitReader(c, int64(len("STORED\r\nVALUE big 0 4000\r\n\r\nEND\r\nEND\r\nMN\r\n")+len(big)))); err != nil {
			t.Fatal(err)
		}
		for _, d := range []struct{ addr, msg string }{
			{srv.Addr().String(), "hi"},
			{mcAddr, "\x00\x01\x00\x00\x00\x01\x00\x00get big\r\n"},
		} {
			u, err := net.Dial("udp", d.addr)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = u.Write([]byte(d.msg))
			u.Close()
		}
		var series map[string]map[string]bool
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			series = metricsOf(srv, svc)
			if series["rebound_drops_total"] != nil && series["rebound_rejects_total"] != nil || time.Now().After(deadline) {
				break
			}
		}
		merge(series)
		ran["udp"] = true

		t.Run("exporter", func(t *testing.T) {
			bin := exporterBin(t)
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			listen := ln.Addr().String()
			ln.Close()
			ctx, cancel := context.WithCancel(context.Background())
			cmd := exec.CommandContext(ctx, bin, "--memcached.address="+mcAddr, "--web.listen-address="+listen)
			var log bytes.Buffer
			cmd.Stdout, cmd.Stderr = &log, &log
			if err := cmd.Start(); err != nil {
				cancel()
				t.Fatal(err)
			}
			done := make(chan struct{})
			go func() { _ = cmd.Wait(); close(done) }()
			defer func() { cancel(); <-done }()
			var body string
			for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
				if body, err = get("http://" + listen + "/metrics"); err == nil {
					break
				}
				select {
				case <-done:
					t.Fatalf("memcached_exporter exited: %s", log.String())
				default:
				}
				if time.Now().After(deadline) {
					t.Fatalf("no scrape of memcached_exporter at %s: %v\n%s", listen, err, log.String())
				}
			}
			if !strings.Contains(body, "\nmemcached_up 1\n") {
				t.Fatalf("memcached_exporter says Rebound is not up:\n%s", body)
			}
			merge(scrapeSeries(body))
			ran["exporter"] = true
		})
	})

	t.Run("xdp", func(t *testing.T) {
		l := testutil.NewLab(t, 1)
		st := store.New(store.Config{MemoryLimit: 16 << 20})
		svc := userspace.NewService(userspace.ServiceConfig{Store: st})
		srv, err := userspace.NewServer(userspace.Config{Mode: userspace.ModeXDP, Iface: l.SrvIf.Name, XDPMode: bpf.ModeNative,
			Listen: ":7000", Workers: 1, Handler: svc, Memcache: mcserve.New(mcserve.Config{Store: st}),
			MemcacheListen: ":11211", Answers: st})
		if err != nil {
			t.Fatal(err)
		}
		l.Srv.Do(t, func() { err = srv.Start(context.Background()) })
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(srv.Stop)
		merge(metricsOf(srv, svc))
		ran["xdp"] = true
	})

	var missing, unchecked []string
	for name, where := range used {
		switch {
		case have[name] != nil:
		case !ran[source(name)]:
			unchecked = append(unchecked, fmt.Sprintf("%s (%s)", name, source(name)))
		default:
			missing = append(missing, fmt.Sprintf("%s, queried by %s", name, strings.Join(where, "; ")))
		}
	}
	// The labels each query matches on are on its metric's series, and
	// those it groups by on at least one of its metrics' (Prometheus adds
	// instance and job when it scrapes).
	added := map[string]bool{"instance": true, "job": true}
	for _, u := range queries {
		for _, sel := range u.q.selectors {
			for _, l := range sel.labels {
				if have[sel.name] != nil && !added[l] && !have[sel.name][l] {
					missing = append(missing, fmt.Sprintf("label %s of %s, matched by %s", l, sel.name, u.where))
				}
			}
		}
		for _, l := range u.q.grouping {
			found, known := added[l], false
			for _, sel := range u.q.selectors {
				known = known || have[sel.name] != nil
				found = found || have[sel.name][l]
			}
			if known && !found {
				missing = append(missing, fmt.Sprintf("label %s, grouped by in %s, on none of its metrics", l, u.where))
			}
		}
	}
	sort.Strings(missing)
	for _, m := range missing {
		t.Errorf("the dashboard queries what no running server has: %s", m)
	}
	t.Logf("%d metrics queried; sources run: %v", len(used), ran)
	if len(unchecked) > 0 {
		sort.Strings(unchecked)
		testenv.Skip(t, "not checked, their source could not run here: %s", strings.Join(unchecked, ", "))
	}
}

// exporterBin returns the memcached_exporter binary (on $PATH or in
// $GOPATH/bin, where .ci/run installs it), or skips.
func exporterBin(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("memcached_exporter")
	if err != nil {
		path = filepath.Join(build.Default.GOPATH, "bin", "memcached_exporter")
	}
	return testenv.Tool(t, path, "go install github.com/prometheus/memcached_exporter/cmd/memcached_exporter@v0.15.0")
}
