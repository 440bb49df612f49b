package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/rebound-net/rebound/bpf"
	"github.com/rebound-net/rebound/internal/cpuset"
	"github.com/rebound-net/rebound/userspace"
	"github.com/rebound-net/rebound/userspace/mcserve"
	"github.com/rebound-net/rebound/userspace/store"
	"github.com/rebound-net/rebound/xdp"
)

const serveExamples = `  rebound serve --mode udp                      # Rebound on :7000 and memcached on :11211 (UDP and TCP), no root
  rebound serve --mode udp --memcache-listen '' # the Rebound protocol only
  rebound serve --mode udp --trust-src 10.0.0.0/8 --max-item-size 4MiB
  sudo rebound serve --iface eth0               # XDP on eth0 if possible (one log line says which mode)
  sudo rebound serve --iface eth0 --mode xdp --xdp-mode generic --queues 2 --metrics :9100
  sudo rebound serve --iface eth0 --allow-src 198.18.0.0/15,2001:2::/48
  rebound serve --tls-cert server.pem --tls-key server-key.pem --tls-ca clients-ca.pem  # TLS on TCP only (memcached's -Z), UDP off
`

func serveCmd(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("serve", "serve [flags]", serveExamples, stderr)
	listen := fs.String("listen", ":7000", "`ADDR:PORT` for the Rebound protocol over UDP and TCP; XDP steers this port (with a host: only requests to that address)")
	iface := fs.String("iface", "", "`NAME` of the interface to attach XDP to (xdp and auto modes)")
	mode := fs.String("mode", "auto", "transport `MODE`: xdp, udp, or auto (xdp when it can be set up on --iface, else udp, with a log line saying why)")
	xdpMode := fs.String("xdp-mode", "auto", "where XDP runs (`MODE`): native (in the driver), generic (any interface, slower) or auto (native, else generic)")
	xdpReplace := fs.Bool("xdp-replace", false, "replace an XDP program already attached to --iface (through netlink)")
	answers := fs.Bool("xdp-answers", true, "xdp mode: answer Rebound PINGs and GETs and memcached gets of hot small items (keys up to 250 bytes, values up to 1 KiB) in the XDP program itself, from a kernel copy the store keeps coherent on every write (false: every request goes to the AF_XDP sockets)")
	answerItems := fs.Int("xdp-answer-items", bpf.DefaultAnswerItems, "xdp mode: items the XDP program holds for --xdp-answers (about 1.7 KiB of kernel memory each)")
	busyPoll := fs.Duration("busy-poll", 0, "xdp mode: busy-poll each AF_XDP queue from its worker for up to this long per call (e.g. 50us; 0: off): lower tail latency, and the worker's core stays busy while traffic flows; set the interface's napi_defer_hard_irqs and gro_flush_timeout with it (docs/operations.md)")
	queues := fs.Int("queues", 0, "rx queues to serve, one AF_XDP socket and worker each (0: all of --iface)")
	cpus := fs.String("cpus", "", "xdp mode: pin queue q's worker to the q-th CPU of this `LIST` (e.g. 2-3 or 4,6; one CPU per queue); align each queue's interrupts or NAPI thread with it (rebound doctor shows how)")
	batch := fs.Int("batch", 64, "requests per batch")
	mcListen := fs.String("memcache-listen", ":11211", "`ADDR:PORT` for memcached's protocol over UDP and TCP, on the same store; in xdp mode XDP steers this port too (empty: off)")
	maxItem := fs.String("max-item-size", "1MiB", "largest memcached value (`SIZE`; at most a sixteenth of the store's segments, about --kv-memory/18); a larger one is answered SERVER_ERROR object too large for cache")
	trust := fs.String("trust-src", "", "comma-separated `CIDR`s whose UDP replies are not bound by --amplification (a datacenter's own clients)")
	allow := fs.String("allow-src", "", "comma-separated `CIDR`s: requests from other sources are not served, on any path and protocol (dropped in XDP in xdp mode)")
	maxConns := fs.Int("max-conns", userspace.DefaultMaxConns, "TCP connections the server holds at once, every port together (memcached's -c); past it a new one is closed, on memcached's port after memcached's 'ERROR Too many open connections'. serve raises its open-files limit to fit them, and says when it cannot")
	kvMem := fs.String("kv-memory", "256MiB", "memory of the kv store, items and index together (`SIZE`, e.g. 64MiB, 1GiB); the process's RSS is this plus a fixed overhead: up to 64MiB, 32KiB per --max-conns, the UMEMs in xdp mode (docs/operations.md)")
	maxValue := fs.Int("max-value", 0, "largest value SET stores, in bytes (0: what the store can hold, at most 65535)")
	amp := fs.Int("amplification", 4, "a UDP reply is at most this many times its request, both protocols (Rebound: TRUNCATED; memcached: a SERVER_ERROR datagram); -1: off")
	metrics := fs.String("metrics", "", "serve Prometheus /metrics on `ADDR` (off unless given)")
	workers := fs.Int("workers", 0, "UDP sockets (SO_REUSEPORT), one goroutine each (0: one per CPU)")
	frames := fs.Int("frames", 4096, "UMEM frames (4 KiB each) per queue")
	bind := fs.String("bind", "auto", "AF_XDP bind `MODE`: zerocopy (driver support needed), copy, or auto (zero-copy where the driver has it)")
	logLevel := fs.String("log-level", "info", "log `LEVEL`: debug, info, warn or error")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the server to `FILE` until it stops (go tool pprof)")
	tlsCert := fs.String("tls-cert", "", "TLS on every TCP listener, as memcached's -Z: the server's certificate chain (PEM `FILE`); UDP is then off (it cannot be encrypted); SIGHUP re-reads the files")
	tlsKey := fs.String("tls-key", "", "the private key of --tls-cert (PEM `FILE`)")
	tlsCA := fs.String("tls-ca", "", "with --tls-cert: clients must present a certificate signed by a CA in this PEM `FILE` (memcached's ssl_verify_mode=2 and ssl_ca_cert)")
	authFile := fs.String("auth-file", "", "memcached's port requires a login, as memcached's -Y: `FILE` of user:password lines; text clients log in with a set whose data is \"user password\", binary clients through SASL PLAIN; UDP is then off (it has no login); SIGHUP re-reads the file")
	configPath := fs.String("config", "", "read settings from a TOML `FILE` (keys are these flags' names with _ for -; flags given here win); SIGHUP reloads its allow_src, trust_src, listen and memcache_listen")
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	onCommandLine := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { onCommandLine[f.Name] = true })
	if *configPath != "" {
		values, err := readConfig(*configPath, fs)
		if err != nil {
			fmt.Fprintf(stderr, "rebound serve: %v\n", err)
			return exitUsage
		}
		if _, err := applyConfig(fs, values, onCommandLine); err != nil {
			fmt.Fprintf(stderr, "rebound serve: %v\n", err)
			return exitUsage
		}
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "rebound serve: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(stderr, "rebound serve: --log-level %q: %v\n", *logLevel, err)
		return exitUsage
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl}))
	fail := func(code int, format string, a ...any) int {
		fmt.Fprintf(stderr, "rebound serve: "+format+"\n", a...)
		return code
	}
	xm, err := bpf.ParseMode(*xdpMode)
	if err != nil {
		return fail(exitUsage, "--xdp-mode: %v", err)
	}
	var bm xdp.BindMode
	switch *bind {
	case "auto":
	case "copy":
		bm = xdp.BindCopy
	case "zerocopy":
		bm = xdp.BindZeroCopy
	default:
		return fail(exitUsage, "--bind %q: want auto, copy or zerocopy", *bind)
	}
	prefixes, err := parsePrefixes(*allow)
	if err != nil {
		return fail(exitUsage, "--allow-src %v", err)
	}
	trusted, err := parsePrefixes(*trust)
	if err != nil {
		return fail(exitUsage, "--trust-src %v", err)
	}
	itemMax, err := parseSize(*maxItem)
	if err != nil {
		return fail(exitUsage, "--max-item-size: %v", err)
	}
	if itemMax < 1024 || itemMax > 1<<30 {
		return fail(exitUsage, "--max-item-size %s: between 1KiB and 1GiB", *maxItem)
	}
	mem, err := parseSize(*kvMem)
	if err != nil {
		return fail(exitUsage, "--kv-memory: %v", err)
	}
	if mem < 1<<20 {
		return fail(exitUsage, "--kv-memory %s: at least 1MiB", *kvMem)
	}
	if *amp == 0 {
		return fail(exitUsage, "--amplification 0: use a factor of 1 or more, or -1 to turn the bound off")
	}
	if most := store.MaxItemSizeFor(int64(mem)); itemMax > most {
		return fail(exitUsage, "--max-item-size %s: at most %d bytes with --kv-memory %s (a sixteenth of its segments)", *maxItem, most, *kvMem)
	}
	var tlsSetup *userspace.TLS
	switch {
	case *tlsCert != "" || *tlsKey != "":
		if tlsSetup, err = userspace.NewTLS(userspace.TLSFiles{Cert: *tlsCert, Key: *tlsKey, CA: *tlsCA}); err != nil {
			return fail(exitUsage, "--tls-cert: %v", err)
		}
		logTLS(log, "TLS on TCP", tlsSetup)
	case *tlsCA != "":
		return fail(exitUsage, "--tls-ca needs --tls-cert and --tls-key")
	}
	// One store behind both protocols: a key set over memcached is read
	// over the Rebound protocol and the other way round.
	st := store.New(store.Config{MemoryLimit: int64(mem), MaxItemSize: itemMax})
	svc := userspace.NewService(userspace.ServiceConfig{Store: st, MaxValue: *maxValue})
	var srv *userspace.Server
	var mch *mcserve.Handler
	var mcAuth *mcserve.Auth
	if *authFile != "" {
		if *mcListen == "" {
			return fail(exitUsage, "--auth-file needs memcached's port (--memcache-listen)")
		}
		if mcAuth, err = mcserve.LoadAuth(*authFile); err != nil {
			return fail(exitUsage, "--auth-file: %v", err)
		}
		log.Info("memcached authentication required: UDP is off, as it has no login", "file", *authFile, "users", mcAuth.Users())
	}
	if *mcListen != "" {
		threads := *workers
		if threads <= 0 {
			threads = runtime.NumCPU()
		}
		mch = mcserve.New(mcserve.Config{Store: st, MaxItemSize: itemMax, Threads: threads, Auth: mcAuth,
			Conns:        func() (uint64, uint64) { return srv.MemcacheConns() },
			AnsweredGets: func() (uint64, uint64) { return srv.AnsweredMemcacheGets() }})
	}
	var cpuList []int
	if *cpus != "" {
		if cpuList, err = cpuset.Parse(*cpus); err != nil {
			return fail(exitUsage, "--cpus: %v", err)
		}
		if *mode == "udp" {
			log.Warn("--cpus pins AF_XDP workers: udp mode ignores it (run serve under taskset instead)")
		}
	}
	if *busyPoll < 0 || *busyPoll > time.Second {
		return fail(exitUsage, "--busy-poll %v: want 0 (off) to 1s", *busyPoll)
	}
	if *busyPoll > 0 && *busyPoll < time.Microsecond {
		return fail(exitUsage, "--busy-poll %v: the kernel counts it in microseconds: at least 1us", *busyPoll)
	}
	if *answerItems < 1 || *answerItems > bpf.MaxAnswerItems {
		return fail(exitUsage, "--xdp-answer-items %d: want 1 to %d", *answerItems, bpf.MaxAnswerItems)
	}
	if *maxConns < 1 {
		return fail(exitUsage, "--max-conns %d: at least 1", *maxConns)
	}
	budget := fileBudget{maxConns: *maxConns, tcpListeners: 1, udpSockets: *workers}
	if budget.udpSockets <= 0 {
		budget.udpSockets = runtime.NumCPU()
	}
	if *mcListen != "" {
		budget.tcpListeners, budget.udpSockets = 2, 2*budget.udpSockets
	}
	if *mode != string(userspace.ModeUDP) && *iface != "" {
		if budget.queues = *queues; budget.queues <= 0 {
			budget.queues = rxQueues(*iface)
		}
	}
	if err := fitFiles(realRlimit, budget, log); err != nil {
		return fail(exitUsage, "%v", err)
	}
	heapLimit(int64(mem), budget.maxConns, log)
	var answerStore *store.Store
	if *answers {
		answerStore = st
	}
	srv, err = userspace.NewServer(userspace.Config{
		Answers: answerStore,
		Listen:  *listen, Mode: userspace.Mode(*mode), Iface: *iface, XDPMode: xm, XDPReplace: *xdpReplace,
		Queues: *queues, Batch: *batch, AllowSrc: prefixes, Amplification: *amp, Workers: *workers,
		Frames: *frames, Bind: bm, Handler: svc, Logger: log,
		Memcache: mch, MemcacheListen: *mcListen, MaxItemSize: itemMax, TrustSrc: trusted,
		AnswerItems: *answerItems, BusyPoll: *busyPoll, CPUs: cpuList, MaxConns: *maxConns, TLS: tlsSetup,
	})
	if err != nil {
		return fail(exitUsage, "%v", err)
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	if *cpuProfile != "" {
		stop, err := startCPUProfile(*cpuProfile)
		if err != nil {
			return fail(exitUsage, "--cpuprofile: %v", err)
		}
		defer stop()
	}
	if err := srv.Start(ctx); err != nil {
		return fail(exitFailure, "%v", err)
	}
	m, why := srv.Mode()
	log.Info("mode "+string(m), "why", why)
	// Setup is done: keep only the capabilities serving still needs.
	if kept, err := srv.DropCapabilities(); err != nil {
		log.Warn("could not drop capabilities after setup", "err", err)
	} else {
		log.Info("dropped the capabilities setup needed", "kept", strings.Join(kept, ","))
	}
	if *metrics != "" {
		msrv := &http.Server{Addr: *metrics, Handler: userspace.MetricsHandler(srv, svc), ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := msrv.ListenAndServe(); err != nil && err != http.ErrServerClosed {
				log.Error("metrics endpoint failed", "addr", *metrics, "err", err)
			}
		}()
		defer msrv.Close()
		log.Info("metrics", "url", "http://"+*metrics+"/metrics")
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	code := exitOK
wait:
	for {
		select {
		case <-ctx.Done():
			log.Info("stopping: draining and detaching")
			break wait
		case err := <-srv.Fatal():
			log.Error("cannot go on serving: stopping", "err", err)
			code = exitFailure
			break wait
		case <-hup:
			if tlsSetup != nil {
				if err := tlsSetup.Reload(); err != nil {
					log.Error("SIGHUP: TLS files not reloaded: the certificate in force stays", "err", err)
				} else {
					logTLS(log, "SIGHUP: reloaded TLS", tlsSetup)
				}
			}
			if mcAuth != nil {
				if err := mcAuth.Reload(); err != nil {
					log.Error("SIGHUP: auth file not reloaded: the users in force stay", "err", err)
				} else {
					log.Info("SIGHUP: reloaded the auth file", "file", mcAuth.Path(), "users", mcAuth.Users())
				}
			}
			if *configPath != "" || (tlsSetup == nil && mcAuth == nil) {
				reload(log, srv, fs, *configPath, onCommandLine)
			}
		}
	}
	srv.Stop()
	for _, fa := range srv.Frames() {
		if !fa.Balanced() {
			log.Error("frame accounting does not balance", "queue", fa.Queue, "total", fa.Total, "free", fa.Free, "rx", fa.Rx, "sending", fa.Sending)
		}
	}
	log.Info("stopped")
	return code
}

// logTLS logs the certificate TLS handshakes present now.
func logTLS(log *slog.Logger, msg string, t *userspace.TLS) {
	leaf := t.Leaf()
	log.Info(msg, "subject", leaf.Subject.String(), "serial", leaf.SerialNumber.String(),
		"not_after", leaf.NotAfter.UTC().Format(time.RFC3339), "client_certs", t.ClientCerts())
}

// parsePrefixes parses a comma-separated list of CIDRs (or bare addresses,
// taken as single hosts).
func parsePrefixes(list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range strings.Split(list, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				return nil, fmt.Errorf("%q: want a CIDR like 10.0.0.0/8 or an address", s)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// reload applies the config file's reloadable settings (the allow-list
// and the trusted sources) to a running server, each put in force whole
// or not at all; a file that does not read, or a bad value, leaves what is
// in force as it was. Other changed settings are logged: they need a
// restart.
func reload(log *slog.Logger, srv *userspace.Server, fs *flag.FlagSet, path string, onCommandLine map[string]bool) {
	if path == "" {
		log.Warn("SIGHUP: nothing to reload without --config")
		return
	}
	values, err := readConfig(path, fs)
	if err != nil {
		log.Error("SIGHUP: config not reloaded: the settings in force stay", "err", err)
		return
	}
	for _, name := range []string{"allow-src", "trust-src"} {
		if onCommandLine[name] {
			continue // the command line wins, as at start
		}
		list, err := parsePrefixes(values[name])
		if err == nil {
			if name == "allow-src" {
				err = srv.SetAllow(list)
			} else {
				err = srv.SetTrust(list)
			}
		}
		if err != nil {
			log.Error("SIGHUP: "+name+" not reloaded: the list in force stays", "err", err)
			continue
		}
		_ = fs.Set(name, values[name])
		log.Info("SIGHUP: reloaded "+name, "list", values[name])
	}
	// The listen addresses: moved whole (new sockets first) or not at all.
	var listen, mcListen string
	if v, ok := values["listen"]; ok && !onCommandLine["listen"] && v != fs.Lookup("listen").Value.String() {
		listen = v
	}
	if v, ok := values["memcache-listen"]; ok && !onCommandLine["memcache-listen"] && v != fs.Lookup("memcache-listen").Value.String() {
		if v == "" || fs.Lookup("memcache-listen").Value.String() == "" {
			log.Warn("SIGHUP: turning memcached on or off takes effect at the next start")
		} else {
			mcListen = v
		}
	}
	if listen != "" || mcListen != "" {
		if err := srv.SetListen(listen, mcListen); err != nil {
			log.Error("SIGHUP: listen addresses not moved: the ones in force stay", "err", err)
		} else {
			if listen != "" {
				_ = fs.Set("listen", listen)
			}
			if mcListen != "" {
				_ = fs.Set("memcache-listen", mcListen)
			}
			log.Info("SIGHUP: moved the listen addresses", "listen", fs.Lookup("listen").Value.String(), "memcache", fs.Lookup("memcache-listen").Value.String())
		}
	}
	for name, v := range values {
		if !reloadable[name] && !onCommandLine[name] && fs.Lookup(name).Value.String() != v {
			log.Warn("SIGHUP: "+name+" changed in the config: it takes effect at the next start", "now", fs.Lookup(name).Value.String(), "file", v)
		}
	}
}
