package bpf

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// MaxQueues is the number of rx queues the socket map can hold.
const MaxQueues = 256

// MaxAllow is the number of prefixes an allow-list can hold (IPv4 and IPv6
// together).
const MaxAllow = 2048

// MaxLocalAddrs is the number of local addresses of each family (IPv4,
// IPv6) SetLocal can take.
const MaxLocalAddrs = 1024

// Counter names one outcome counted by the program (enum counter in the C
// source).
type Counter int

// The program's outcomes.
const (
	Seen           Counter = iota // every packet the program ran on
	Redirected                    // request (of any port kind) sent to an AF_XDP socket
	PassNotOurs                   // not a request for its port: to the kernel
	PassNoSocket                  // request on a queue without a socket: to the kernel
	DropAllowList                 // request from a source outside the allow-list: dropped
	PassMalformed                 // truncated or inconsistent Ethernet/IP/UDP headers: to the kernel
	PassFragment                  // IPv4 fragment: to the kernel (served by the socket path)
	PassNotLocal                  // request not addressed to this host, or from a group/unset source: to the kernel
	Answered                      // request answered in XDP (XDP_TX); see AnswerCounters for which
	DropUnfinished                // reply begun in XDP that could not be finished: dropped (never expected)
	DropOwnSource                 // request whose source IP is one of ours (the destination, a local address, loopback): dropped
	NumCounters
)

var counterNames = [NumCounters]string{"seen", "redirected", "pass_not_ours", "pass_no_socket", "drop_allowlist", "pass_malformed", "pass_fragment", "pass_not_local", "answered", "drop_unfinished", "drop_own_source"}

func (c Counter) String() string {
	if c >= 0 && c < NumCounters {
		return counterNames[c]
	}
	return fmt.Sprintf("counter(%d)", int(c))
}

// Counters holds the program's counters, summed over CPUs.
type Counters [NumCounters]uint64

// Mode is how the program is attached.
type Mode int

const (
	// ModeAuto tries native (driver) mode and falls back to generic.
	ModeAuto Mode = iota
	// ModeNative runs the program in the driver (XDP_FLAGS_DRV_MODE).
	ModeNative
	// ModeGeneric runs it after the kernel built an skb (XDP_FLAGS_SKB_MODE):
	// works on every interface, slower.
	ModeGeneric
)

func (m Mode) String() string {
	switch m {
	case ModeNative:
		return "native"
	case ModeGeneric:
		return "generic"
	}
	return "auto"
}

// ParseMode parses "auto", "native" or "generic".
func ParseMode(s string) (Mode, error) {
	switch s {
	case "auto", "":
		return ModeAuto, nil
	case "native", "drv", "driver":
		return ModeNative, nil
	case "generic", "skb":
		return ModeGeneric, nil
	}
	return 0, fmt.Errorf("xdp mode %q: want auto, native or generic", s)
}

// Options configure a loaded program.
type Options struct {
	// Ports are the UDP destination ports whose Rebound requests are
	// steered.
	Ports []uint16
	// MemcachePorts are the UDP destination ports whose memcached
	// requests (single-datagram ones) are steered.
	MemcachePorts []uint16
	// RawPorts are the UDP destination ports of protocols of the user's
	// own, which the program cannot parse: every datagram to one of them
	// with a payload of at least one byte is steered. Ports,
	// MemcachePorts and RawPorts hold at least one port between them, and
	// none in two of them.
	RawPorts []uint16
	// Allow, when not empty, is the source allow-list: requests from
	// other sources, to any kind of port, are dropped in XDP.
	Allow []netip.Prefix
	// Queues sizes the socket map: rx queues 0 to Queues-1 can have a
	// socket (default and at most MaxQueues).
	Queues int
	// LocalMAC is the MAC of the interface the program is attached to:
	// requests to another destination MAC are passed to the kernel. Nil
	// or empty turns the check off. The server always sets it.
	LocalMAC net.HardwareAddr
	// LocalAddrs are the host's own IPv4 and IPv6 addresses: requests to
	// another destination IP (routed traffic passing through, broadcast,
	// multicast) are passed to the kernel. Empty turns the check off. The
	// server always sets them.
	LocalAddrs []netip.Addr
	// PortHosts narrows the steering of a port (of any kind) to one
	// destination address, its listen host: requests to the port at any
	// other address are passed to the kernel (PassNotLocal). A port not
	// in it is steered at every local address. See SetPortHosts.
	PortHosts map[uint16]netip.Addr
	// AnswerItems, when above 0, sizes the map of items the program
	// answers GETs from (see Answers); 0 leaves answering off and the
	// maps minimal.
	AnswerItems int
}

