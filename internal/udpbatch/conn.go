package udpbatch

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// sockaddrLen is the size of the sockaddr storage of every slot: a
// sockaddr_in6, which also holds a sockaddr_in.
const (
	sockaddrLen  = unix.SizeofSockaddrInet6
	sockaddr4Len = unix.SizeofSockaddrInet4
)

// Stats counts what a Conn did since New. The counters are plain integers:
// read them from the goroutine that drives the Conn.
type Stats struct {
	Received  uint64 // datagrams returned by Read
	Truncated uint64 // of those, cut to the buffer size (MSG_TRUNC)
	RxErrors  uint64 // socket errors (ICMP) Read absorbed and retried past
	Sent      uint64 // datagrams the kernel accepted in Flush
	Dropped   uint64 // queued datagrams the kernel refused, skipped by Flush
	Coalesced uint64 // of Received, datagrams the kernel handed over coalesced (GRO)
	GSOSends  uint64 // messages that carried several datagrams (UDP_SEGMENT)
	GSOOff    bool   // GSO was turned off: refused by the kernel, or SetGSO(false)
}

// Conn does batched UDP I/O on one socket with recvmmsg and sendmmsg. It is
// driven by one goroutine; only closing the underlying *net.UDPConn may
// happen from another one. See the package documentation.
type Conn struct {
	rc     syscall.RawConn
	family int // AF_INET or AF_INET6: the socket's domain

	// receive side: batch slots, wired once in New
	slab  []byte
	bufs  [][]byte
	rh    []unix.Mmsghdr
	riov  []unix.Iovec
	rname []unix.RawSockaddrInet6
	rctl  [][ctlLen]byte // per slot: IP_PKTINFO / IPV6_PKTINFO control messages
	rn    int            // slots filled by the last recvmmsg
	rerr  unix.Errno     // error of the last recvmmsg, if it ended the read
	recvF func(uintptr) bool
	size  int // bytes of each slot's buffer

	// What Read returns: datagram i is lbuf[i][:llen[i]], from slot
	// lslot[i]. Without GRO that is slot i itself; a slot that holds
	// several coalesced datagrams is cut into them, each copied into its
	// own spill buffer. Slots from pslot on (segment pseg of it) are left
	// for the next Read when more datagrams came than Batch().
	gro   bool
	spill []byte // Batch() buffers of size bytes, made by SetGRO
	lbuf  [][]byte
	llen  []int32
	lslot []int32
	pslot int
	pseg  int

	// send side: per queued datagram its iovec and destination; Flush
	// builds the messages (wh) from them, one per datagram or, with GSO,
	// one per run of equal-sized datagrams to one destination.
	wiov  []unix.Iovec
	wname []unix.RawSockaddrInet6
	wnlen []uint32 // sockaddr length of each queued datagram
	wh    []unix.Mmsghdr
	wctl  [][gsoCtlLen]byte // per message: a UDP_SEGMENT control message
	wfrom []int32           // per message: index of its first datagram
	wcnt  []int32           // per message: how many datagrams it carries
	nm    int               // messages built for this Flush
	gso   bool              // group datagrams with UDP_SEGMENT
	gsoOK bool              // the kernel takes UDP_SEGMENT
	nq    int               // datagrams queued
	wpos  int               // next message to hand to the kernel
	wok   int               // datagrams the kernel accepted in this Flush
	wtry  bool              // the message at wpos already failed once
	werr  unix.Errno        // first refusal in this Flush
	sendF func(uintptr) bool

	stats Stats
}

