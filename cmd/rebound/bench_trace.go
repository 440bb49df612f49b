package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/rebound-net/rebound/loadgen"
)

const traceExamples = `
Traces (--trace, memcached's protocol over one pipelined TCP connection):

  # the hit ratio: get, and on a miss set (cache-aside), Zipf 0.99 over a
  # million keys; a warm-up, a steady phase, then a new key space with larger
  # values (the value-size shift); the same sequence for every server
  rebound bench --trace zipf --target 127.0.0.1:11211 --keys 1000000 --trace-ops 300000 --seed 1
  # density: a million 64-byte values under 32-byte keys; items and RSS per item
  rebound bench --trace fill --target 127.0.0.1:11211 --keys 1000000 --value-size 64 --server-pid PID
`

// traceFlags are the flags of 'rebound bench --trace'.
type traceFlags struct {
	zipf      *float64
	seed      *uint64
	ops       *int
	warmupOps *int
	small     *string
	large     *string
	check     *int
}

func addTraceFlags(fs *flag.FlagSet) traceFlags {
	return traceFlags{
		zipf:      fs.Float64("zipf", 0.99, "with --trace zipf: the Zipf exponent of the keys' popularity (0 to 1, exclusive)"),
		seed:      fs.Uint64("seed", 1, "with --trace zipf: the `SEED` of the key sequence and the value sizes"),
		ops:       fs.Int("trace-ops", 300_000, "with --trace zipf: gets in the steady phase and in the phase after the shift (`N` each)"),
		warmupOps: fs.Int("trace-warmup", 0, "with --trace zipf: gets in the warm-up phase (`N`; 0: --trace-ops)"),
		small:     fs.String("trace-sizes", "64-256", "with --trace zipf: value sizes before the shift (`MIN-MAX` bytes)"),
		large:     fs.String("trace-shift", "1024-4096", "with --trace zipf: value sizes after the shift, under new keys (`MIN-MAX` bytes)"),
		check:     fs.Int("trace-check", 16, "with --trace zipf: read back every `N`th set right after it (0 or less: none)"),
	}
}

