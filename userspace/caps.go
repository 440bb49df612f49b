package userspace

import (
	"fmt"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// xdpCaps are the capabilities xdp mode needs: attaching XDP, the socket
// map and ethtool (CAP_NET_ADMIN), AF_XDP sockets (CAP_NET_RAW), loading
// the program (CAP_BPF) and, for the verifier to accept its pointer
// arithmetic without root, CAP_PERFMON. Root has them all; a service user
// gets them as ambient capabilities (deploy/rebound.service).
var xdpCaps = []struct {
	bit  uint
	name string
}{{unix.CAP_NET_ADMIN, "CAP_NET_ADMIN"}, {unix.CAP_NET_RAW, "CAP_NET_RAW"}, {unix.CAP_BPF, "CAP_BPF"}, {unix.CAP_PERFMON, "CAP_PERFMON"}}

// missingXDPCaps names the capabilities xdp mode needs that the process's
// effective set lacks, or "" when it has them all.
func missingXDPCaps() string {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return "capabilities (capget: " + err.Error() + ")"
	}
	var missing []string
	for _, c := range xdpCaps {
		if data[c.bit/32].Effective&(1<<(c.bit%32)) == 0 {
			missing = append(missing, c.name)
		}
	}
	return strings.Join(missing, ", ")
}

// DropCapabilities keeps only what a running server still needs and
// drops every other capability from the effective, permitted and
// inheritable sets of every thread of the process, for good: after Start,
// AF_XDP sockets are bound, the program is loaded and attached, and the
// ports are open. What stays in xdp mode: CAP_BPF (SetAllow builds the new
// allow-list in a new map) and CAP_NET_ADMIN (rx-vlan-offload is restored
// at Stop); in udp mode, nothing. It returns the names of what it kept.
func (s *Server) DropCapabilities() ([]string, error) {
	var keep []struct {
		bit  uint
		name string
	}
	if s.mode == ModeXDP {
		keep = append(keep, xdpCaps[0], xdpCaps[2]) // CAP_NET_ADMIN, CAP_BPF
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return nil, fmt.Errorf("capget: %w", err)
	}
	var next [2]unix.CapUserData
	var kept []string
	for _, c := range keep {
		if data[c.bit/32].Permitted&(1<<(c.bit%32)) != 0 {
			next[c.bit/32].Permitted |= 1 << (c.bit % 32)
			next[c.bit/32].Effective |= 1 << (c.bit % 32)
			kept = append(kept, c.name)
		}
	}
	// capset acts on the calling thread only; the runtime's other threads
	// (the workers', locked to theirs) must drop too.
	if _, _, e := syscall.AllThreadsSyscall(unix.SYS_CAPSET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&next[0])), 0); e != 0 {
		if e == unix.ENOTSUP {
			return nil, fmt.Errorf("capset on every thread: %w (a cgo build cannot change every thread's capabilities: build with CGO_ENABLED=0, as 'make build' does)", e)
		}
		return nil, fmt.Errorf("capset on every thread: %w", e)
	}
	return kept, nil
}
