package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
	"github.com/prometheus/procfs"
	"github.com/rebound-net/rebound/codec/rebound"
	"github.com/rebound-net/rebound/internal/cpuset"
	"github.com/rebound-net/rebound/internal/svgplot"
	"github.com/rebound-net/rebound/loadgen"
)

const benchExamples = `  rebound bench --target 127.0.0.1:7000 --duration 5s                  # PING, closed loop, 32 in flight
  rebound bench --target 127.0.0.1:7000 --op mix=get:90,set:10 --keys 10000 --value-size 100
  rebound bench --target 127.0.0.1:7000 --rate 50000 --duration 10s     # open loop: latency from intended send time, lag and service time apart
  rebound bench --target 127.0.0.1:7000 --transport tcp --connections 4 --window 64 --json
  sudo rebound bench --target 198.18.0.2:7000 --transport xdp --iface rbc0 --window 256   # AF_XDP load
  sudo rebound bench --target 198.18.0.2:7000 --transport xdp --iface rbc0 --queues 2 --cpus 0-1   # a socket per queue, pinned

  # memcached's protocol (target port 11211 by default), against memcached or 'rebound serve':
  rebound bench --protocol memcache --op mix=get:90,set:10 --key-size 32 --value-size 64 --window 256
  rebound bench --protocol memcache --transport tcp --connections 4 --window 64 --target 127.0.0.1:11211
  rebound bench --protocol memcache --transport tcp --tls --tls-ca ca.pem --tls-cert client.pem --tls-key client-key.pem
  sudo rebound bench --protocol memcache --target 198.18.0.2:11211 --transport xdp --iface rbc0 --window 256

With --protocol memcache every key is stored first (over TCP) so that GETs
hit, and every reply is checked: a GET hit must be VALUE with the right key
and length and the stored bytes, END is a miss, a SET must get STORED;
anything else counts as bad. Over UDP requests carry memcached's 8-byte
frame header (the request id matches replies; a reply may span datagrams).

Output: a line a second (rate, p50, p99, errors, lost), then a summary with
throughput, p50/p90/p99/p99.9/max latency from an HDR histogram, and GET
hits, misses and bad replies. In open loop (--rate) latency counts from
each request's intended send time (a late request is not excused), and
two more lines tell its parts apart: the lag (actual send minus intended:
the load generator's) and the service time (reply minus actual send: the
server's and the network's). A flow waits for its next request in ppoll
on a thread with 1 ns timer slack, spinning the last few microseconds
(no more than an eighth of its time), and wakes at most once per --pace. With --hist FILE, the latency percentile
spectrum as text (HdrHistogram's, in µs) and as a plot (FILE.svg); with
--plot OUT.svg NAME=FILE..., no load: the spectra saved earlier, one curve
each, in one plot (--log-y: latency on a log scale, for curves whose tails
are orders of magnitude apart):

  rebound bench --target 127.0.0.1:7000 --hist udp.hist      # udp.hist and udp.svg
  rebound bench --plot both.svg --title "PING, 32 in flight" udp=udp.hist tcp=tcp.hist
` + traceExamples

