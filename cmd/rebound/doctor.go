package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/rebound-net/rebound/doctor"
	"github.com/rebound-net/rebound/internal/cpuset"
)

const doctorSynopsis = `doctor [--iface NAME] [--queues N] [--frames N] [--max-conns N] [--probe] [--json]

Preflight checks to run before 'rebound serve': can this machine, this
process (its user, capabilities, limits) and this interface run serve in
xdp mode, and what does it cost where not. Run it as the user, and with the
capabilities and limits, that serve will have.

Each finding is PASS, WARN or FAIL, with what was found and, for WARN and
FAIL, the command that fixes it:
  kernel           release: AF_XDP (4.18), need_wakeup (5.4), bpf_link for XDP (5.9)
  kernel-config    CONFIG_BPF_SYSCALL, CONFIG_XDP_SOCKETS, CONFIG_BPF_JIT (/proc/config.gz or /boot)
  bpf-jit          net.core.bpf_jit_enable
  capabilities     CAP_NET_ADMIN, CAP_NET_RAW, CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN)
  af-xdp           an AF_XDP socket opens
  interface        exists, is not loopback (FAIL: use --mode udp), is up
  driver           native XDP: a list of known drivers, or a real attach with --probe
  zero-copy        AF_XDP zero-copy (a list of drivers); without it, copy mode
  queues           rx queues against CPUs: one worker per queue
  memlock          RLIMIT_MEMLOCK against the UMEMs: queues x frames x 4 KiB
  open-files       RLIMIT_NOFILE against --max-conns on both TCP ports, the sockets and a margin
  mtu              MTU + headers fit a 4096-byte frame; native XDP up to ~3500
  xdp-attached     another XDP program on the interface (serve will not replace it)
  rx-vlan-offload  on: serve turns it off while it runs
  busy-poll        napi_defer_hard_irqs, gro_flush_timeout, threaded NAPI (informational)
  queue-cpus       per queue: its IRQ (/proc/interrupts, smp_affinity_list) or NAPI thread (napi/DEV-ID)
                   and their CPUs against serve --cpus, and the commands that align them

Exit status: 0 ready, 1 degraded (a WARN: serve runs, slower or with a
fallback), 2 not possible (a FAIL: xdp mode will not work; 'serve --mode
auto' serves udp; also for bad flags).`

const doctorExamples = `  rebound doctor                               # the machine and this process only
  sudo rebound doctor --iface eth0             # everything, for 'sudo rebound serve --iface eth0'
  sudo rebound doctor --iface eth0 --probe     # also attach an XDP_PASS program in driver mode for a moment
                                               # (on some NICs that resets the rings: a short traffic blip)
  rebound doctor --iface eth0 --json | jq '.findings[] | select(.status != "PASS")'
  sudo rebound doctor --iface eth0 && sudo rebound serve --iface eth0
`

// doctorReport is the --json output.
type doctorReport struct {
	Iface    string           `json:"iface,omitempty"`
	Verdict  string           `json:"verdict"`
	Exit     int              `json:"exit"`
	Findings []doctor.Finding `json:"findings"`
}

func doctorCmd(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("doctor", doctorSynopsis, doctorExamples, stderr)
	iface := fs.String("iface", "", "`NAME` of the interface serve will attach to (without it: the machine and process only)")
	queues := fs.Int("queues", 0, "rx queues serve will use, as serve --queues (0: all of --iface)")
	cpus := fs.String("cpus", "", "CPUs serve pins its queues' workers to, as serve --cpus: queue-cpus compares each queue's interrupts or NAPI thread with them")
	frames := fs.Int("frames", doctor.DefaultFrames, "UMEM frames per queue, as serve --frames: sizes the locked memory needed")
	maxConns := fs.Int("max-conns", doctor.DefaultMaxConns, "TCP connections of the server, as serve --max-conns: sizes the open files needed")
	probe := fs.Bool("probe", false, "try a native XDP attach on --iface (an XDP_PASS program through a bpf_link, detached at once)")
	asJSON := fs.Bool("json", false, "print the findings as JSON")
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "rebound doctor: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	if *frames < 2 || *queues < 0 || *maxConns < 1 {
		fmt.Fprintf(stderr, "rebound doctor: --frames at least 2, --queues 0 or more, --max-conns at least 1\n")
		return exitUsage
	}
	if *probe && *iface == "" {
		fmt.Fprintf(stderr, "rebound doctor: --probe needs --iface\n")
		return exitUsage
	}
	var cpuList []int
	if *cpus != "" {
		var err error
		if cpuList, err = cpuset.Parse(*cpus); err != nil {
			fmt.Fprintf(stderr, "rebound doctor: --cpus: %v\n", err)
			return exitUsage
		}
	}
	findings := doctor.Run(doctor.Options{Iface: *iface, Queues: *queues, CPUs: cpuList, Frames: *frames, MaxConns: *maxConns, Probe: *probe})
	code, verdict := doctor.Exit(findings)
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(doctorReport{Iface: *iface, Verdict: verdict, Exit: code, Findings: findings}); err != nil {
			fmt.Fprintf(stderr, "rebound doctor: %v\n", err)
			return exitFailure
		}
		return code
	}
	printFindings(stdout, findings)
	what := "xdp mode"
	if *iface != "" {
		what += " on " + *iface
	}
	fmt.Fprintf(stdout, "\n%s: %s (exit %d)\n", what, verdict, code)
	return code
}

// printFindings writes the findings as a table, a fix under its finding.
func printFindings(w io.Writer, findings []doctor.Finding) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CHECK\tSTATUS\tFINDING")
	for _, f := range findings {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", f.Check, f.Status, f.Detail)
		if f.Fix != "" {
			fmt.Fprintf(tw, "\t\tfix: %s\n", strings.ReplaceAll(f.Fix, "\n", " "))
		}
	}
	tw.Flush()
}