// Program is the loaded steering program and its maps. Attach puts it on an
// interface through a bpf_link owned by this process, so the kernel detaches
// it when the process exits, however it exits.
type Program struct {
	mu     sync.Mutex // serializes the Set methods
	objs   reboundObjects
	trie   *ebpf.MapSpec                 // template of the allow-list trie (inner map of allow)
	local4 map[[4]byte]bool              // IPv4 addresses in the local4 map now
	local6 map[[16]byte]bool             // IPv6 addresses in the local6 map now
	kinds  [numPortKinds]map[uint32]bool // ports of each kind steered now (index: portRebound...)
	hosts  map[uint32]bool               // ports in the port_hosts map now
	queues int                           // entries of the socket map
	items  *Items                        // nil unless Options.AnswerItems > 0
	link   link.Link
	iface  string
	mode   Mode
	closed bool
}

// Load loads the program and its maps into the kernel and configures them.
func Load(opts Options) (*Program, error) {
	if len(opts.Ports) == 0 && len(opts.MemcachePorts) == 0 && len(opts.RawPorts) == 0 {
		return nil, errors.New("bpf: no port to steer")
	}
	sets := []struct {
		kind  uint8
		ports []uint16
	}{{portRebound, opts.Ports}, {portMemcache, opts.MemcachePorts}, {portRaw, opts.RawPorts}}
	for i, a := range sets {
		for _, b := range sets[i+1:] {
			for _, port := range b.ports {
				if slices.Contains(a.ports, port) {
					return nil, fmt.Errorf("bpf: port %d cannot be both a %s and a %s port", port, portKindNames[a.kind], portKindNames[b.kind])
				}
			}
		}
	}
	if opts.Queues < 0 || opts.Queues > MaxQueues {
		return nil, fmt.Errorf("bpf: %d queues: at most %d", opts.Queues, MaxQueues)
	}
	if opts.Queues == 0 {
		opts.Queues = MaxQueues
	}
	p := &Program{queues: opts.Queues}
	spec, err := loadRebound()
	if err != nil {
		return nil, fmt.Errorf("bpf: read the embedded program: %w", err)
	}
	spec.Maps["xsks"].MaxEntries = uint32(opts.Queues)
	if opts.AnswerItems < 0 || opts.AnswerItems > MaxAnswerItems {
		return nil, fmt.Errorf("bpf: %d answer items: at most %d", opts.AnswerItems, MaxAnswerItems)
	}
	buckets, slots := answerSizes(opts.AnswerItems)
	spec.Maps["item_buckets"].MaxEntries = buckets
	spec.Maps["items"].MaxEntries = slots
	spec.Maps["items_small"].MaxEntries = slots
	seed, err := setAnswerVars(spec, buckets)
	if err != nil {
		return nil, err
	}
	clock, err := pickClock(spec)
	if err != nil {
		return nil, err
	}
	if in := spec.Maps["allow"].InnerMap; in == nil {
		return nil, errors.New("bpf: the embedded program has no allow-list template")
	} else {
		p.trie = in.Copy()
		p.trie.Name = "allow_list"
	}
	if err := spec.LoadAndAssign(&p.objs, nil); err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("bpf: the kernel's verifier refused the program: %w", err)
		}
		if errors.Is(err, unix.EPERM) {
			return nil, fmt.Errorf("bpf: load program: %w (needs root or CAP_BPF and CAP_NET_ADMIN)", err)
		}
		return nil, fmt.Errorf("bpf: load program: %w", err)
	}
	if opts.AnswerItems > 0 {
		items, err := newItems(p.objs.ItemBuckets, p.objs.Items, p.objs.ItemsSmall, p.objs.Answers, p.objs.Flush, clock, seed)
		if err != nil {
			p.Close()
			return nil, err
		}
		p.items = items
	}
	if err := p.SetPorts(opts.Ports); err != nil {
		p.Close()
		return nil, err
	}
	if err := p.SetMemcachePorts(opts.MemcachePorts); err != nil {
		p.Close()
		return nil, err
	}
	if err := p.SetRawPorts(opts.RawPorts); err != nil {
		p.Close()
		return nil, err
	}
	if err := p.SetPortHosts(opts.PortHosts); err != nil {
		p.Close()
		return nil, err
	}
	if err := p.SetAllow(opts.Allow); err != nil {
		p.Close()
		return nil, err
	}
	if err := p.SetLocal(opts.LocalMAC, opts.LocalAddrs); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// Values of the ports map (enum port_kind in the C source): what a UDP