func benchCmd(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("bench", "bench --target HOST:PORT [flags]", benchExamples, stderr)
	target := fs.String("target", "127.0.0.1:7000", "server `HOST:PORT` (default 127.0.0.1:11211 with --protocol memcache)")
	protocol := fs.String("protocol", "rebound", "`PROTOCOL` of the requests: rebound, or memcache (memcached's text protocol: get and set)")
	transport := fs.String("transport", "udp", "`TRANSPORT`: udp, tcp, or xdp (UDP through the bench's own AF_XDP socket on --iface, root only)")
	iface := fs.String("iface", "", "with --transport xdp: the load generator's `NAME`, on the target's link")
	queues := fs.Int("queues", 1, "with --transport xdp: queues of --iface to load from 0 up, one AF_XDP socket and flow each (the flows)")
	cpus := fs.String("cpus", "", "pin flow i (a worker, connection or queue) to the i-th CPU of this `LIST` (e.g. 0-3 or 2,3), wrapping round")
	op := fs.String("op", "ping", "`OP`: ping, get, set, del, or a mix like mix=get:90,set:10 (memcache: get, set or a mix of them; default get)")
	keys := fs.Int("keys", 1000, "key space for get/set/del (GET keys are stored first)")
	keySize := fs.Int("key-size", 0, "key `bytes`: \"key:\" and the key number zero-padded (default 12; 32 with --protocol memcache)")
	valueSize := fs.Int("value-size", 32, "SET value `bytes`")
	payload := fs.Int("payload", 64, "PING message size in `bytes`, header included (the UDP payload)")
	window := fs.Int("window", 32, "requests in flight per worker (closed loop)")
	rate := fs.Float64("rate", 0, "total requests per second: open loop (0: closed loop); latency counts from each request's intended send time, and the schedule's lag and the service time are reported apart")
	pace := fs.Duration("pace", loadgen.DefaultPace, "with --rate: the least `TIME` between two wake-ups of a flow to send; requests due closer together leave together (up to TIME late, in the lag); shorter keeps the schedule closer and costs the load generator more CPU")
	workers := fs.Int("workers", 1, "UDP sockets, one goroutine each")
	conns := fs.Int("connections", 0, "TCP connections, one goroutine each (default: --workers)")
	duration := fs.Duration("duration", 10*time.Second, "measured time")
	warmup := fs.Duration("warmup", time.Second, "unmeasured time before")
	timeout := fs.Duration("timeout", time.Second, "a request unanswered this long counts as lost")
	asJSON := fs.Bool("json", false, "print the summary as JSON on stdout")
	histFile := fs.String("hist", "", "write the latency percentile spectrum to `FILE` (HdrHistogram text) and its plot beside it (FILE with .svg for its extension)")
	plotFile := fs.String("plot", "", "draw no load: plot the NAME=HISTFILE arguments (files written by --hist) together into `SVG`")
	plotTitle := fs.String("title", "", "with --plot: the plot's `TITLE`")
	logY := fs.Bool("log-y", false, "plots (--hist, --plot): latency on a log scale of whole decades, not a linear one from 0")
	serverPid := fs.Int("server-pid", 0, "report the CPU time of this process over the measured period")
	quiet := fs.Bool("quiet", false, "no live line")
	useTLS := fs.Bool("tls", false, "with --transport tcp: TLS on every connection (a server with --tls-cert, memcached -Z); the server's certificate is not checked unless --tls-ca is given")
	tlsCA := fs.String("tls-ca", "", "with --tls: check the server's certificate against the CAs in this PEM `FILE`")
	tlsCert := fs.String("tls-cert", "", "with --tls: present this client certificate (PEM `FILE`; --tls-key with it)")
	tlsKey := fs.String("tls-key", "", "the private key of --tls-cert (PEM `FILE`)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the load generator to `FILE` (go tool pprof)")
	traceMode := fs.String("trace", "", "no timed load: `MODE` zipf replays a seeded cache-aside trace and reports hit ratios; fill stores --keys items and reports items and RSS per item (memcached's protocol over TCP)")
	traceOpts := addTraceFlags(fs)
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	if *traceMode != "" {
		return traceCmd(fs, *traceMode, traceOpts, stdout, stderr)
	}
	if *plotFile != "" {
		return plotCmd(*plotFile, *plotTitle, *logY, fs.Args(), stderr)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "rebound bench: unexpected arguments %q (NAME=HISTFILE arguments go with --plot)\n", fs.Args())
		return exitUsage
	}
	mix, err := loadgen.ParseMix(*op)
	if err != nil {
		fmt.Fprintf(stderr, "rebound bench: --op: %v\n", err)
		return exitUsage
	}
	proto := loadgen.Rebound
	switch *protocol {
	case "rebound":
	case "memcache", "memcached":
		proto = loadgen.Memcache
		if !flagSet(fs, "op") {
			*op = "get"
			mix = []loadgen.OpShare{{Op: rebound.OpGet, Weight: 100}}
		}
		for _, m := range mix {
			if m.Op != rebound.OpGet && m.Op != rebound.OpSet {
				fmt.Fprintf(stderr, "rebound bench: --op %s: with --protocol memcache the bench sends get and set (e.g. --op mix=get:90,set:10); memcached has no ping\n", *op)
				return exitUsage
			}
		}
		if !flagSet(fs, "target") {
			*target = "127.0.0.1:11211"
		}
	default:
		fmt.Fprintf(stderr, "rebound bench: --protocol %q: want rebound or memcache\n", *protocol)
		return exitUsage
	}
	if *transport != "udp" && *transport != "tcp" && *transport != "xdp" {
		fmt.Fprintf(stderr, "rebound bench: --transport %q: want udp, tcp or xdp\n", *transport)
		return exitUsage
	}
	if (*transport == "xdp") != (*iface != "") {
		fmt.Fprintln(stderr, "rebound bench: --transport xdp and --iface go together")
		return exitUsage
	}
	if *duration > time.Hour {
		fmt.Fprintln(stderr, "rebound bench: --duration above 1h: split the run")
		return exitUsage
	}
	flows := *workers
	if *transport == "tcp" && *conns > 0 {
		flows = *conns
	}
	if *queues < 1 || (*queues > 1 && *transport != "xdp") {
		fmt.Fprintln(stderr, "rebound bench: --queues is 1 or more, and goes with --transport xdp")
		return exitUsage
	}
	if *transport == "xdp" {
		if flagSet(fs, "workers") && *workers != *queues {
			fmt.Fprintln(stderr, "rebound bench: --transport xdp runs one flow per queue: set --queues, not --workers")
			return exitUsage
		}
		flows = *queues
	}
	var cpuList []int
	if *cpus != "" {
		if cpuList, err = cpuset.Parse(*cpus); err == nil {
			err = cpuset.Check(cpuList)
		}
		if err != nil {
			fmt.Fprintf(stderr, "rebound bench: --cpus: %v\n", err)
			return exitUsage
		}
	}
	cfg := loadgen.BenchConfig{Target: *target, TCP: *transport == "tcp", Protocol: proto, Mix: mix, Keys: *keys, KeySize: *keySize, ValueSize: *valueSize,
		Payload: *payload, Window: *window, Rate: *rate, Pace: *pace, Flows: flows, Duration: *duration, Warmup: *warmup,
		Timeout: *timeout, Preload: true, CPUs: cpuList}
	if *useTLS || *tlsCA != "" || *tlsCert != "" || *tlsKey != "" {
		if !*useTLS || *transport != "tcp" {
			fmt.Fprintln(stderr, "rebound bench: the --tls flags go with --tls and --transport tcp")
			return exitUsage
		}
		if cfg.TLS, err = benchTLS(*target, *tlsCA, *tlsCert, *tlsKey); err != nil {
			fmt.Fprintf(stderr, "rebound bench: %v\n", err)
			return exitUsage
		}
	}
	if *transport == "xdp" {
		cfg.XDP = &loadgen.XDPLoad{Iface: *iface, Queues: *queues}
	}
	if !*quiet {
		cfg.Tick = func(t loadgen.Tick) {
			fmt.Fprintf(stderr, "%5.0fs  %10.0f req/s  p50 %-9s p99 %-9s errors %d  lost %d\n", t.Elapsed.Seconds(), t.Rate,
				t.P50.Round(time.Microsecond), t.P99.Round(time.Microsecond), t.Errors, t.Lost)
		}
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	if *cpuProfile != "" {
		stop, err := startCPUProfile(*cpuProfile)
		if err != nil {
			fmt.Fprintf(stderr, "rebound bench: --cpuprofile: %v\n", err)
			return exitFailure
		}
		defer stop()
	}
	cpu0, _ := procCPU(*serverPid)
	self0, _ := procCPU(os.Getpid())
	t0 := time.Now()
	res, err := loadgen.Bench(ctx, cfg)
	if err != nil && res == nil {
		fmt.Fprintf(stderr, "rebound bench: %v\n", err)
		return exitFailure
	}
	cpu1, cpuErr := procCPU(*serverPid)
	self1, selfErr := procCPU(os.Getpid())
	wall := time.Since(t0)
	pct := func(p float64) time.Duration { return res.Percentile(p) }
	summary := map[string]any{
		"target": *target, "protocol": proto.String(), "transport": *transport, "tls": *useTLS, "op": *op, "window": *window, "rate": *rate, "flows": flows,
		"sent": res.Sent, "received": res.Received, "lost": res.Lost, "errors": res.Errors, "truncated": res.Truncated,
		"hits": res.Hits, "misses": res.Misses, "bad": res.Bad,
		"throughput": res.Throughput, "duration_s": res.Elapsed.Seconds(),
		"p50_us": us(pct(50)), "p90_us": us(pct(90)), "p99_us": us(pct(99)), "p999_us": us(pct(99.9)),
		"max_us": us(time.Duration(res.Hist.Max())),
	}
	if *rate > 0 {
		// Open loop: how late requests left against the schedule, and
		// the time from their actual send to the reply.
		addSpread(summary, "lag", res.Lag)
		addSpread(summary, "service", res.Service)
		summary["pace_us"] = us(*pace)
	}
	if selfErr == nil {
		summary["bench_cpu"] = (self1 - self0).Seconds() / wall.Seconds()
	}
	if len(res.Queues) > 0 {
		summary["queues"] = res.Queues
	}
	if *serverPid > 0 && cpuErr == nil {
		summary["server_cpu"] = (cpu1 - cpu0).Seconds() / wall.Seconds()
	}
	if *histFile != "" {
		f, err := os.Create(*histFile)
		if err == nil {
			_, err = res.Hist.PercentilesPrint(f, 5, 1000) // values in microseconds
			err = errors.Join(err, f.Close())
		}
		if err == nil {
			title := fmt.Sprintf("%s (%s over %s), op %s, %.0f replies/s", *target, proto, *transport, *op, res.Throughput)
			err = writeSpectrum(svgName(*histFile), title, *logY, svgplot.Series{Name: *target, Points: spectrum(res.Hist)})
		}
		if err != nil {
			fmt.Fprintf(stderr, "rebound bench: --hist: %v\n", err)
		}
	}
	if *asJSON {
		_ = json.NewEncoder(stdout).Encode(summary)
	} else {
		over := *transport
		if *useTLS {
			over += " with TLS"
		}
		fmt.Fprintf(stdout, "target %s (%s) over %s, op %s, %d flows, ", *target, proto, over, *op, flows)
		if *rate > 0 {
			fmt.Fprintf(stdout, "open loop at %.0f req/s\n", *rate)
		} else {
			fmt.Fprintf(stdout, "closed loop, %d in flight each\n", *window)
		}
		fmt.Fprintf(stdout, "throughput  %.0f replies/s over %s\n", res.Throughput, res.Elapsed)
		fmt.Fprintf(stdout, "latency     p50 %s  p90 %s  p99 %s  p99.9 %s  max %s\n", pct(50).Round(time.Microsecond),
			pct(90).Round(time.Microsecond), pct(99).Round(time.Microsecond), pct(99.9).Round(time.Microsecond),
			time.Duration(res.Hist.Max()).Round(time.Microsecond))
		if *rate > 0 {
			fmt.Fprintf(stdout, "lag         %s  (actual send - intended; latency counts from intended)\n", spread(res.Lag))
			fmt.Fprintf(stdout, "service     %s  (reply - actual send)\n", spread(res.Service))
		}
		fmt.Fprintf(stdout, "requests    sent %d  answered %d  lost %d  truncated %d\n", res.Sent, res.Received, res.Lost, res.Truncated)
		fmt.Fprintf(stdout, "replies     get hits %d  misses %d  bad %d\n", res.Hits, res.Misses, res.Bad)
		for _, q := range res.Queues {
			fmt.Fprintf(stdout, "queue %-5d sent %d  answered %d  frames in %d  crossed in %d out %d\n", q.Queue, q.Sent, q.Received,
				q.RxFrames, q.CrossedIn, q.CrossedOut)
		}
		if len(res.Errors) > 0 {
			var parts []string
			for k, v := range res.Errors {
				parts = append(parts, fmt.Sprintf("%s %d", k, v))
			}
			sort.Strings(parts)
			fmt.Fprintf(stdout, "errors      %s\n", strings.Join(parts, ", "))
		}
		if v, ok := summary["server_cpu"]; ok {
			fmt.Fprintf(stdout, "server cpu  %.0f%% of one core\n", v.(float64)*100)
		}
		if v, ok := summary["bench_cpu"]; ok {
			fmt.Fprintf(stdout, "bench cpu   %.0f%% of one core (this load generator)\n", v.(float64)*100)
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "rebound bench: %v\n", err)
		return exitFailure
	}
	if res.Received == 0 {
		fmt.Fprintln(stderr, "rebound bench: no reply at all: is the server running at", *target+"?")
		return exitFailure
	}
	if res.Bad > 0 {
		fmt.Fprintf(stderr, "rebound bench: %d replies were not what their request asked for\n", res.Bad)
		return exitStatus
	}
	return exitOK
}

