package loadgen

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/rebound-net/rebound/bpf"
	"github.com/rebound-net/rebound/codec"
	"github.com/rebound-net/rebound/xdp"
)

// XDPLoad makes the bench drive its load through AF_XDP sockets of its
// own on Iface, so that the load generator, like the server, bypasses the
// kernel's socket layer and is not the bottleneck. It needs root. The
// target must be an IPv4 address on the same link; its MAC address comes
// from the neighbour table.
//
// With Queues > 1 the bench opens one socket, with its own UMEM, on each
// of the queues Queue .. Queue+Queues-1, and runs one flow (goroutine) on
// each: flow i sends from UDP source port SrcPort+i on tx queue Queue+i,
// which a veth delivers to the peer's rx queue of the same number and a
// NIC spreads by RSS. Each flow matches the replies to its own requests.
// A reply that arrives on another queue's socket (a peer that sends it
// from another queue) is handed over to the flow that owns its port and
// counted as crossed.
type XDPLoad struct {
	Iface   string
	Queue   int    // first rx/tx queue of Iface to use (default 0)
	Queues  int    // queues to load, one socket and flow each (default 1)
	SrcPort uint16 // UDP source port of the first flow's requests (default 40000); flow i uses SrcPort+i
}

// QueueResult is what one queue of an AF_XDP bench carried.
type QueueResult struct {
	Queue    int    `json:"queue"`
	Sent     uint64 `json:"sent"`      // requests sent from this queue
	Received uint64 `json:"received"`  // replies to them, matched
	RxFrames uint64 `json:"rx_frames"` // frames that arrived on this queue's socket
	// CrossedIn are replies to this queue's requests that arrived on
	// another queue's socket; CrossedOut those that arrived here for
	// another queue.
	CrossedIn  uint64 `json:"crossed_in"`
	CrossedOut uint64 `json:"crossed_out"`
}

// xdpGroup is what the queues of an AF_XDP bench share: the addresses,
// the steering program on the interface, and each flow's inbox for replies
// that arrive on another queue.
type xdpGroup struct {
	ifi      *net.Interface
	dstMAC   net.HardwareAddr
	src, dst [4]byte
	dstPort  uint16
	basePort uint16
	queue0   int
	prog     *bpf.Program
	inboxes  []*xdpInbox
	active   atomic.Int32 // flows still sending or waiting for their replies
}

// openXDPGroup resolves the addresses and attaches one steering program
// for every queue's source port.
func openXDPGroup(cfg BenchConfig) (*xdpGroup, error) {
	x := cfg.XDP
	host, portStr, err := net.SplitHostPort(cfg.Target)
	if err != nil {
		return nil, fmt.Errorf("bench: target %q: %w", cfg.Target, err)
	}
	dstIP, err := netip.ParseAddr(host)
	if err != nil || !dstIP.Is4() {
		return nil, fmt.Errorf("bench: --transport xdp needs an IPv4 target address, not %q", host)
	}
	var dport int
	if _, err := fmt.Sscanf(portStr, "%d", &dport); err != nil || dport <= 0 || dport > 65535 {
		return nil, fmt.Errorf("bench: target port %q", portStr)
	}
	ifi, err := net.InterfaceByName(x.Iface)
	if err != nil {
		return nil, fmt.Errorf("bench: interface %s not found", x.Iface)
	}
	n := max(x.Queues, 1)
	if x.Queue < 0 || n > bpf.MaxQueues || x.Queue+n > bpf.MaxQueues {
		return nil, fmt.Errorf("bench: queues %d..%d: at most %d", x.Queue, x.Queue+n-1, bpf.MaxQueues)
	}
	srcIP, err := ifaceIPv4(ifi)
	if err != nil {
		return nil, err
	}
	dstMAC, err := neighbourMAC(dstIP, x.Iface, cfg.Target)
	if err != nil {
		return nil, err
	}
	g := &xdpGroup{ifi: ifi, dstMAC: dstMAC, src: srcIP.As4(), dst: dstIP.As4(), dstPort: uint16(dport),
		basePort: x.SrcPort, queue0: x.Queue}
	if g.basePort == 0 {
		g.basePort = 40000
	}
	if int(g.basePort)+n > 65536 {
		return nil, fmt.Errorf("bench: source ports %d and %d more: past 65535", g.basePort, n-1)
	}
	// The steering program checks what it steers: replies to the source
	// ports are Rebound messages, or memcached datagrams (single-datagram
	// ones: a reply in pieces would go to the kernel).
	var ports []uint16
	for i := 0; i < n; i++ {
		ports = append(ports, g.basePort+uint16(i))
		g.inboxes = append(g.inboxes, newXDPInbox())
	}
	g.active.Store(int32(n))
	opts := bpf.Options{Ports: ports, Queues: x.Queue + n}
	if cfg.Protocol == Memcache {
		opts = bpf.Options{MemcachePorts: ports, Queues: x.Queue + n}
	}
	if g.prog, err = bpf.Load(opts); err != nil {
		return nil, err
	}
	// The load generator's interface often carries a pass-through program
	// (the lab's): replace it for the run.
	if err := g.prog.Attach(x.Iface, bpf.ModeAuto, true); err != nil {
		g.Close()
		return nil, err
	}
	return g, nil
}