// destination port speaks.
const (
	portNone     uint8 = 0
	portRebound  uint8 = 1
	portMemcache uint8 = 2
	portRaw      uint8 = 3
	numPortKinds       = 4
)

// portKindNames name the port kinds in errors.
var portKindNames = [numPortKinds]string{"unsteered", "Rebound", "memcached", "raw"}

// SetPorts replaces the set of UDP ports whose Rebound requests are
// steered, while running. A port that is a memcached or raw port now is
// refused: take it out with SetMemcachePorts or SetRawPorts first.
func (p *Program) SetPorts(ports []uint16) error {
	return p.setKind(ports, portRebound)
}

// SetMemcachePorts replaces the set of UDP ports whose memcached requests
// are steered, while running. A port that is a Rebound or raw port now is
// refused: take it out with SetPorts or SetRawPorts first.
func (p *Program) SetMemcachePorts(ports []uint16) error {
	return p.setKind(ports, portMemcache)
}

// SetRawPorts replaces the set of UDP ports of the user's own protocols,
// while running: every datagram to one of them with a payload of at least
// one byte is steered, unparsed. A port that is a Rebound or memcached
// port now is refused: take it out with SetPorts or SetMemcachePorts
// first.
func (p *Program) SetRawPorts(ports []uint16) error {
	return p.setKind(ports, portRaw)
}

// setKind makes ports the set of kind: it marks them as kind in the ports
// map and unmarks the ports of kind not among them. A port of another kind
// now is refused, and the update with it (nothing changes).
func (p *Program) setKind(ports []uint16, kind uint8) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errClosed
	}
	want := make(map[uint32]bool, len(ports))
	for _, port := range ports {
		if port == 0 {
			return errors.New("bpf: port 0 cannot be steered")
		}
		for other, set := range p.kinds {
			if uint8(other) != kind && set[uint32(port)] {
				return fmt.Errorf("bpf: port %d is already a %s port: a port speaks one protocol", port, portKindNames[other])
			}
		}
		want[uint32(port)] = true
	}
	// Set the new ones first, then clear the old ones, so that a port in
	// both sets is never unsteered for a moment. The set steered now is
	// kept here: walking the 65536-entry map would take a syscall a key.
	// It tracks the map at every step, so a failed update leaves no port
	// steered untracked (and so unclearable, or unseen by the conflict
	// check).
	cur := p.kinds[kind]
	if cur == nil {
		cur = make(map[uint32]bool, len(want))
		p.kinds[kind] = cur
	}
	for port := range want {
		if err := p.objs.Ports.Put(port, kind); err != nil {
			return fmt.Errorf("bpf: set port %d: %w", port, err)
		}
		cur[port] = true
	}
	for port := range cur {
		if !want[port] {
			if err := p.objs.Ports.Put(port, portNone); err != nil {
				return fmt.Errorf("bpf: clear port %d: %w", port, err)
			}
			delete(cur, port)
		}
	}
	return nil
}

// portHost is a value of the port_hosts map (struct port_host in the C
// source).
type portHost struct {
	Family uint8 // 4 or 6
	_      [3]byte
	Addr   [16]byte
}

// MaxPortHosts is the number of ports SetPortHosts can narrow.
const MaxPortHosts = 4096