// traceCmd is 'rebound bench --trace zipf|fill': a trace replay or a fill
// instead of a timed load. It reads the bench flags it shares (target, keys,
// key and value size, window, timeout, server pid, json, quiet, TLS) from fs.
func traceCmd(fs *flag.FlagSet, mode string, tf traceFlags, stdout, stderr io.Writer) int {
	for _, name := range []string{"op", "rate", "duration", "warmup", "workers", "connections", "hist", "payload", "queues", "iface", "cpus", "plot"} {
		if flagSet(fs, name) {
			fmt.Fprintf(stderr, "rebound bench: --%s does not go with --trace\n", name)
			return exitUsage
		}
	}
	get := func(name string) any { return fs.Lookup(name).Value.(flag.Getter).Get() }
	if p := get("protocol").(string); flagSet(fs, "protocol") && p != "memcache" && p != "memcached" {
		fmt.Fprintln(stderr, "rebound bench: --trace speaks memcached's protocol (--protocol memcache)")
		return exitUsage
	}
	if t := get("transport").(string); flagSet(fs, "transport") && t != "tcp" {
		fmt.Fprintln(stderr, "rebound bench: --trace runs over TCP (--transport tcp)")
		return exitUsage
	}
	target, keys, keySize, valueSize := "127.0.0.1:11211", 1_000_000, get("key-size").(int), 64
	window, timeout := 256, 10*time.Second
	serverPid, asJSON, quiet := get("server-pid").(int), get("json").(bool), get("quiet").(bool)
	if flagSet(fs, "target") {
		target = get("target").(string)
	}
	if flagSet(fs, "keys") {
		keys = get("keys").(int)
	}
	if flagSet(fs, "value-size") {
		valueSize = get("value-size").(int)
	}
	if flagSet(fs, "window") {
		window = get("window").(int)
	}
	if flagSet(fs, "timeout") {
		timeout = get("timeout").(time.Duration)
	}
	var conf *tls.Config
	if useTLS, ca, cert, key := get("tls").(bool), get("tls-ca").(string), get("tls-cert").(string), get("tls-key").(string); useTLS {
		var err error
		if conf, err = benchTLS(target, ca, cert, key); err != nil {
			fmt.Fprintf(stderr, "rebound bench: %v\n", err)
			return exitUsage
		}
	} else if ca != "" || cert != "" || key != "" {
		fmt.Fprintln(stderr, "rebound bench: the --tls flags go with --tls")
		return exitUsage
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	switch mode {
	case "fill":
		res, err := loadgen.Fill(ctx, loadgen.FillConfig{Target: target, TLS: conf, Keys: keys, KeySize: keySize, ValueSize: valueSize,
			Batch: window, ServerPID: serverPid, Timeout: timeout})
		if err != nil {
			fmt.Fprintf(stderr, "rebound bench: %v\n", err)
			return exitFailure
		}
		if asJSON {
			_ = json.NewEncoder(stdout).Encode(res)
			return exitOK
		}
		s := res.Stats
		fmt.Fprintf(stdout, "fill %s: %d sets of %d-byte values in %s, %d not stored", target, res.Sets, valueSize, res.Elapsed.Round(time.Millisecond), res.NotStored)
		if res.FirstNotStored != "" {
			fmt.Fprintf(stdout, " (%s)", res.FirstNotStored)
		}
		fmt.Fprintf(stdout, "\nitems       %d held, %d evicted; bytes %d of limit_maxbytes %d\n", s.CurrItems, s.Evictions, s.Bytes, s.LimitMaxbytes)
		if m := res.Mem; m != nil {
			fmt.Fprintf(stdout, "memory      RSS %.1f MiB (%.2fx the limit), peak %.1f MiB, %.1f bytes of RSS per item\n",
				mib(m.RSS), float64(m.RSS)/float64(max(s.LimitMaxbytes, 1)), mib(m.HWM), res.RSSPerItem)
		}
		return exitOK
	case "zipf":
	default:
		fmt.Fprintf(stderr, "rebound bench: --trace %q: want zipf or fill\n", mode)
		return exitUsage
	}
	if !(*tf.zipf > 0 && *tf.zipf < 1) || *tf.ops < 0 || *tf.warmupOps < 0 {
		fmt.Fprintf(stderr, "rebound bench: --zipf %g, --trace-ops %d, --trace-warmup %d: want an exponent between 0 and 1, counts of 0 or more\n",
			*tf.zipf, *tf.ops, *tf.warmupOps)
		return exitUsage
	}
	small, err := loadgen.ParseSizes(*tf.small)
	if err == nil {
		var large loadgen.Sizes
		if large, err = loadgen.ParseSizes(*tf.large); err == nil {
			cfg := loadgen.TraceConfig{Target: target, TLS: conf, Keys: keys, KeySize: keySize, Zipf: *tf.zipf, Seed: *tf.seed,
				WarmupOps: *tf.warmupOps, Ops: *tf.ops, Small: small, Large: large, Batch: window, Check: *tf.check,
				ServerPID: serverPid, Timeout: timeout}
			if cfg.Check <= 0 {
				cfg.Check = -1
			}
			if !quiet {
				cfg.Phase = func(p loadgen.TracePhase) {
					fmt.Fprintf(stderr, "%-8s hit ratio %.4f  (%d gets, %.0f req/s)\n", p.Name, p.HitRatio, p.Gets, p.OpsPerSec)
				}
			}
			return runTrace(ctx, cfg, asJSON, stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "rebound bench: --trace-sizes, --trace-shift: %v\n", err)
	return exitUsage
}

func runTrace(ctx context.Context, cfg loadgen.TraceConfig, asJSON bool, stdout, stderr io.Writer) int {
	res, err := loadgen.Trace(ctx, cfg)
	if err != nil && (res == nil || len(res.Phases) == 0) {
		fmt.Fprintf(stderr, "rebound bench: %v\n", err)
		return exitFailure
	}
	bad, unexplained := int64(0), false
	for _, p := range res.Phases {
		bad += p.Bad
		unexplained = unexplained || uint64(p.Lost) > p.Evictions
	}
	if asJSON {
		_ = json.NewEncoder(stdout).Encode(res)
	} else {
		fmt.Fprintf(stdout, "trace zipf %.2f over %d keys, seed %d, to %s\n", cfg.Zipf, cfg.Keys, cfg.Seed, cfg.Target)
		fmt.Fprintln(stdout, "phase     hit ratio      gets      sets  not stored  read-backs  lost  evictions      items  RSS MiB")
		for _, p := range res.Phases {
			rss := "-"
			if p.Mem != nil {
				rss = fmt.Sprintf("%.1f", mib(p.Mem.RSS))
			}
			fmt.Fprintf(stdout, "%-8s  %9.4f  %8d  %8d  %10d  %10d  %4d  %9d  %9d  %s\n", p.Name, p.HitRatio, p.Gets, p.Sets, p.NotStored,
				p.Checked, p.Lost, p.Evictions, p.Stats.CurrItems, rss)
		}
	}
	switch {
	case err != nil:
		fmt.Fprintf(stderr, "rebound bench: %v\n", err)
		return exitFailure
	case bad > 0:
		fmt.Fprintf(stderr, "rebound bench: %d hits were not the value that was set\n", bad)
		return exitStatus
	case unexplained:
		fmt.Fprintln(stderr, "rebound bench: acknowledged sets were not readable right after, more of them than the server evicted")
		return exitStatus
	}
	return exitOK
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }
