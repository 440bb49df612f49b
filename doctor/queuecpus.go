package doctor

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/rebound-net/rebound/internal/cpuset"
)

// queueIRQ is one interrupt of an interface's rx queue.
type queueIRQ struct {
	IRQ   int
	Name  string // as /proc/interrupts names it: eth0-TxRx-3, virtio0-input.3...
	Queue int
	CPUs  string // smp_affinity_list
}

// napiThread is one threaded NAPI kthread (napi/<dev>-<napi id>).
type napiThread struct {
	PID  int
	Comm string
	ID   int // the NAPI id; -1 when the name was cut at 15 bytes
	CPUs string
}

// irqQueue reads the queue number out of an interrupt's name: the last
// number of the name, before any "@pci..." (mlx5_comp3@pci:0000:...).
var irqQueue = regexp.MustCompile(`(\d+)\D*$`)

// rxIRQs returns the interrupts of the interface's rx queues: those whose
// name carries the interface's name, or that belong to its device
// (/sys/class/net/DEV/device/msi_irqs), leaving out transmit-only,
// configuration and control ones.
func (s *System) rxIRQs(dev string) ([]queueIRQ, error) {
	b, err := os.ReadFile(s.path("/proc/interrupts"))
	if err != nil {
		return nil, err
	}
	own := map[int]bool{}
	if ents, err := os.ReadDir(s.path("/sys/class/net/" + dev + "/device/msi_irqs")); err == nil {
		for _, e := range ents {
			if n, err := strconv.Atoi(e.Name()); err == nil {
				own[n] = true
			}
		}
	}
	var out []queueIRQ
	for _, line := range strings.Split(string(b), "\n") {
		num, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		irq, err := strconv.Atoi(num)
		if !ok || err != nil {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		name := f[len(f)-1]
		if !own[irq] && !strings.HasPrefix(name, dev+"-") && !strings.HasPrefix(name, dev+"@") {
			continue
		}
		low := strings.ToLower(name)
		if strings.Contains(low, "config") || strings.Contains(low, "ctrl") || strings.Contains(low, "async") ||
			strings.Contains(low, "output") || (strings.Contains(low, "-tx-") && !strings.Contains(low, "rx")) {
			continue
		}
		m := irqQueue.FindStringSubmatch(strings.SplitN(name, "@", 2)[0])
		if m == nil {
			continue
		}
		q, _ := strconv.Atoi(m[1])
		cpus, _ := s.read(fmt.Sprintf("/proc/irq/%d/smp_affinity_list", irq))
		out = append(out, queueIRQ{IRQ: irq, Name: name, Queue: q, CPUs: cpus})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Queue < out[j].Queue })
	return out, nil
}

// napiThreads returns the interface's threaded NAPI kthreads, in the
// order of their NAPI ids (the order a driver adds its queues' NAPI
// contexts in). A kthread's name is cut at 15 bytes: with a long
// interface name the id is lost and the process id orders them.
func (s *System) napiThreads(dev string) []napiThread {
	prefix := "napi/" + dev + "-"
	cut := len(prefix) > 15
	if cut {
		prefix = prefix[:15]
	}
	ents, _ := os.ReadDir(s.path("/proc"))
	var out []napiThread
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, err := s.read(fmt.Sprintf("/proc/%d/comm", pid))
		if err != nil || !strings.HasPrefix(comm, prefix) {
			continue
		}
		t := napiThread{PID: pid, Comm: comm, ID: -1}
		if !cut {
			if id, err := strconv.Atoi(comm[len(prefix):]); err == nil {
				t.ID = id
			} else {
				continue // napi/eth0-1-8193 is eth0-1's, not eth0's
			}
		}
		status, _ := s.read(fmt.Sprintf("/proc/%d/status", pid))
		for _, line := range strings.Split(status, "\n") {
			if v, ok := strings.CutPrefix(line, "Cpus_allowed_list:"); ok {
				t.CPUs = strings.TrimSpace(v)
			}
		}
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].ID != out[j].ID {
			return out[i].ID < out[j].ID
		}
		return out[i].PID < out[j].PID
	})
	return out
}