// SetPortHosts replaces, while running, the ports steered at one
// destination address only: each port in hosts is steered for requests
// to its address, and passed to the kernel (PassNotLocal) at any other;
// a port not in hosts is steered at every local address (SetLocal). A
// server sets it from its listen addresses, so that a port listening on
// 127.0.0.1 is not served at the interface's address.
//
// The new entries go in first (one element each, replaced whole), then
// the ones no longer wanted go: a port whose address changes is never
// steered for every address in between. Invalid input is an error and
// changes nothing.
func (p *Program) SetPortHosts(hosts map[uint16]netip.Addr) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errClosed
	}
	if len(hosts) > MaxPortHosts {
		return fmt.Errorf("bpf: %d port hosts: at most %d", len(hosts), MaxPortHosts)
	}
	want := make(map[uint32]portHost, len(hosts))
	for port, a := range hosts {
		if port == 0 {
			return errors.New("bpf: port host for port 0")
		}
		if !a.IsValid() || a.IsUnspecified() || a.IsMulticast() {
			return fmt.Errorf("bpf: host %v of port %d: want a unicast address", a, port)
		}
		var h portHost
		if a = a.Unmap(); a.Is4() {
			h.Family = 4
			a4 := a.As4()
			copy(h.Addr[:], a4[:])
		} else {
			h.Family = 6
			h.Addr = a.WithZone("").As16()
		}
		want[uint32(port)] = h
	}
	if p.hosts == nil {
		p.hosts = make(map[uint32]bool)
	}
	for port, h := range want {
		if err := p.objs.PortHosts.Put(port, h); err != nil {
			return fmt.Errorf("bpf: host of port %d: %w", port, err)
		}
		p.hosts[port] = true
	}
	for port := range p.hosts {
		if _, ok := want[port]; !ok {
			if err := p.objs.PortHosts.Delete(port); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
				return fmt.Errorf("bpf: clear the host of port %d: %w", port, err)
			}
			delete(p.hosts, port)
		}
	}
	return nil
}

// allowKey is the key of the allow-list trie (struct allow_key in the C
// source; written by hand, as BTF does not describe it).
type allowKey struct {
	Prefixlen uint32 // 8 (Family) + the prefix's bits
	Family    uint8  // 4 or 6
	Addr      [16]byte
	_         [3]byte
}

// SetAllow replaces the source allow-list, while running. An empty list
// serves every source.
//
// The update is atomic and fails closed: every prefix is checked first (a
// bad one is an error and leaves the list in force untouched); the new list
// is built in a trie that is not live yet, then swapped in with one map
// update, so a packet sees the old list or the new one, never none. The
// kernel frees the old trie once no program run can still use it.
func (p *Program) SetAllow(prefixes []netip.Prefix) error {
	return p.setList(p.objs.Allow, "allow-list", prefixes)
}

// SetTrust replaces the trusted sources, while running: memcached replies
// answered in XDP to them are not bounded by the amplification factor
// (userspace's --trust-src). An empty list trusts no source. The update is
// atomic and fails closed, as SetAllow's.
func (p *Program) SetTrust(prefixes []netip.Prefix) error {
	return p.setList(p.objs.Trust, "trusted list", prefixes)
}

// setList builds a trie of prefixes and swaps it into slot 0 of outer.
func (p *Program) setList(outer *ebpf.Map, what string, prefixes []netip.Prefix) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errClosed
	}
	keys := make(map[allowKey]netip.Prefix, len(prefixes))
	for _, pf := range prefixes {
		if !pf.IsValid() {
			return fmt.Errorf("bpf: %s entry %v is not a valid prefix", what, pf)
		}
		pf = pf.Masked()
		var k allowKey
		if a := pf.Addr(); a.Is4() || a.Is4In6() {
			bits := pf.Bits()
			if a.Is4In6() {
				bits = max(bits-96, 0)
			}
			a4 := a.Unmap().As4()
			k = allowKey{Prefixlen: 8 + uint32(bits), Family: 4}
			copy(k.Addr[:], a4[:])
		} else {
			k = allowKey{Prefixlen: 8 + uint32(pf.Bits()), Family: 6, Addr: a.WithZone("").As16()}
		}
		keys[k] = pf
	}
	if len(keys) > MaxAllow {
		return fmt.Errorf("bpf: %s of %d prefixes: at most %d", what, len(keys), MaxAllow)
	}
	if len(keys) == 0 {
		if err := outer.Delete(uint32(0)); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("bpf: clear the %s: %w", what, err)
		}
		return nil
	}
	trie, err := ebpf.NewMap(p.trie)
	if err != nil {
		return fmt.Errorf("bpf: create a trie for the %s: %w", what, err)
	}
	// The outer map holds its own reference once the trie is in: ours
	// goes, and with it the old trie's last one when the slot is replaced.
	defer trie.Close()
	for k, pf := range keys {
		if err := trie.Put(k, uint8(1)); err != nil {
			return fmt.Errorf("bpf: %s: add %v: %w", what, pf, err)
		}
	}
	if err := outer.Put(uint32(0), trie); err != nil {
		return fmt.Errorf("bpf: switch to the new %s: %w", what, err)
	}
	return nil
}