func (g *xdpGroup) Close() error {
	if g == nil || g.prog == nil {
		return nil
	}
	return g.prog.Close()
}

// xdpInbox holds replies for one flow that arrived on another flow's
// socket, copied out of that socket's UMEM, until the owner takes them.
// Its buffers are made once: handing over allocates nothing.
type xdpInbox struct {
	pending atomic.Int32 // len(msgs), read without the lock
	mu      sync.Mutex
	msgs    [][]byte // the held replies, in bufs
	bufs    [][]byte
	dropped uint64 // replies that found the inbox full (they time out as lost)
}

const (
	inboxSize = 512
	inboxMsg  = 2048 // a frame: no reply steered to the socket is larger
)

func newXDPInbox() *xdpInbox {
	in := &xdpInbox{msgs: make([][]byte, 0, inboxSize), bufs: make([][]byte, inboxSize)}
	for i := range in.bufs {
		in.bufs[i] = make([]byte, inboxMsg)
	}
	return in
}

// put copies one reply in; it reports false when the inbox is full.
func (in *xdpInbox) put(b []byte) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	n := len(in.msgs)
	if n == inboxSize || len(b) > inboxMsg {
		in.dropped++
		return false
	}
	in.msgs = append(in.msgs, in.bufs[n][:copy(in.bufs[n], b)])
	in.pending.Store(int32(n + 1))
	return true
}

