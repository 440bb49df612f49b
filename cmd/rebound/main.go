// Command rebound serves the Rebound protocol and drives it: serve, call,
// bench and stats. Run 'rebound help' for the overview.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
)

const usage = `rebound: small UDP request/response traffic at kernel-bypass speed, from Go.

Usage:
  rebound serve [flags]              serve PING, GET, SET and DEL (AF_XDP, UDP, TCP)
  rebound call  [flags] OP [ARGS]    send one request and print the reply
  rebound bench [flags]              load-test a server and report throughput and latency
  rebound stats [flags]              print a server's counters from its metrics endpoint
  rebound doctor [flags]             check that serve can run in xdp mode here, and what fixes it

Run 'rebound COMMAND -h' for a command's flags. Examples:
  rebound serve --mode udp                                 # anywhere, no root needed
  sudo rebound serve --iface eth0                          # XDP on eth0 when it can, else UDP
  rebound call --target 127.0.0.1:7000 set greeting hello --ttl 60
  rebound call --target 127.0.0.1:7000 get greeting
  rebound bench --target 127.0.0.1:7000 --duration 5s --window 32
`

// Exit codes, the same for every command.
const (
	exitOK      = 0
	exitStatus  = 1 // the server answered with an error status
	exitUsage   = 2 // bad flags or arguments
	exitFailure = 3 // could not do it: network error, timeout, setup failure
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return serveCmd(rest, stdout, stderr)
	case "call":
		return callCmd(rest, stdout, stderr)
	case "bench":
		return benchCmd(rest, stdout, stderr)
	case "stats":
		return statsCmd(rest, stdout, stderr)
	case "doctor":
		return doctorCmd(rest, stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	fmt.Fprintf(stderr, "rebound: unknown command %q\n\n%s", cmd, usage)
	return exitUsage
}

// newFlags makes a flag set whose -h prints a title, the flags and
// examples.
func newFlags(name, synopsis, examples string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: rebound %s\n\nFlags:\n", synopsis)
		fs.PrintDefaults()
		if examples != "" {
			fmt.Fprintf(stderr, "\nExamples:\n%s", examples)
		}
	}
	return fs
}

// parseInterleaved parses flags that may stand before, between or after
// positional arguments, and returns the positionals.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// flagExit maps a flag parse error to an exit code (-h is not an error).
func flagExit(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	return exitUsage
}

// parseSize reads a byte count like 256MiB, 1GiB, 64KiB, 1000000.
func parseSize(s string) (int, error) {
	units := []struct {
		suffix string
		mult   int
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}, {"B", 1}}
	mult := 1
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSuffix(s, u.suffix), u.mult
			break
		}
	}
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 0 {
		return 0, fmt.Errorf("size %q: want a number with an optional KiB, MiB or GiB", s)
	}
	return n * mult, nil
}

// startCPUProfile writes a CPU profile to path until the returned stop is
// called.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}