// SetLocal sets what is addressed to this host, while running: mac, the
// interface's MAC (nil or empty: any unicast destination MAC), and addrs,
// the host's own IPv4 and IPv6 addresses (empty: any destination IP).
// Requests addressed elsewhere are passed to the kernel, counted as
// PassNotLocal. Requests to a group (multicast, broadcast) MAC, from a
// group source MAC, or from an unset, broadcast or multicast source IP are
// passed whatever is set here.
//
// An address in both the old and the new set is never refused during the
// update; invalid input is an error and changes nothing.
func (p *Program) SetLocal(mac net.HardwareAddr, addrs []netip.Addr) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errClosed
	}
	var cfg reboundConfig
	switch {
	case len(mac) == 0:
	case len(mac) != 6:
		return fmt.Errorf("bpf: local MAC %v: want 6 bytes", mac)
	case mac[0]&1 != 0:
		return fmt.Errorf("bpf: local MAC %v is a group (multicast) address", mac)
	default:
		copy(cfg.Mac[:], mac)
		cfg.CheckMac = 1
	}
	want4 := make(map[[4]byte]bool)
	want6 := make(map[[16]byte]bool)
	for _, a := range addrs {
		if !a.IsValid() || a.IsUnspecified() || a.IsMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
			return fmt.Errorf("bpf: local address %v: want a unicast address", a)
		}
		if a = a.Unmap(); a.Is4() {
			want4[a.As4()] = true
		} else {
			want6[a.WithZone("").As16()] = true
		}
	}
	if len(want4) > MaxLocalAddrs || len(want6) > MaxLocalAddrs {
		return fmt.Errorf("bpf: %d IPv4 and %d IPv6 local addresses: at most %d of each", len(want4), len(want6), MaxLocalAddrs)
	}
	if len(want4)+len(want6) > 0 {
		cfg.CheckDst = 1
	}
	// New addresses first, then the switch, then the old ones out: an
	// address in both sets is never refused, and the check is never on
	// with a set that is not whole.
	// p.local4 and p.local6 track the maps' content at every step, so that
	// a failed update leaves nothing behind untracked.
	if p.local4 == nil {
		p.local4, p.local6 = make(map[[4]byte]bool), make(map[[16]byte]bool)
	}
	for a := range want4 {
		if err := p.objs.Local4.Put(a, uint8(1)); err != nil {
			return fmt.Errorf("bpf: local address %v: %w", netip.AddrFrom4(a), err)
		}
		p.local4[a] = true
	}
	for a := range want6 {
		if err := p.objs.Local6.Put(a, uint8(1)); err != nil {
			return fmt.Errorf("bpf: local address %v: %w", netip.AddrFrom16(a), err)
		}
		p.local6[a] = true
	}
	if err := p.objs.Config.Put(uint32(0), cfg); err != nil {
		return fmt.Errorf("bpf: config: %w", err)
	}
	for a := range p.local4 {
		if !want4[a] {
			if err := p.objs.Local4.Delete(a); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
				return fmt.Errorf("bpf: clear local address %v: %w", netip.AddrFrom4(a), err)
			}
			delete(p.local4, a)
		}
	}
	for a := range p.local6 {
		if !want6[a] {
			if err := p.objs.Local6.Delete(a); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
				return fmt.Errorf("bpf: clear local address %v: %w", netip.AddrFrom16(a), err)
			}
			delete(p.local6, a)
		}
	}
	return nil
}

// RegisterSocket puts the AF_XDP socket fd in the slot of queue: requests
// (of any port kind) arriving on that rx queue go to it.
func (p *Program) RegisterSocket(queue, fd int) error {
	if p.closed {
		return errClosed
	}
	if queue < 0 || queue >= p.queues {
		return fmt.Errorf("bpf: queue %d out of range 0..%d", queue, p.queues-1)
	}
	if err := p.objs.Xsks.Put(uint32(queue), uint32(fd)); err != nil {
		return fmt.Errorf("bpf: register socket for queue %d: %w", queue, err)
	}
	return nil
}

