package doctor

import (
	"fmt"
	"strings"
)

// Status is the outcome of a check.
type Status int

// Outcomes, in increasing order of gravity.
const (
	Pass Status = iota // fine as it is
	Warn               // serve runs, slower or with a fallback
	Fail               // xdp mode will not work
)

func (s Status) String() string {
	switch s {
	case Pass:
		return "PASS"
	case Warn:
		return "WARN"
	case Fail:
		return "FAIL"
	}
	return fmt.Sprintf("Status(%d)", int(s))
}

// MarshalText writes the status as PASS, WARN or FAIL (for JSON).
func (s Status) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads PASS, WARN or FAIL.
func (s *Status) UnmarshalText(b []byte) error {
	for _, c := range []Status{Pass, Warn, Fail} {
		if strings.EqualFold(string(b), c.String()) {
			*s = c
			return nil
		}
	}
	return fmt.Errorf("doctor: status %q: want PASS, WARN or FAIL", b)
}

// Finding is one line of the report.
type Finding struct {
	Check  string `json:"check"`         // what was checked: kernel, capabilities, mtu...
	Status Status `json:"status"`        // PASS, WARN or FAIL
	Detail string `json:"detail"`        // what was found, and what it costs
	Fix    string `json:"fix,omitempty"` // for WARN and FAIL: what fixes it (for some a PASS too: a command that tunes)
}

// Check is one named check. Run returns at least one finding.
type Check struct {
	Name string
	// Iface marks a check of the interface: it runs only with
	// Options.Iface, and only once the interface was found.
	Iface bool
	Run   func(c *Context) []Finding
}

// Options says what to check.
type Options struct {
	Iface  string // interface serve will attach to; "" checks the machine only
	Queues int    // rx queues serve will use (serve --queues); 0: every queue of Iface
	CPUs   []int  // serve --cpus: queue q's worker on CPUs[q]; empty: not pinned
	Frames int    // UMEM frames per queue (serve --frames); 0: serve's default, 4096
	// MaxConns is serve --max-conns: TCP connections per port; 0: serve's
	// default, 1024.
	MaxConns int
	Probe    bool // try a native XDP attach on Iface (briefly attaches an XDP_PASS program)
	Sys      *System
}

// Defaults of serve that the checks size things by.
const (
	DefaultFrames = 4096 // serve --frames
	FrameSize     = 4096 // bytes per UMEM frame
	// PacketHeadroom is XDP_PACKET_HEADROOM: where in its frame the kernel
	// puts a received packet.
	PacketHeadroom = 256
)

// Context is what a check sees: the options, the system, and what earlier
// checks learned.
type Context struct {
	Opts   Options
	Sys    *System
	Kernel Version // zero when unknown
	Config map[string]string
	Link   *Link // the interface, when Options.Iface was found
	Caps   uint64
	HasCap bool // Caps was read
}

// Checks lists every check in the order they run.
func Checks() []Check {
	return []Check{
		{Name: "kernel", Run: checkKernel},
		{Name: "kernel-config", Run: checkConfig},
		{Name: "bpf-jit", Run: checkJIT},
		{Name: "capabilities", Run: checkCaps},
		{Name: "af-xdp", Run: checkAFXDP},
		{Name: "interface", Run: checkInterface},
		{Name: "driver", Iface: true, Run: checkDriver},
		{Name: "zero-copy", Iface: true, Run: checkZeroCopy},
		{Name: "queues", Iface: true, Run: checkQueues},
		{Name: "memlock", Run: checkMemlock},
		{Name: "open-files", Run: checkOpenFiles},
		{Name: "mtu", Iface: true, Run: checkMTU},
		{Name: "xdp-attached", Iface: true, Run: checkAttached},
		{Name: "rx-vlan-offload", Iface: true, Run: checkRxVLAN},
		{Name: "busy-poll", Iface: true, Run: checkBusyPoll},
		{Name: "queue-cpus", Iface: true, Run: checkQueueCPUs},
	}
}

// Run runs every check and returns the findings in order. It runs on the
// calling goroutine only (see the package doc).
func Run(opts Options) []Finding {
	sys := opts.Sys
	if sys == nil {
		sys = Real()
	}
	c := &Context{Opts: opts, Sys: sys}
	var out []Finding
	for _, ch := range Checks() {
		if ch.Iface && c.Link == nil {
			continue
		}
		for _, f := range ch.Run(c) {
			if f.Check == "" {
				f.Check = ch.Name
			}
			out = append(out, f)
		}
	}
	return out
}

// Exit returns the exit code of a report and its one-word verdict: 0
// ready, 1 degraded (a WARN), 2 not possible (a FAIL).
func Exit(findings []Finding) (code int, verdict string) {
	worst := Pass
	for _, f := range findings {
		worst = max(worst, f.Status)
	}
	switch worst {
	case Pass:
		return 0, "ready"
	case Warn:
		return 1, "degraded"
	}
	return 2, "not possible"
}

func pass(detail string, a ...any) Finding {
	return Finding{Status: Pass, Detail: fmt.Sprintf(detail, a...)}
}

func warn(fix, detail string, a ...any) Finding {
	return Finding{Status: Warn, Detail: fmt.Sprintf(detail, a...), Fix: fix}
}

func fail(fix, detail string, a ...any) Finding {
	return Finding{Status: Fail, Detail: fmt.Sprintf(detail, a...), Fix: fix}
}
