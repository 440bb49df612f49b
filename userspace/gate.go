package userspace

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync/atomic"

	"github.com/rebound-net/rebound/codec"
)

// gate decides, on every path (AF_XDP, UDP sockets, TCP, both protocols),
// which sources are served: never a broadcast, multicast or unspecified
// address, and, when an allow-list is set, only sources inside it. The list
// is swapped whole with one atomic store, so a request is checked against
// the old list or the new one, never against none.
type gate struct {
	allow atomic.Pointer[Prefixes] // nil or empty: every unicast source
	// ports are the ports our own services listen on: a datagram from one
	// of them at the address it was sent to came from ourselves (spoofed:
	// we never send requests), and answering it would start a loop.
	ports atomic.Pointer[[]uint16]
}

var bcast4 = netip.AddrFrom4([4]byte{255, 255, 255, 255})

// admit returns ReasonNone when a request from src may be answered.
func (g *gate) admit(src netip.Addr) codec.Reason {
	src = src.Unmap()
	if !src.IsValid() || src.IsMulticast() || src.IsUnspecified() || src == bcast4 {
		return codec.ReasonNotUnicast
	}
	if p := g.allow.Load(); p != nil && len(*p) > 0 && !p.Contains(src) {
		return codec.ReasonNotAllowed
	}
	return codec.ReasonNone
}

// ownSource reports whether a datagram from src to dst came from one of our
// own service sockets: the same address, one of our ports.
func (g *gate) ownSource(src netip.AddrPort, dst netip.Addr) bool {
	if !dst.IsValid() || src.Addr().Unmap() != dst.Unmap() {
		return false
	}
	if p := g.ports.Load(); p != nil {
		for _, port := range *p {
			if port == src.Port() {
				return true
			}
		}
	}
	return false
}

// setPorts puts the ports our services listen on in force.
func (g *gate) setPorts(ports []uint16) {
	ports = slices.Clone(ports)
	g.ports.Store(&ports)
}

// set validates list and then puts it in force in one step; an invalid
// prefix leaves the list in force as it was.
func (g *gate) set(list []netip.Prefix) error {
	next, err := checkPrefixes(list)
	if err != nil {
		return err
	}
	g.allow.Store(&next)
	return nil
}

// checkPrefixes returns a masked copy of list, or an error naming the
// first prefix that is not valid.
func checkPrefixes(list []netip.Prefix) (Prefixes, error) {
	next := make(Prefixes, 0, len(list))
	for _, p := range list {
		if !p.IsValid() {
			return nil, fmt.Errorf("allow-list: prefix %q is not valid", p)
		}
		next = append(next, p.Masked())
	}
	return next, nil
}

// errNotRunning is returned by live updates on a stopped server.
var errNotRunning = errors.New("server: not running")
