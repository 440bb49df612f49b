package doctor

import (
	"fmt"
	"runtime"
	"strconv"
	"strings"
)

// Defaults of serve that the open-files check sizes things by.
const (
	// DefaultMaxConns is serve --max-conns: TCP connections of the
	// process, every listener together (memcached's -c).
	DefaultMaxConns = 1024
	// FilesMargin is what serve holds open besides its sockets and
	// connections: standard streams, the poller, the BPF program, maps and
	// link, netlink and /proc reads, the metrics endpoint and its scrapes.
	FilesMargin = 128
	// capSysResource lets a process raise its hard limits (CAP_SYS_RESOURCE).
	capSysResource = 24
)

// FilesNeed is the number of file descriptors serve needs: maxConns
// connections (every TCP listener together), the tcpListeners listeners
// themselves, udpSockets UDP sockets, one AF_XDP socket per queue, and
// FilesMargin.
func FilesNeed(maxConns, tcpListeners, udpSockets, queues int) uint64 {
	return uint64(maxConns) + uint64(tcpListeners) + uint64(udpSockets) + uint64(queues) + FilesMargin
}

// ServeFiles is FilesNeed for serve with both protocols on (two TCP
// listeners, --workers UDP sockets each, numCPU by default) and --queues
// queues.
func ServeFiles(maxConns, workers, queues int) uint64 {
	if maxConns <= 0 {
		maxConns = DefaultMaxConns
	}
	if workers <= 0 {
		workers = runtime.NumCPU()
	}
	return FilesNeed(maxConns, 2, 2*workers, queues)
}

// FilesFit is the number of connections that limit descriptors hold, the
// rest of need (for maxConns connections) being taken first.
func FilesFit(limit, need uint64, maxConns int) int {
	base := need - uint64(maxConns)
	if limit <= base {
		return 0
	}
	return int(min(limit-base, uint64(maxConns)))
}

// openFiles reads the soft and hard "Max open files" of /proc/self/limits
// (^uint64(0) for unlimited).
func (s *System) openFiles() (soft, hard uint64, err error) {
	text, err := s.read("/proc/self/limits")
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(text, "\n") {
		rest, ok := strings.CutPrefix(line, "Max open files")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) < 2 {
			break
		}
		if soft, err = parseLimit(f[0]); err == nil {
			hard, err = parseLimit(f[1])
		}
		return soft, hard, err
	}
	return 0, 0, fmt.Errorf("no \"Max open files\" line in /proc/self/limits")
}

func parseLimit(s string) (uint64, error) {
	if s == "unlimited" {
		return ^uint64(0), nil
	}
	return strconv.ParseUint(s, 10, 64)
}

func checkOpenFiles(c *Context) []Finding {
	queues := c.Opts.Queues
	if queues <= 0 && c.Link != nil {
		queues = max(c.Link.RxQueues, 1)
	}
	conns := c.Opts.MaxConns
	if conns <= 0 {
		conns = DefaultMaxConns
	}
	cpus := c.Sys.NumCPU()
	need := ServeFiles(conns, cpus, queues)
	what := fmt.Sprintf("serve needs %d descriptors (--max-conns %d connections, 2 TCP listeners, %d UDP sockets, %d AF_XDP socket(s), %d more)",
		need, conns, 2*cpus, queues, FilesMargin)
	soft, hard, err := c.Sys.openFiles()
	if err != nil {
		return []Finding{warn("ulimit -n", "%s; cannot read the open-files limit (/proc/self/limits): %v", what, err)}
	}
	if hard >= need {
		raise := ""
		if soft < need {
			raise = fmt.Sprintf("; serve raises the soft limit %d to the hard limit at start", soft)
		}
		return []Finding{pass("RLIMIT_NOFILE %d, hard %d >= %s%s", soft, hard, what, raise)}
	}
	nrOpen, _ := c.Sys.read("/proc/sys/fs/nr_open")
	if n, err := strconv.ParseUint(nrOpen, 10, 64); err == nil && c.has(capSysResource) && need <= n {
		return []Finding{pass("RLIMIT_NOFILE hard %d < %s; serve raises it (it has CAP_SYS_RESOURCE; fs.nr_open %d)", hard, what, n)}
	}
	fit := FilesFit(hard, need, conns)
	fix := fmt.Sprintf("LimitNOFILE=%d in the systemd unit (ulimit -n %d), or rebound serve --max-conns %d", need, need, max(fit, 1))
	return []Finding{warn(fix, "RLIMIT_NOFILE hard %d < %s: past about %d connections a port, accepting fails (EMFILE) and new clients wait", hard, what, fit)}
}