// UnregisterSocket empties the slot of queue: its requests go to the kernel.
func (p *Program) UnregisterSocket(queue int) error {
	if p.closed {
		return errClosed
	}
	if err := p.objs.Xsks.Delete(uint32(queue)); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("bpf: unregister queue %d: %w", queue, err)
	}
	return nil
}

// ErrAttached is wrapped by Attach when the interface already has an XDP
// program and replacement was not asked for.
var ErrAttached = errors.New("interface already has an XDP program")

var errClosed = errors.New("bpf: program closed")

// Attach attaches the program to the interface named iface in mode, through
// a bpf_link. It never silently replaces a program already attached: that is
// an error naming it, unless replace is true, in which case a program
// attached through netlink (ip link, libxdp's legacy mode) is detached
// first. A program held by another process's bpf_link cannot be replaced.
func (p *Program) Attach(iface string, mode Mode, replace bool) error {
	if p.closed {
		return errClosed
	}
	if p.link != nil {
		return fmt.Errorf("bpf: already attached to %s", p.iface)
	}
	l, err := netlink.LinkByName(iface)
	if err != nil {
		return fmt.Errorf("interface %s not found: %w", iface, err)
	}
	if x := l.Attrs().Xdp; x != nil && x.Attached {
		desc := describeProgram(x.ProgId, x.AttachMode)
		if !replace {
			return fmt.Errorf("%s %w: %s; refusing to replace it (detach it, or ask for replacement with --xdp-replace)", iface, ErrAttached, desc)
		}
		// IFLA_XDP_ATTACHED mode (1 drv, 2 skb, 3 hw) to XDP_FLAGS_*_MODE.
		flags := map[uint32]int{1: unix.XDP_FLAGS_DRV_MODE, 2: unix.XDP_FLAGS_SKB_MODE, 3: unix.XDP_FLAGS_HW_MODE}[x.AttachMode]
		if err := netlink.LinkSetXdpFdWithFlags(l, -1, flags); err != nil {
			return fmt.Errorf("replace %s on %s: %w (a program attached through a bpf_link is released only by its owner)", desc, iface, err)
		}
	}
	ifindex := l.Attrs().Index
	try := func(m Mode) error {
		flags := link.XDPDriverMode
		if m == ModeGeneric {
			flags = link.XDPGenericMode
		}
		lk, err := link.AttachXDP(link.XDPOptions{Program: p.objs.ReboundSteer, Interface: ifindex, Flags: flags})
		if err != nil {
			return err
		}
		p.link, p.iface, p.mode = lk, iface, m
		return nil
	}
	switch mode {
	case ModeNative, ModeGeneric:
		if err := try(mode); err != nil {
			return attachError(iface, mode, err)
		}
	default:
		if err := try(ModeNative); err != nil {
			if gerr := try(ModeGeneric); gerr != nil {
				return attachError(iface, ModeGeneric, gerr)
			}
		}
	}
	return nil
}

func attachError(iface string, mode Mode, err error) error {
	if mode == ModeNative && (errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EINVAL)) {
		return fmt.Errorf("native XDP not supported by driver %s of %s: %w; use --xdp-mode generic", driverName(iface), iface, err)
	}
	if errors.Is(err, unix.EBUSY) || errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("attach XDP to %s in %s mode: %w (%w in another mode, or held by another process)", iface, mode, err, ErrAttached)
	}
	if errors.Is(err, unix.EPERM) {
		return fmt.Errorf("attach XDP to %s: %w (needs root or CAP_NET_ADMIN)", iface, err)
	}
	return fmt.Errorf("attach XDP to %s in %s mode: %w", iface, mode, err)
}

// describeProgram names an attached program for an error message.
func describeProgram(id uint32, attachMode uint32) string {
	mode := map[uint32]string{1: "native", 2: "generic", 3: "offload"}[attachMode]
	if mode == "" {
		mode = fmt.Sprintf("mode %d", attachMode)
	}
	name := "?"
	if prog, err := ebpf.NewProgramFromID(ebpf.ProgramID(id)); err == nil {
		if info, err := prog.Info(); err == nil && info.Name != "" {
			name = info.Name
		}
		prog.Close()
	}
	return fmt.Sprintf("program %q (id %d, %s mode)", name, id, mode)
}

