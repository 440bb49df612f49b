package userspace

import (
	"errors"
	"fmt"
	"net/netip"
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
