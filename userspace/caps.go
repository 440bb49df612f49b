package userspace

import (
	"strings"

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
