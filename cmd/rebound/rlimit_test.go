package main

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"syscall"
	"testing"
)

// fakeRlimit is a process's RLIMIT_NOFILE: raising the hard limit takes
// CAP_SYS_RESOURCE (priv) and stays within nrOpen, as in the kernel.
type fakeRlimit struct {
	soft, hard, nrOpen uint64
	priv               bool
}

func (f *fakeRlimit) ops() rlimitOps {
	return rlimitOps{
		get: func() (uint64, uint64, error) { return f.soft, f.hard, nil },
		set: func(soft, hard uint64) error {
			if soft > hard || hard > f.nrOpen || (hard > f.hard && !f.priv) {
				return syscall.EPERM
			}
			f.soft, f.hard = soft, hard
			return nil
		},
		nrOpen: func() (uint64, error) { return f.nrOpen, nil },
	}
}

func TestFitFiles(t *testing.T) {
	const inf = ^uint64(0)
	// 1024 connections, 2 TCP listeners, 8 UDP sockets: 1024 + 2 + 8 + 128 = 1162.
	def := fileBudget{maxConns: 1024, tcpListeners: 2, udpSockets: 8}
	for _, tc := range []struct {
		name      string
		lim       fakeRlimit
		b         fileBudget
		soft      uint64 // the soft limit after
		err, logs string
	}{
		{"soft raised to hard", fakeRlimit{1024, 524288, 1048576, false}, def, 524288, "", "msg=\"open files\" limit=524288 hard=524288 need=1162"},
		{"unlimited hard: soft to nr_open", fakeRlimit{1024, inf, 1048576, false}, def, 1048576, "", "limit=1048576"},
		{"hard raised with CAP_SYS_RESOURCE", fakeRlimit{1024, 1024, 1048576, true}, def, 1162, "", "limit=1162 hard=1162"},
		{"does not fit: warned with what fits", fakeRlimit{1024, 1024, 1048576, false}, def, 1024, "",
			"level=WARN msg=\"--max-conns does not fit the open-files limit: past the connections that fit, accepting fails (EMFILE) and new clients wait\" limit=1024 hard=1024 need=1162 max_conns=1024 tcp_ports=2 udp_sockets=8 xdp_sockets=0 margin=128 conns_that_fit=886 fix=\"LimitNOFILE=1162 (ulimit -n 1162), or --max-conns 886\""},
		{"this class: 18,000 on one port", fakeRlimit{1024, 20000, 1048576, false}, fileBudget{maxConns: 18000, tcpListeners: 1, udpSockets: 2}, 20000, "", "need=18131"},
		{"beyond nr_open", fakeRlimit{1024, 1024, 1048576, true}, fileBudget{maxConns: 1100000, tcpListeners: 2, udpSockets: 8}, 1024, "more than the kernel lets any process have (fs.nr_open 1048576)", ""},
		{"no room for one connection", fakeRlimit{64, 64, 1048576, false}, def, 64, "leaves no room for a connection", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			log := slog.New(slog.NewTextHandler(&out, nil))
			lim := tc.lim
			err := fitFiles(lim.ops(), tc.b, log)
			if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Fatalf("error %v, want %q", err, tc.err)
			}
			if lim.soft != tc.soft {
				t.Errorf("soft limit %d after, want %d", lim.soft, tc.soft)
			}
			if !strings.Contains(out.String(), tc.logs) {
				t.Errorf("log %q, want %q in it", out.String(), tc.logs)
			}
		})
	}
	t.Run("unreadable", func(t *testing.T) {
		var out bytes.Buffer
		o := rlimitOps{get: func() (uint64, uint64, error) { return 0, 0, errors.New("no") }}
		if err := fitFiles(o, def, slog.New(slog.NewTextHandler(&out, nil))); err != nil || !strings.Contains(out.String(), "not checked") {
			t.Fatalf("error %v, log %q", err, out.String())
		}
	})
}

// serve refuses a --max-conns no process can hold before it opens a
// socket.
func TestServeMaxConnsImpossible(t *testing.T) {
	var stderr bytes.Buffer
	code := serveCmd([]string{"--mode", "udp", "--listen", "127.0.0.1:0", "--memcache-listen", "127.0.0.1:0", "--max-conns", "100000000"}, &bytes.Buffer{}, &stderr)
	if code != exitUsage || !strings.Contains(stderr.String(), "fs.nr_open") {
		t.Fatalf("exit %d, stderr %q; want %d and fs.nr_open named", code, stderr.String(), exitUsage)
	}
	if code := serveCmd([]string{"--max-conns", "0"}, &bytes.Buffer{}, &stderr); code != exitUsage {
		t.Fatalf("--max-conns 0: exit %d", code)
	}
}