// svgName is where the plot of --hist FILE goes: FILE with .svg for its
// extension (FILE.svg when FILE is already an .svg).
func svgName(file string) string {
	name := strings.TrimSuffix(file, filepath.Ext(file)) + ".svg"
	if name == file {
		name += ".svg"
	}
	return name
}

// spectrum is the histogram's percentile distribution in microseconds, at
// the points --hist writes (5 ticks per half distance).
func spectrum(h *hdrhistogram.Histogram) []svgplot.Point {
	var pts []svgplot.Point
	for _, b := range h.CumulativeDistributionWithTicks(5) {
		pts = append(pts, svgplot.Point{Percentile: b.Quantile, Value: float64(b.ValueAt) / 1000})
	}
	return pts
}

// writeSpectrum draws the series into the SVG file name.
func writeSpectrum(name, title string, logY bool, series ...svgplot.Series) error {
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	plot := svgplot.Spectrum{Title: title, Unit: "µs", LogY: logY, Series: series}
	return errors.Join(plot.Render(f), f.Close())
}

// plotCmd is 'rebound bench --plot SVG NAME=HISTFILE...': the curves of
// earlier runs in one picture (make bench draws every mode's).
func plotCmd(out, title string, logY bool, args []string, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "rebound bench: --plot: name at least one NAME=HISTFILE (a file written by --hist)")
		return exitUsage
	}
	var series []svgplot.Series
	for _, a := range args {
		name, file, ok := strings.Cut(a, "=")
		if !ok || name == "" || file == "" {
			fmt.Fprintf(stderr, "rebound bench: --plot: %q: want NAME=HISTFILE\n", a)
			return exitUsage
		}
		f, err := os.Open(file)
		if err != nil {
			fmt.Fprintf(stderr, "rebound bench: --plot: %v\n", err)
			return exitFailure
		}
		pts, err := svgplot.ParsePercentiles(f)
		f.Close()
		if err != nil {
			fmt.Fprintf(stderr, "rebound bench: --plot: %s: %v\n", file, err)
			return exitFailure
		}
		series = append(series, svgplot.Series{Name: name, Points: pts})
	}
	if err := writeSpectrum(out, title, logY, series...); err != nil {
		fmt.Fprintf(stderr, "rebound bench: --plot: %v\n", err)
		return exitFailure
	}
	return exitOK
}

