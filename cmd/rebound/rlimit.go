package main

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/rebound-net/rebound/doctor"
)

// rlimitOps reads and sets RLIMIT_NOFILE, and reads fs.nr_open (the most
// any process may have); tests replace them.
type rlimitOps struct {
	get    func() (soft, hard uint64, err error)
	set    func(soft, hard uint64) error
	nrOpen func() (uint64, error)
}

var realRlimit = rlimitOps{
	get: func() (uint64, uint64, error) {
		var r syscall.Rlimit
		err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r)
		return r.Cur, r.Max, err
	},
	set: func(soft, hard uint64) error {
		return syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: soft, Max: hard})
	},
	nrOpen: func() (uint64, error) {
		b, err := os.ReadFile("/proc/sys/fs/nr_open")
		if err != nil {
			return 0, err
		}
		return strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	},
}

// raise raises RLIMIT_NOFILE as far as the process may: the hard limit to
// need when it is lower (which takes CAP_SYS_RESOURCE, and need within
// fs.nr_open), then the soft limit to the hard one (at most fs.nr_open).
// It returns the limits in force after, and fs.nr_open (0 when unknown).
// Go's runtime already raises the soft limit at start; this also covers
// the hard one.
func (o rlimitOps) raise(need uint64) (soft, hard, nrOpen uint64, err error) {
	if soft, hard, err = o.get(); err != nil {
		return 0, 0, 0, fmt.Errorf("getrlimit(RLIMIT_NOFILE): %w", err)
	}
	nrOpen, _ = o.nrOpen()
	if hard < need && (nrOpen == 0 || need <= nrOpen) && o.set(need, need) == nil {
		soft, hard = need, need
	}
	// The kernel refuses a hard limit above fs.nr_open in any call, even
	// one that keeps it: a hard limit above it is lowered to it.
	target := hard
	if nrOpen > 0 {
		target = min(target, nrOpen)
	}
	if soft < target && o.set(target, target) == nil {
		soft, hard = target, target
	}
	return soft, hard, nrOpen, nil
}

// fileBudget is what serve's descriptors are counted from.
type fileBudget struct {
	maxConns     int // every TCP listener together
	tcpListeners int
	udpSockets   int
	queues       int // AF_XDP sockets
}

// fitFiles raises RLIMIT_NOFILE for b and says how it went: an error when
// b cannot fit at all (more than fs.nr_open, or no room left for a single
// connection), a warning with what does fit when --max-conns does not, an
// info line when it does.
func fitFiles(o rlimitOps, b fileBudget, log *slog.Logger) error {
	need := doctor.FilesNeed(b.maxConns, b.tcpListeners, b.udpSockets, b.queues)
	soft, hard, nrOpen, err := o.raise(need)
	if err != nil {
		log.Warn("cannot read the open-files limit: --max-conns is not checked", "err", err)
		return nil
	}
	args := []any{"limit", soft, "hard", hard, "need", need, "max_conns", b.maxConns, "tcp_ports", b.tcpListeners,
		"udp_sockets", b.udpSockets, "xdp_sockets", b.queues, "margin", doctor.FilesMargin}
	if nrOpen > 0 && need > nrOpen {
		return fmt.Errorf("--max-conns %d: needs %d open files, more than the kernel lets any process have (fs.nr_open %d)",
			b.maxConns, need, nrOpen)
	}
	fit := doctor.FilesFit(soft, need, b.maxConns)
	if fit == 0 {
		return fmt.Errorf("--max-conns %d: the open-files limit %d (hard %d) leaves no room for a connection: serve needs %d (raise LimitNOFILE, or ulimit -n)",
			b.maxConns, soft, hard, need)
	}
	if soft < need {
		log.Warn("--max-conns does not fit the open-files limit: past the connections that fit, accepting fails (EMFILE) and new clients wait",
			append(args, "conns_that_fit", fit, "fix", fmt.Sprintf("LimitNOFILE=%d (ulimit -n %d), or --max-conns %d", need, need, fit))...)
		return nil
	}
	log.Info("open files", args...)
	return nil
}

// rxQueues counts iface's rx queues in sysfs (0 when unknown).
func rxQueues(iface string) int {
	if iface == "" {
		return 0
	}
	m, _ := filepath.Glob(filepath.Join("/sys/class/net", iface, "queues", "rx-*"))
	return len(m)
}
