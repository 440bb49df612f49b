package testutil

import (
	"net"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/rebound-net/rebound/bpf"
)

// Lab is the veth/netns lab of scripts/lab.sh, made in Go for tests: a
// server and a client namespace joined by a veth pair with addresses from
// 198.18.0.0/15 and 2001:2::/48, static neighbours, and an XDP_PASS program
// on the client end. Everything is removed when the test ends.
type Lab struct {
	Srv, Cli       *NS
	SrvIf, CliIf   Veth
	SrvIP4, CliIP4 net.IP
	SrvIP6, CliIP6 net.IP
	pass           *bpf.PassProgram
}

// RemovePass detaches the XDP_PASS program from the client end, for a test
// that puts its own program there.
func (l *Lab) RemovePass() {
	if l.pass != nil {
		l.pass.Close()
		l.pass = nil
	}
}

// NewLab builds a lab whose veth ends have the given number of queues.
func NewLab(t testing.TB, queues int) *Lab {
	t.Helper()
	RequirePriv(t)
	l := &Lab{Srv: NewNS(t, "rbs"), Cli: NewNS(t, "rbc"),
		SrvIP4: ServerIP4, CliIP4: ClientIP4, SrvIP6: ServerIP6, CliIP6: ClientIP6}
	l.SrvIf, l.CliIf = NewVeth(t, l.Srv, l.Cli, queues)
	ends := []struct {
		v        Veth
		mac      net.HardwareAddr
		ip4, ip6 net.IP
		peerMAC  net.HardwareAddr
		p4, p6   net.IP
	}{
		{l.SrvIf, ServerMAC, ServerIP4, ServerIP6, ClientMAC, ClientIP4, ClientIP6},
		{l.CliIf, ClientMAC, ClientIP4, ClientIP6, ServerMAC, ServerIP4, ServerIP6},
	}
	for _, e := range ends {
		h := e.v.NS.Netlink
		link, err := h.LinkByIndex(e.v.Index)
		if err != nil {
			t.Fatal(err)
		}
		must(t, "set mac", h.LinkSetHardwareAddr(link, e.mac))
		must(t, "ipv4 address", h.AddrAdd(link, &netlink.Addr{IPNet: &net.IPNet{IP: e.ip4, Mask: net.CIDRMask(24, 32)}}))
		must(t, "ipv6 address", h.AddrAdd(link, &netlink.Addr{IPNet: &net.IPNet{IP: e.ip6, Mask: net.CIDRMask(64, 128)}, Flags: 0x02 /* IFA_F_NODAD */}))
		for _, ip := range []net.IP{e.p4, e.p6} {
			must(t, "neighbour", h.NeighSet(&netlink.Neigh{LinkIndex: e.v.Index, IP: ip, HardwareAddr: e.peerMAC, State: netlink.NUD_PERMANENT}))
		}
	}
	var err error
	l.Cli.Do(t, func() { l.pass, err = bpf.AttachPass(l.CliIf.Index) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.RemovePass)
	return l
}

func must(t testing.TB, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("lab: %s: %v", what, err)
	}
}