// New wraps c for batched I/O: batch receive slots of bufSize bytes each,
// and room for batch queued datagrams. The buffers belong to the Conn. c
// stays the caller's: closing it ends the Conn (every call then returns
// net.ErrClosed); deadlines set on it apply to Read and Flush.
func New(c *net.UDPConn, batch, bufSize int) (*Conn, error) {
	if batch < 1 || bufSize < 1 {
		return nil, errors.New("udpbatch: batch and bufSize must be at least 1")
	}
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	var family int
	var serr error
	if err := rc.Control(func(fd uintptr) {
		family, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_DOMAIN)
	}); err != nil {
		return nil, err
	}
	if serr != nil {
		return nil, serr
	}
	if family != unix.AF_INET && family != unix.AF_INET6 {
		return nil, errors.New("udpbatch: not an IPv4 or IPv6 socket")
	}
	// Ask for each datagram's destination (Dst): IP_PKTINFO for IPv4 (on
	// an IPv6 socket too, for IPv4-mapped traffic), IPV6_RECVPKTINFO.
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_PKTINFO, 1)
		if family == unix.AF_INET6 {
			if e := unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1); e != nil {
				serr = e
			} else if serr != nil {
				serr = nil // an IPv6-only socket has no IPv4 side
			}
		}
	}); err != nil {
		return nil, err
	}
	if serr != nil {
		return nil, fmt.Errorf("udpbatch: ask for packet info: %w", serr)
	}
	k := &Conn{
		rc: rc, family: family,
		slab: make([]byte, batch*bufSize), bufs: make([][]byte, batch),
		rh: make([]unix.Mmsghdr, batch), riov: make([]unix.Iovec, batch), rname: make([]unix.RawSockaddrInet6, batch),
		rctl: make([][ctlLen]byte, batch), size: bufSize,
		lbuf: make([][]byte, batch), llen: make([]int32, batch), lslot: make([]int32, batch),
		wiov: make([]unix.Iovec, batch), wname: make([]unix.RawSockaddrInet6, batch), wnlen: make([]uint32, batch),
		wh: make([]unix.Mmsghdr, batch), wctl: make([][gsoCtlLen]byte, batch),
		wfrom: make([]int32, batch), wcnt: make([]int32, batch),
	}
	for i := range batch {
		k.bufs[i] = k.slab[i*bufSize : (i+1)*bufSize : (i+1)*bufSize]
		k.riov[i].Base = &k.bufs[i][0]
		k.riov[i].SetLen(bufSize)
		h := &k.rh[i].Hdr
		// unsafe: the kernel writes at most Namelen bytes of sockaddr here.
		h.Name = (*byte)(unsafe.Pointer(&k.rname[i]))
		h.Namelen = sockaddrLen
		h.Iov = &k.riov[i]
		h.SetIovlen(1)
		h.Control = &k.rctl[i][0]
		h.SetControllen(ctlLen)
		// unsafe: a cmsghdr written at the start of an aligned buffer.
		m := (*unix.Cmsghdr)(unsafe.Pointer(&k.wctl[i][0]))
		m.Level, m.Type = unix.SOL_UDP, unix.UDP_SEGMENT
		m.SetLen(unix.CmsgLen(2))
	}
	// GSO when the kernel knows UDP_SEGMENT (Linux 4.18): asking for a
	// segment size of 0 on the socket changes nothing.
	k.gsoOK = rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_UDP, unix.UDP_SEGMENT, 0)
	}) == nil && serr == nil
	k.SetGSO(true)
	k.rn = batch // Read resets every slot the first time
	k.pslot = batch
	// Bound once: passing a stored method value allocates nothing.
	k.recvF = k.recv
	k.sendF = k.send
	return k, nil
}

// Batch is the number of receive slots, and of datagrams Queue holds.
func (c *Conn) Batch() int { return len(c.rh) }

// Stats returns the counters since New.
func (c *Conn) Stats() Stats { return c.stats }

// Read blocks until at least one datagram arrives and fills up to Batch()
// slots; it returns how many. Datagrams still queued are flushed first.
// Slots 0..n-1 stay valid until the next Read. It returns net.ErrClosed
// once the socket is closed, os.ErrDeadlineExceeded (wrapped) past a read
// deadline, and any other error as a unix.Errno, which is transient: count
// it and call Read again. ICMP errors reported on the socket (e.g.
// ECONNREFUSED after a reply to a closed port) are absorbed and counted in
// Stats.RxErrors, never returned.
func (c *Conn) Read() (int, error) {
	if c.nq > 0 {
		if _, err := c.Flush(); errors.Is(err, net.ErrClosed) {
			return 0, err
		}
	}
	if c.pslot < c.rn { // datagrams left from the last recvmmsg
		return c.expand(), nil
	}
	for i := range c.rn {
		c.rh[i].Hdr.Namelen = sockaddrLen
		c.rh[i].Hdr.SetControllen(ctlLen)
		c.rh[i].Hdr.Flags = 0
		c.rh[i].Len = 0
	}
	c.rn, c.rerr = 0, 0
	if err := c.rc.Read(c.recvF); err != nil {
		c.rn = 0
		return 0, ioError(err)
	}
	if c.rerr != 0 {
		return 0, c.rerr
	}
	c.pslot, c.pseg = 0, 0
	return c.expand(), nil
}

// expand makes the datagrams Read returns of the slots from pslot (its
// segment pseg) on, at most Batch() of them, and returns how many.
func (c *Conn) expand() int {
	n := 0
	for c.pslot < c.rn && n < len(c.lbuf) {
		p := c.pslot
		size := int(c.rh[p].Len)
		seg := 0
		if c.gro {
			seg = c.groSize(p)
		}
		if seg <= 0 || size <= seg { // one datagram: served in place
			if c.rh[p].Hdr.Flags&unix.MSG_TRUNC != 0 {
				c.stats.Truncated++
			}
			c.lbuf[n], c.llen[n], c.lslot[n] = c.bufs[p], int32(size), int32(p)
			n++
			c.pslot++
			continue
		}
		// Datagrams of seg bytes, the last one maybe shorter. Each is
		// copied out, so that a reply written in place never overwrites
		// one not read yet.
		for c.pseg*seg < size && n < len(c.lbuf) {
			off := c.pseg * seg
			l := min(seg, size-off)
			b := c.spill[n*c.size : (n+1)*c.size : (n+1)*c.size]
			copy(b, c.bufs[p][off:off+l])
			c.lbuf[n], c.llen[n], c.lslot[n] = b, int32(l), int32(p)
			c.stats.Coalesced++
			n++
			c.pseg++
		}
		if c.pseg*seg >= size {
			c.pslot++
			c.pseg = 0
		}
	}
	c.stats.Received += uint64(n)
	return n
}

// groSize returns the datagram size of slot p when the kernel coalesced
// several datagrams into it (its UDP_GRO control message), else 0.
func (c *Conn) groSize(p int) int {
	for ctl := c.control(p); ; {
		m, data, rest, ok := nextCmsg(ctl)
		if !ok {
			return 0
		}
		if m.Level == unix.SOL_UDP && m.Type == unix.UDP_GRO && len(data) >= 4 {
			// unsafe: the int the kernel wrote after the cmsghdr.
			return int(*(*int32)(unsafe.Pointer(&data[0])))
		}
		ctl = rest
	}
}

// SetGRO asks the kernel to hand over datagrams of one flow coalesced
// (UDP_GRO), as the receiving device's GRO merged them, and Read cuts
// them apart again: fewer, larger trips through the socket layer when a
// peer sends bursts. It needs slots of at least 64 KiB (a coalesced
// buffer is up to that) and costs a second set of buffers (Batch() times
// the slot size), made on the first call. Read still returns at most
// Batch() datagrams; the rest wait for the next Read. Without GRO on the
// device (veth without NAPI) nothing changes.
func (c *Conn) SetGRO(on bool) error {
	if on && c.size < groMinBuf {
		return fmt.Errorf("udpbatch: GRO needs slots of at least %d bytes, not %d", groMinBuf, c.size)
	}
	v := 0
	if on {
		v = 1
	}
	var serr error
	if err := c.rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_UDP, unix.UDP_GRO, v)
	}); err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("udpbatch: UDP_GRO: %w", serr)
	}
	if on && c.spill == nil {
		c.spill = make([]byte, len(c.lbuf)*c.size)
	}
	c.gro = on
	return nil
}

// groMinBuf holds the largest buffer GRO coalesces datagrams into.
const groMinBuf = 64 << 10

// recv is the RawConn.Read callback: one non-blocking recvmmsg. It returns
// false on EAGAIN so that the netpoller waits for the socket.
func (c *Conn) recv(fd uintptr) bool {
	for {
		// unsafe: rh and everything it points to is Go memory the Conn
		// keeps alive; the kernel writes names, buffers and lengths.
		r, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&c.rh[0])), uintptr(len(c.rh)),
			unix.MSG_DONTWAIT, 0, 0)
		switch e {
		case 0:
			c.rn = int(r)
			return true
		case unix.EAGAIN:
			return false
		case unix.EINTR:
		default:
			if !PendingError(e) {
				c.rerr = e
				return true
			}
			// sk_err was read and cleared: the next call reads data.
			c.stats.RxErrors++
		}
	}
}