// driverName asks ethtool for the interface's driver, for error messages.
func driverName(iface string) string {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return "?"
	}
	defer unix.Close(fd)
	info, err := unix.IoctlGetEthtoolDrvinfo(fd, iface)
	if err != nil {
		return "?"
	}
	return strings.TrimRight(string(info.Driver[:]), "\x00")
}

// Attached reports the interface and mode the program is attached in.
func (p *Program) Attached() (iface string, mode Mode, ok bool) {
	return p.iface, p.mode, p.link != nil
}

// Detach removes the program from its interface (closing the bpf_link).
func (p *Program) Detach() error {
	if p.link == nil {
		return nil
	}
	err := p.link.Close()
	p.link = nil
	return err
}

// Counters reads the program's counters, summed over CPUs.
func (p *Program) Counters() (Counters, error) {
	var c Counters
	if p.closed {
		return c, errClosed
	}
	var per []uint64
	for i := range c {
		if err := p.objs.Counters.Lookup(uint32(i), &per); err != nil {
			return c, fmt.Errorf("bpf: read counter %v: %w", Counter(i), err)
		}
		for _, v := range per {
			c[i] += v
		}
	}
	return c, nil
}

// Run runs the program once on frame with BPF_PROG_RUN, without a NIC, and
// returns its verdict (XDP_DROP 1, XDP_PASS 2, XDP_REDIRECT 4). Counters
// move as for a real packet. For tests and diagnostics.
func (p *Program) Run(frame []byte) (uint32, error) {
	if p.closed {
		return 0, errClosed
	}
	return p.objs.ReboundSteer.Run(&ebpf.RunOptions{Data: frame})
}

// RunFrame is Run that also returns the frame as the program left it: the
// reply, when the verdict is XDP_TX (3).
func (p *Program) RunFrame(frame []byte) (uint32, []byte, error) {
	if p.closed {
		return 0, nil, errClosed
	}
	opts := &ebpf.RunOptions{Data: frame, DataOut: make([]byte, len(frame)+4096)}
	v, err := p.objs.ReboundSteer.Run(opts)
	if err != nil {
		return 0, nil, err
	}
	return v, opts.DataOut, nil
}

// Close detaches the program and releases it and its maps. Idempotent.
func (p *Program) Close() error {
	if p.closed {
		return nil
	}
	p.closed = true
	err := p.Detach()
	if p.items != nil {
		p.items.close()
	}
	return errors.Join(err, p.objs.Close())
}

// InterfaceQueues returns the number of rx queues of the interface, as the
// kernel reports them for AF_XDP binding.
func InterfaceQueues(iface string) (int, error) {
	l, err := netlink.LinkByName(iface)
	if err != nil {
		return 0, fmt.Errorf("interface %s not found: %w", iface, err)
	}
	if n := l.Attrs().NumRxQueues; n > 0 {
		return n, nil
	}
	return 1, nil
}

// PassProgram is an XDP program that passes every packet. The lab puts it
// on the client end of its veth pair: a veth with an XDP program receives
// through NAPI, so frames sent from XDP or AF_XDP on the other end are
// delivered at once.
type PassProgram struct {
	objs passObjects
	link link.Link
}

// AttachPass attaches the pass program to ifindex (native mode, generic
// where native fails), through a bpf_link.
func AttachPass(ifindex int) (*PassProgram, error) {
	p := &PassProgram{}
	if err := loadPassObjects(&p.objs, nil); err != nil {
		return nil, fmt.Errorf("bpf: load pass program: %w", err)
	}
	var err error
	for _, flags := range []link.XDPAttachFlags{link.XDPDriverMode, link.XDPGenericMode} {
		p.link, err = link.AttachXDP(link.XDPOptions{Program: p.objs.XdpPass, Interface: ifindex, Flags: flags})
		if err == nil {
			return p, nil
		}
	}
	p.objs.Close()
	return nil, fmt.Errorf("bpf: attach pass program to ifindex %d: %w", ifindex, err)
}

// Close detaches and releases the pass program.
func (p *PassProgram) Close() error { return errors.Join(p.link.Close(), p.objs.Close()) }