// take passes every held reply to f and empties the inbox.
func (in *xdpInbox) take(f func([]byte)) int {
	if in.pending.Load() == 0 {
		return 0
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	n := len(in.msgs)
	for _, m := range in.msgs {
		f(m)
	}
	in.msgs = in.msgs[:0]
	in.pending.Store(0)
	return n
}

// xdpPort is one AF_XDP socket sending requests and receiving replies.
type xdpPort struct {
	g     *xdpGroup
	index int // flow and queue index within the group
	queue int
	sock  *xdp.Socket
	umem  *xdp.UMEM
	pool  *xdp.Pool

	sendPool []uint64 // free frames for requests
	tmpl     [42]byte // Ethernet + IPv4 + UDP headers of every request
	src      [4]byte
	dst      [4]byte
	srcPort  uint16
	dstPort  uint16

	rxFrames, crossedIn, crossedOut atomic.Uint64
}

func (p *xdpPort) Close() error {
	var errs []error
	if p.sock != nil {
		errs = append(errs, p.sock.Close())
	}
	if p.umem != nil {
		errs = append(errs, p.umem.Close())
	}
	return errors.Join(errs...)
}

// openXDPPort sets up the socket and the UMEM of flow i on queue
// queue0+i, and registers it with the group's steering program.
func (g *xdpGroup) openXDPPort(i int) (*xdpPort, error) {
	p := &xdpPort{g: g, index: i, queue: g.queue0 + i, srcPort: g.basePort + uint16(i), dstPort: g.dstPort, src: g.src, dst: g.dst}
	fail := func(err error) (*xdpPort, error) { p.Close(); return nil, err }
	var err error
	p.umem, err = xdp.NewUMEM(xdp.UMEMConfig{FrameSize: 2048, FrameCount: 4096})
	if err != nil {
		return fail(err)
	}
	p.sock, err = xdp.Open(g.ifi.Index, p.queue, p.umem, xdp.Config{TxBudget: 256})
	if err != nil {
		p.sock, err = xdp.Open(g.ifi.Index, p.queue, p.umem, xdp.Config{})
	}
	if err != nil {
		return fail(fmt.Errorf("bench: queue %d of %s: %w", p.queue, g.ifi.Name, err))
	}
	p.pool, err = p.umem.NewPool(p.umem.Frames())
	if err != nil {
		return fail(err)
	}
	// Half of the frames for sending; the rest go to the fill ring now,
	// before any queue sends: a reply answered in the server's XDP comes
	// back at once, possibly on this queue, and a socket whose fill ring
	// is still empty drops it (one queue's whole first window was lost
	// that way while its goroutine had not started yet).
	p.sendPool = make([]uint64, p.pool.Total()/2)
	p.sendPool = p.sendPool[:p.pool.Get(p.sendPool)]
	p.sock.Refill(p.pool)
	if err := g.prog.RegisterSocket(p.queue, p.sock.FD()); err != nil {
		return fail(err)
	}
	// Headers: Ethernet, IPv4 (no options, DF), UDP; lengths and checksums
	// are set per request.
	h := p.tmpl[:]
	copy(h[0:6], g.dstMAC)
	copy(h[6:12], g.ifi.HardwareAddr)
	binary.BigEndian.PutUint16(h[12:14], 0x0800)
	h[14], h[15] = 0x45, 0
	binary.BigEndian.PutUint16(h[20:22], 0x4000)
	h[22], h[23] = 64, 17
	copy(h[26:30], p.src[:])
	copy(h[30:34], p.dst[:])
	binary.BigEndian.PutUint16(h[34:36], p.srcPort)
	binary.BigEndian.PutUint16(h[36:38], p.dstPort)
	return p, nil
}

func (p *xdpPort) result() QueueResult {
	return QueueResult{Queue: p.queue, RxFrames: p.rxFrames.Load(), CrossedIn: p.crossedIn.Load(), CrossedOut: p.crossedOut.Load()}
}

// frame writes the headers for a message of n bytes already at
// b[42:42+n] and returns the frame's length.
func (p *xdpPort) frame(b []byte, n int) int {
	copy(b, p.tmpl[:])
	binary.BigEndian.PutUint16(b[16:18], uint16(20+8+n))
	b[24], b[25] = 0, 0
	binary.BigEndian.PutUint16(b[24:26], codec.Checksum(b[14:34]))
	binary.BigEndian.PutUint16(b[38:40], uint16(8+n))
	b[40], b[41] = 0, 0
	// UDP checksum: pseudo-header and datagram, combined as folded sums.
	var ph [12]byte
	copy(ph[0:4], p.src[:])
	copy(ph[4:8], p.dst[:])
	ph[9] = 17
	binary.BigEndian.PutUint16(ph[10:12], uint16(8+n))
	s := uint32(^codec.Checksum(ph[:])) + uint32(^codec.Checksum(b[34:42+n]))
	s = s&0xFFFF + s>>16
	c := ^uint16(s&0xFFFF + s>>16)
	if c == 0 {
		c = 0xFFFF
	}
	binary.BigEndian.PutUint16(b[40:42], c)
	return 42 + n
}

// runXDP is flow.run over an AF_XDP socket: requests are built in UMEM
// frames and sent through the tx ring; replies are read from the rx ring.
func (f *flow) runXDP(ctx context.Context) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	p := f.xdp
	const batch = 64
	sendPool := p.sendPool // filled, as the fill ring, by openXDPPort
	start := time.Now()
	perFlow := f.cfg.Rate / float64(f.cfg.Flows)
	lastScan := start
	sending := true
	idle := 0
	complete := f.complete // one method value, not one per round
	for {
		now := time.Now()
		if sending && (now.After(f.end) || ctx.Err() != nil) {
			sending = false
		}
		if !sending && (len(f.free) == len(f.slots) || now.After(f.end.Add(f.cfg.Timeout))) {
			// Done; but replies of other queues may still arrive on
			// this socket: keep receiving until every flow is done.
			if !f.xdpDone {
				f.xdpDone = true
				p.g.active.Add(-1)
			}
			if p.g.active.Load() <= 0 || now.After(f.end.Add(f.cfg.Timeout)) {
				f.lost.Add(uint64(len(f.slots) - len(f.free)))
				return
			}
		}
		// Send.
		submitted := 0
		if sending {
			if quota := min(f.quota(now, start, perFlow), batch, len(sendPool)); quota > 0 {
				tx := p.sock.Tx.Reserve(quota)
				for i := range tx {
					seq := f.take(now, start, perFlow)
					a := sendPool[len(sendPool)-1]
					sendPool = sendPool[:len(sendPool)-1]
					buf := p.umem.Packet(a, 2048-uint32(xdp.PacketHeadroom))
					buf = buf[:cap(buf)]
					n := f.encode(buf[42:], seq)
					tx[i] = xdp.Desc{Addr: a, Len: uint32(p.frame(buf, n))}
				}
				p.sock.Tx.Submit(len(tx))
				submitted = len(tx)
			} else {
				p.sock.Tx.Submit(0)
			}
		}
		// One kick sends what was submitted (up to the tx budget); kick
		// again for leftovers only now and then, a kick being a syscall.
		if submitted > 0 || (idle%16 == 15 && p.sock.Tx.Outstanding() > 0) {
			_ = p.sock.KickTx()
		}
		// Completed sends go back to the send pool.
		for {
			c := p.sock.Completion.Peek(batch)
			if len(c) == 0 {
				p.sock.Completion.Release(0)
				break
			}
			for _, a := range c {
				sendPool = append(sendPool, p.umem.FrameBase(a))
			}
			p.sock.Completion.Release(len(c))
		}
		// Receive.
		rx := p.sock.Rx.Peek(batch)
		for _, d := range rx {
			if pkt := p.umem.Packet(d.Addr, d.Len); pkt != nil {
				if fr, why := codec.ParseFrame(pkt); why == codec.ReasonNone {
					// The reply's port names the flow that sent its
					// request; another queue's go to that flow's inbox.
					if owner := int(fr.DstPort(pkt)) - int(p.g.basePort); owner == p.index || owner < 0 || owner >= len(p.g.inboxes) {
						f.complete(fr.UDPPayload(pkt))
					} else if p.g.inboxes[owner].put(fr.UDPPayload(pkt)) {
						p.crossedOut.Add(1)
					}
				}
			}
			p.pool.Put(d.Addr)
		}
		p.rxFrames.Add(uint64(len(rx)))
		p.sock.Rx.Release(len(rx))
		p.sock.Refill(p.pool)
		busy := len(rx)
		if n := p.g.inboxes[p.index].take(complete); n > 0 {
			p.crossedIn.Add(uint64(n))
			busy += n
		}
		// A wake-up is a syscall: only when nothing came for a while.
		if busy == 0 {
			if idle++; idle%64 == 0 {
				_ = p.sock.WakeRx()
			}
		} else {
			idle = 0
		}
		if now.Sub(lastScan) > 20*time.Millisecond {
			f.expire(now)
			lastScan = now
		}
		// Nothing came and nothing can go (the window is full, or the
		// run is draining): block in poll(2) until a reply comes instead
		// of spinning. The replies reach the socket through the NAPI
		// thread of this side of the link, which often shares our CPU: a
		// spinning loop would hold that CPU for its time slice while the
		// replies it waits for cannot be delivered.
		if busy == 0 && (!sending || len(f.free) == 0) {
			if p.sock.Tx.Outstanding() > 0 {
				_ = p.sock.KickTx()
			}
			_, _ = p.sock.Wait(xdpWait)
		}
	}
}