// PendingError reports whether e is an error the kernel keeps on a UDP
// socket (sk_err, set by an ICMP error) and reports once to the next call:
// the call may be made again.
func PendingError(e unix.Errno) bool {
	switch e {
	case unix.ECONNREFUSED, unix.EHOSTUNREACH, unix.ENETUNREACH, unix.EHOSTDOWN, unix.ENETDOWN,
		unix.EPROTO, unix.ENOPROTOOPT, unix.EMSGSIZE, unix.ETIMEDOUT, unix.EACCES:
		return true
	}
	return false
}

// Buf returns slot i's receive buffer at its full capacity. A reply may be
// written into it in place and queued with Queue.
func (c *Conn) Buf(i int) []byte { return c.lbuf[i] }

// Data returns the datagram in slot i: Buf(i)[:Len(i)].
func (c *Conn) Data(i int) []byte { return c.lbuf[i][:c.llen[i]] }

// Len returns the size of the datagram in slot i (0 <= i < n of the last
// Read), at most the buffer size.
func (c *Conn) Len(i int) int { return int(c.llen[i]) }

// Truncated reports whether the datagram in slot i was longer than the
// buffer and was cut to it.
func (c *Conn) Truncated(i int) bool { return c.rh[c.lslot[i]].Hdr.Flags&unix.MSG_TRUNC != 0 }

// From returns the source of the datagram in slot i. IPv4-mapped sources of
// an IPv6 socket are unmapped. The zone (scope id) of a link-local IPv6
// source is left out; Queue(b, i) keeps it.
func (c *Conn) From(i int) netip.AddrPort {
	sa := &c.rname[c.lslot[i]]
	switch sa.Family {
	case unix.AF_INET:
		// unsafe: a sockaddr_in lies at the start of the storage.
		s4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom4(s4.Addr), ntohs(&s4.Port))
	case unix.AF_INET6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), ntohs(&sa.Port))
	}
	return netip.AddrPort{}
}

// ctlLen holds the control messages of a datagram: IPv4 and IPv6 packet
// info (an IPv4 datagram on an IPv6 socket comes with both) and UDP_GRO.
const ctlLen = 128

// Dst returns the destination address of datagram i, and whether it was
// addressed to one of this host's unicast addresses: false for a
// broadcast (limited or subnet-directed) or multicast destination, which a
// server bound to the wildcard address also receives. Without packet info
// (not delivered by the kernel) it reports an invalid address and true.
// It allocates nothing.
func (c *Conn) Dst(i int) (netip.Addr, bool) {
	v6, unicast6 := netip.Addr{}, true
	for ctl := c.control(int(c.lslot[i])); ; {
		m, data, rest, ok := nextCmsg(ctl)
		if !ok {
			break
		}
		switch {
		case m.Level == unix.IPPROTO_IP && m.Type == unix.IP_PKTINFO && len(data) >= unix.SizeofInet4Pktinfo:
			// struct in_pktinfo: ifindex, spec_dst (the local address the
			// route chose), addr (the header's destination). They differ
			// exactly when the destination is not a local unicast
			// address. Preferred: an IPv4 datagram on an IPv6 socket
			// comes with both kinds, and only this one tells a
			// subnet-directed broadcast.
			specDst, addr := [4]byte(data[4:8]), [4]byte(data[8:12])
			return netip.AddrFrom4(addr), specDst == addr
		case m.Level == unix.IPPROTO_IPV6 && m.Type == unix.IPV6_PKTINFO && len(data) >= unix.SizeofInet6Pktinfo:
			v6 = netip.AddrFrom16([16]byte(data[0:16])).Unmap()
			unicast6 = !v6.IsMulticast() && v6 != netip.AddrFrom4([4]byte{255, 255, 255, 255})
		}
		ctl = rest
	}
	return v6, unicast6
}

// control returns the control messages the kernel wrote for slot p.
func (c *Conn) control(p int) []byte {
	return c.rctl[p][:min(int(c.rh[p].Hdr.Controllen), ctlLen)]
}

// nextCmsg splits the first control message off ctl: its header, its
// data and what follows it; ok is false when ctl holds no whole one.
func nextCmsg(ctl []byte) (m *unix.Cmsghdr, data, rest []byte, ok bool) {
	if len(ctl) < unix.SizeofCmsghdr {
		return nil, nil, nil, false
	}
	// unsafe: a cmsghdr the kernel wrote at an aligned offset of ctl.
	m = (*unix.Cmsghdr)(unsafe.Pointer(&ctl[0]))
	if m.Len < unix.SizeofCmsghdr || int(m.Len) > len(ctl) {
		return nil, nil, nil, false
	}
	return m, ctl[unix.SizeofCmsghdr:m.Len], ctl[min(cmsgAlign(int(m.Len)), len(ctl)):], true
}