// checkQueueCPUs shows, per rx queue, where its receive work runs (the
// queue's interrupt, or its NAPI thread when NAPI is threaded) against
// where serve's worker for it runs (--cpus), and the commands that align
// the two.
func checkQueueCPUs(c *Context) []Finding {
	dev := c.Link.Name
	queues := c.Opts.Queues
	if queues <= 0 {
		queues = max(c.Link.RxQueues, 1)
	}
	ncpu := max(c.Sys.NumCPU(), 1)
	want := func(q int) int { return q % ncpu } // one queue per CPU, in order
	pinned := len(c.Opts.CPUs) > 0
	if pinned {
		if len(c.Opts.CPUs) < queues {
			return []Finding{fail(fmt.Sprintf("rebound serve --cpus with %d CPUs (one per queue), or --queues %d", queues, len(c.Opts.CPUs)),
				"--cpus %s names %d CPU(s) for %d queues: serve refuses to start", cpuset.Format(c.Opts.CPUs), len(c.Opts.CPUs), queues)}
		}
		want = func(q int) int { return c.Opts.CPUs[q] }
	}
	workerAt := func(q int) string {
		if pinned {
			return fmt.Sprintf("worker on CPU %d (--cpus)", want(q))
		}
		return "worker not pinned"
	}
	threaded, _ := c.Sys.read("/sys/class/net/" + dev + "/threaded")
	napis := c.Sys.napiThreads(dev)
	irqs, irqErr := c.Sys.rxIRQs(dev)
	byQueue := map[int][]queueIRQ{}
	for _, i := range irqs {
		byQueue[i.Queue] = append(byQueue[i.Queue], i)
	}
	var out []Finding
	aligned := true
	var cmds []string
	for q := 0; q < queues; q++ {
		cpu := strconv.Itoa(want(q))
		var where []string
		var fix []string
		ok := true
		switch {
		case len(napis) > 0 && threaded != "0":
			if q >= len(napis) {
				where = append(where, "no NAPI thread of its own")
				break
			}
			t := napis[q]
			where = append(where, fmt.Sprintf("NAPI thread %s (pid %d) on CPUs %s", t.Comm, t.PID, t.CPUs))
			if t.CPUs != cpu {
				ok = false
				fix = append(fix, fmt.Sprintf("taskset -pc %s %d", cpu, t.PID))
			}
		case len(byQueue[q]) > 0:
			for _, i := range byQueue[q] {
				where = append(where, fmt.Sprintf("IRQ %d (%s) on CPUs %s", i.IRQ, i.Name, i.CPUs))
				if i.CPUs != cpu {
					ok = false
					fix = append(fix, fmt.Sprintf("echo %s > /proc/irq/%d/smp_affinity_list", cpu, i.IRQ))
				}
			}
		default:
			where = append(where, "no interrupt of its own and NAPI not threaded: its receive work runs in softirq on whichever CPU raised it (for a veth, the sender's)")
			ok = false
			fix = append(fix, fmt.Sprintf("echo 1 > /sys/class/net/%s/threaded", dev))
		}
		d := fmt.Sprintf("queue %d: %s; %s", q, strings.Join(where, ", "), workerAt(q))
		cmds = append(cmds, fix...)
		if ok {
			out = append(out, pass("%s: aligned", d))
			continue
		}
		aligned = false
		f := pass("%s", d)
		if pinned {
			f = warn("", "%s: the worker and its queue's receive work on different CPUs pay a cross-CPU wake-up per batch", d)
		}
		f.Fix = strings.Join(fix, "; ")
		out = append(out, f)
	}
	if irqErr != nil && len(napis) == 0 {
		out = append(out, pass("/proc/interrupts not readable (%v): interrupts not checked", irqErr))
	}
	if !aligned {
		all := slices.Clone(cmds)
		if !pinned {
			var list []int
			for q := 0; q < queues; q++ {
				list = append(list, want(q))
			}
			all = append(all, fmt.Sprintf("rebound serve --iface %s --queues %d --cpus %s", dev, queues, cpuset.Format(list)))
		}
		status := Pass
		if pinned {
			status = Warn
		}
		out = append(out, Finding{Status: status, Detail: "to put each queue's receive work on its worker's CPU (stop irqbalance first, or it moves the interrupts back)",
			Fix: strings.Join(all, "\n")})
	}
	return out
}
