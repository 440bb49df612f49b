package loadgen

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/rebound-net/rebound/bpf"
	"github.com/rebound-net/rebound/codec"
	"github.com/rebound-net/rebound/xdp"
)

// XDPLoad makes the bench drive its load through an AF_XDP socket of its
// own on Iface, so that the load generator, like the server, bypasses the
// kernel's socket layer and is not the bottleneck. It needs root. The
// target must be an IPv4 address on the same link; its MAC address comes
// from the neighbour table.
type XDPLoad struct {
	Iface   string
	Queue   int    // rx/tx queue of Iface to use (default 0)
	SrcPort uint16 // UDP source port of the requests (default 40000); replies to it are steered to the socket
}

// xdpPort is one AF_XDP socket sending requests and receiving replies.
type xdpPort struct {
	sock *xdp.Socket
	umem *xdp.UMEM
	pool *xdp.Pool
	prog *bpf.Program

	tmpl    [42]byte // Ethernet + IPv4 + UDP headers of every request
	src     [4]byte
	dst     [4]byte
	srcPort uint16
	dstPort uint16
}

func (p *xdpPort) Close() error {
	var errs []error
	if p.prog != nil {
		errs = append(errs, p.prog.Close())
	}
	if p.sock != nil {
		errs = append(errs, p.sock.Close())
	}
	if p.umem != nil {
		errs = append(errs, p.umem.Close())
	}
	return errors.Join(errs...)
}

// openXDPPort sets up the socket, the UMEM and the steering program on the
// load generator's interface.
func openXDPPort(cfg BenchConfig, flowIndex int) (*xdpPort, error) {
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
	srcIP, err := ifaceIPv4(ifi)
	if err != nil {
		return nil, err
	}
	dstMAC, err := neighbourMAC(dstIP, x.Iface, cfg.Target)
	if err != nil {
		return nil, err
	}
	p := &xdpPort{srcPort: x.SrcPort + uint16(flowIndex), dstPort: uint16(dport), src: srcIP.As4(), dst: dstIP.As4()}
	if p.srcPort == uint16(flowIndex) {
		p.srcPort = 40000 + uint16(flowIndex)
	}
	fail := func(err error) (*xdpPort, error) { p.Close(); return nil, err }
	// The steering program checks what it steers: replies to the source
	// port are Rebound messages, or memcached datagrams (single-datagram
	// ones: a reply in pieces would go to the kernel).
	opts := bpf.Options{Ports: []uint16{p.srcPort}}
	if cfg.Protocol == Memcache {
		opts = bpf.Options{MemcachePorts: []uint16{p.srcPort}}
	}
	p.prog, err = bpf.Load(opts)
	if err != nil {
		return fail(err)
	}
	// The load generator's interface often carries a pass-through program
	// (the lab's): replace it for the run.
	if err := p.prog.Attach(x.Iface, bpf.ModeAuto, true); err != nil {
		return fail(err)
	}
	p.umem, err = xdp.NewUMEM(xdp.UMEMConfig{FrameSize: 2048, FrameCount: 4096})
	if err != nil {
		return fail(err)
	}
	p.sock, err = xdp.Open(ifi.Index, x.Queue, p.umem, xdp.Config{TxBudget: 256})
	if err != nil {
		p.sock, err = xdp.Open(ifi.Index, x.Queue, p.umem, xdp.Config{})
	}
	if err != nil {
		return fail(err)
	}
	p.pool, err = p.umem.NewPool(p.umem.Frames())
	if err != nil {
		return fail(err)
	}
	if err := p.prog.RegisterSocket(x.Queue, p.sock.FD()); err != nil {
		return fail(err)
	}
	// Headers: Ethernet, IPv4 (no options, DF), UDP; lengths and checksums
	// are set per request.
	h := p.tmpl[:]
	copy(h[0:6], dstMAC)
	copy(h[6:12], ifi.HardwareAddr)
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
	// Keep half of the frames for sending; the rest receive.
	sendPool := make([]uint64, p.pool.Total()/2)
	sendPool = sendPool[:p.pool.Get(sendPool)]
	p.sock.Refill(p.pool)
	start := time.Now()
	perFlow := f.cfg.Rate / float64(f.cfg.Flows)
	lastScan := start
	sending := true
	idle := 0
	for {
		now := time.Now()
		if sending && (now.After(f.end) || ctx.Err() != nil) {
			sending = false
		}
		if !sending && (len(f.free) == len(f.slots) || now.After(f.end.Add(f.cfg.Timeout))) {
			f.lost.Add(uint64(len(f.slots) - len(f.free)))
			return
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
					f.complete(fr.UDPPayload(pkt))
				}
			}
			p.pool.Put(d.Addr)
		}
		p.sock.Rx.Release(len(rx))
		p.sock.Refill(p.pool)
		// A wake-up is a syscall: only when nothing came for a while.
		if len(rx) == 0 {
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
		if len(rx) == 0 && (!sending || len(f.free) == 0) {
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