func cmsgAlign(n int) int { return (n + unix.SizeofPtr - 1) &^ (unix.SizeofPtr - 1) }

// Queue queues datagram b for the source of slot i of the last Read. It
// returns false, queueing nothing, when Batch() datagrams are queued: Flush
// and queue again. b is read at Flush: leave it alone until then.
func (c *Conn) Queue(b []byte, i int) bool {
	if c.nq == len(c.wh) {
		return false
	}
	j, p := c.nq, c.lslot[i]
	c.wname[j] = c.rname[p]
	c.wnlen[j] = c.rh[p].Hdr.Namelen
	c.queue(j, b)
	return true
}

// QueueTo queues datagram b for to, like Queue. An IPv4 address is sent as
// IPv4-mapped on an IPv6 socket; an address the socket cannot reach (IPv6
// on an IPv4 socket, zero AddrPort) is refused by the kernel at Flush and
// counted as dropped. A zone is ignored.
func (c *Conn) QueueTo(b []byte, to netip.AddrPort) bool {
	if c.nq == len(c.wh) {
		return false
	}
	j := c.nq
	sa := &c.wname[j]
	a := to.Addr()
	switch {
	case !a.IsValid():
		*sa = unix.RawSockaddrInet6{}
		c.wnlen[j] = 0
	case c.family == unix.AF_INET && a.Unmap().Is4():
		*sa = unix.RawSockaddrInet6{}
		// unsafe: a sockaddr_in lies at the start of the storage.
		s4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		s4.Family = unix.AF_INET
		htons(&s4.Port, to.Port())
		s4.Addr = a.Unmap().As4()
		c.wnlen[j] = sockaddr4Len
	default:
		*sa = unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: a.As16()}
		htons(&sa.Port, to.Port())
		c.wnlen[j] = sockaddrLen
	}
	c.queue(j, b)
	return true
}

func (c *Conn) queue(j int, b []byte) {
	c.wiov[j].Base = unsafe.SliceData(b)
	c.wiov[j].SetLen(len(b))
	c.nq++
}

// Queued returns the number of datagrams queued.
func (c *Conn) Queued() int { return c.nq }

// Flush sends every queued datagram with sendmmsg, retrying what a partial
// send left and waiting in the netpoller while the socket buffer is full.
// The queue is empty afterwards, whatever happened. sent counts the
// datagrams the kernel accepted. A datagram the kernel refuses (EPERM,
// EMSGSIZE, no route, ...) is tried once more (the refusal may be an
// earlier ICMP error the socket was holding), then skipped and counted in
// Stats.Dropped; err is then the first refusal, a unix.Errno. After the
// socket is closed, err is net.ErrClosed; past a write deadline,
// os.ErrDeadlineExceeded (wrapped).
//
// With GSO on (see SetGSO), consecutive datagrams of one size to one
// destination go to the kernel as one message that it cuts into
// datagrams: one trip through the UDP and IP stack instead of one each.
// What the peer receives is the same. If the kernel refuses such a
// message, its datagrams are sent one by one, and GSO stays off for good
// if the refusal was GSO's own (EINVAL, EIO: no checksum offload on the
// route, a segment over the path MTU).
func (c *Conn) Flush() (sent int, err error) {
	c.build(0, 0)
	c.wpos, c.wok, c.wtry, c.werr = 0, 0, false, 0
	if rerr := c.rc.Write(c.sendF); rerr != nil {
		err = ioError(rerr)
	} else if c.werr != 0 {
		err = c.werr
	}
	sent = c.wok
	c.stats.Sent += uint64(sent)
	for j := range c.nq {
		c.wiov[j].Base = nil // let go of the caller's buffers
	}
	c.nq, c.nm = 0, 0
	return sent, err
}

// GSO limits: at most gsoMaxSegs datagrams (the kernel's UDP_MAX_SEGMENTS
// is 64 or more) and gsoMaxBytes bytes in one message, and only datagrams
// of 1 to gsoMaxSeg bytes, which fit a 1500-byte MTU with any IP header.
const (
	gsoMaxSegs  = 64
	gsoMaxBytes = 60000
	gsoMaxSeg   = 1400
	gsoCtlLen   = 24 // CMSG_SPACE(sizeof(uint16))
)