// benchTLS is the load generator's TLS client configuration: the server's
// certificate checked against ca (not at all without one), the client
// certificate presented when cert is given.
func benchTLS(target, ca, cert, key string) (*tls.Config, error) {
	host, _, _ := net.SplitHostPort(target)
	conf := &tls.Config{ServerName: host, InsecureSkipVerify: ca == ""} // a bench measures; --tls-ca checks
	if ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return nil, fmt.Errorf("--tls-ca: %w", err)
		}
		conf.RootCAs = x509.NewCertPool()
		if !conf.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--tls-ca %s: no PEM certificate in it", ca)
		}
	}
	if cert != "" || key != "" {
		c, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return nil, fmt.Errorf("--tls-cert: %w", err)
		}
		conf.Certificates = []tls.Certificate{c}
	}
	return conf, nil
}

// flagSet reports whether the command line set the flag name.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// spread is a histogram's p50, p99, p99.9 and max (nanoseconds) as text.
func spread(h *hdrhistogram.Histogram) string {
	at := func(p float64) time.Duration { return time.Duration(h.ValueAtPercentile(p)).Round(time.Microsecond) }
	return fmt.Sprintf("p50 %s  p99 %s  p99.9 %s  max %s", at(50), at(99), at(99.9), time.Duration(h.Max()).Round(time.Microsecond))
}

// addSpread puts a histogram's p50, p99, p99.9 and max into a JSON summary
// as NAME_p50_us and so on.
func addSpread(m map[string]any, name string, h *hdrhistogram.Histogram) {
	for _, p := range []struct {
		key string
		at  float64
	}{{"p50", 50}, {"p99", 99}, {"p999", 99.9}} {
		m[name+"_"+p.key+"_us"] = us(time.Duration(h.ValueAtPercentile(p.at)))
	}
	m[name+"_max_us"] = us(time.Duration(h.Max()))
}

// procCPU returns the user+system CPU time of a process from /proc.
func procCPU(pid int) (time.Duration, error) {
	if pid <= 0 {
		return 0, fmt.Errorf("no pid")
	}
	p, err := procfs.NewProc(pid)
	if err != nil {
		return 0, err
	}
	st, err := p.Stat()
	if err != nil {
		return 0, err
	}
	return time.Duration(st.CPUTime() * float64(time.Second)), nil
}