// xdpWait bounds one wait of the AF_XDP load loop for replies.
const xdpWait = 2 * time.Millisecond

// ifaceIPv4 returns the first IPv4 address of an interface.
func ifaceIPv4(ifi *net.Interface) (netip.Addr, error) {
	addrs, err := ifi.Addrs()
	if err != nil {
		return netip.Addr{}, err
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil {
			ip, _ := netip.AddrFromSlice(n.IP.To4())
			return ip, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("bench: %s has no IPv4 address", ifi.Name)
}

// neighbourMAC finds the target's MAC address in the neighbour table
// (netlink, as 'ip neigh' reads it), sending one datagram through the
// kernel first so that it resolves it.
func neighbourMAC(ip netip.Addr, iface, target string) (net.HardwareAddr, error) {
	link, err := netlink.LinkByName(iface)
	if err != nil {
		return nil, fmt.Errorf("bench: %s: %w", iface, err)
	}
	family := netlink.FAMILY_V4
	if !ip.Is4() {
		family = netlink.FAMILY_V6
	}
	for attempt := 0; attempt < 20; attempt++ {
		neighs, err := netlink.NeighList(link.Attrs().Index, family)
		if err != nil {
			return nil, fmt.Errorf("bench: neighbours of %s: %w", iface, err)
		}
		for _, n := range neighs {
			if a, ok := netip.AddrFromSlice(n.IP); ok && a.Unmap() == ip && len(n.HardwareAddr) == 6 &&
				n.State&(netlink.NUD_INCOMPLETE|netlink.NUD_FAILED) == 0 && n.HardwareAddr.String() != "00:00:00:00:00:00" {
				return n.HardwareAddr, nil
			}
		}
		if attempt == 0 {
			if c, err := net.Dial("udp", target); err == nil {
				_, _ = c.Write([]byte{0})
				c.Close()
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil, fmt.Errorf("bench: no neighbour entry for %s on %s", ip, iface)
}