// SetGSO turns grouping with UDP_SEGMENT on or off and reports whether it
// is on: never where the kernel lacks it. It is on from New where the
// kernel has it.
func (c *Conn) SetGSO(on bool) bool {
	c.gso = on && c.gsoOK
	c.stats.GSOOff = !c.gso
	return c.gso
}

// build makes messages m, m+1, ... of the queued datagrams from j on:
// runs of equal-sized datagrams to one destination while GSO is on (the
// last of a run may be shorter, as the kernel allows), one each otherwise.
func (c *Conn) build(m, j int) {
	for j < c.nq {
		n := 1
		size := c.wiov[j].Len
		if c.gso && size > 0 && size <= gsoMaxSeg {
			total := size
			for j+n < c.nq && n < gsoMaxSegs {
				l := c.wiov[j+n].Len
				if l == 0 || l > size || total+l > gsoMaxBytes ||
					c.wnlen[j+n] != c.wnlen[j] || c.wname[j+n] != c.wname[j] {
					break
				}
				n++
				total += l
				if l < size {
					break // a shorter datagram ends the run
				}
			}
		}
		h := &c.wh[m].Hdr
		// unsafe: the kernel reads Namelen bytes of sockaddr from here.
		h.Name = (*byte)(unsafe.Pointer(&c.wname[j]))
		h.Namelen = c.wnlen[j]
		h.Iov = &c.wiov[j]
		h.SetIovlen(n)
		if n > 1 {
			ctl := &c.wctl[m]
			// unsafe: the segment size, host order, after the cmsghdr.
			*(*uint16)(unsafe.Pointer(&ctl[unix.SizeofCmsghdr])) = uint16(size)
			h.Control = &ctl[0]
			h.SetControllen(gsoCtlLen)
		} else {
			h.Control = nil
			h.SetControllen(0)
		}
		c.wfrom[m], c.wcnt[m] = int32(j), int32(n)
		m++
		j += n
	}
	c.nm = m
}

// send is the RawConn.Write callback: sendmmsg until every message is
// sent or skipped. It returns false on EAGAIN so that the netpoller waits.
func (c *Conn) send(fd uintptr) bool {
	for c.wpos < c.nm {
		// unsafe: wh and everything it points to is Go memory that the
		// Conn (the iovecs) keeps alive; the kernel only reads it.
		r, _, e := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&c.wh[c.wpos])), uintptr(c.nm-c.wpos),
			unix.MSG_DONTWAIT, 0, 0)
		switch e {
		case 0:
			for range int(r) {
				if c.wcnt[c.wpos] > 1 {
					c.stats.GSOSends++
				}
				c.wok += int(c.wcnt[c.wpos])
				c.wpos++
			}
			c.wtry = false
		case unix.EAGAIN:
			return false
		case unix.EINTR:
		default:
			if c.wcnt[c.wpos] > 1 {
				// Send this run's datagrams one by one; without GSO
				// for good if the refusal was about GSO itself.
				if e == unix.EINVAL || e == unix.EIO || e == unix.EOPNOTSUPP {
					c.gso, c.stats.GSOOff = false, true
				}
				gso := c.gso
				c.gso = false
				c.build(c.wpos, int(c.wfrom[c.wpos]))
				c.gso = gso
				continue
			}
			if !c.wtry {
				c.wtry = true
				continue
			}
			if c.werr == 0 {
				c.werr = e
			}
			c.stats.Dropped++
			c.wpos++
			c.wtry = false
		}
	}
	return true
}

// ioError maps an error of RawConn.Read/Write: a closed socket is
// net.ErrClosed itself.
func ioError(err error) error {
	if errors.Is(err, net.ErrClosed) {
		return net.ErrClosed
	}
	return err
}

// ntohs reads a port stored in network byte order.
func ntohs(p *uint16) uint16 {
	// unsafe: a view of the two bytes of *p.
	b := (*[2]byte)(unsafe.Pointer(p))
	return uint16(b[0])<<8 | uint16(b[1])
}

// htons stores port in network byte order.
func htons(p *uint16, port uint16) {
	// unsafe: a view of the two bytes of *p.
	b := (*[2]byte)(unsafe.Pointer(p))
	b[0], b[1] = byte(port>>8), byte(port)
}
