package userspace

import (
	"math"
	"net"
	"net/netip"
	"sync/atomic"

	"github.com/rebound-net/rebound/codec"
	mc "github.com/rebound-net/rebound/codec/memcache"
	"github.com/rebound-net/rebound/internal/udpbatch"
	"github.com/rebound-net/rebound/userspace/mcserve"
)

// mcTooLarge is the one datagram an untrusted source gets instead of a
// reply over the amplification bound: memcached's UDP has no TRUNCATED
// flag, so the client is told to ask again over TCP.
const mcTooLarge = "SERVER_ERROR reply too large for UDP; use TCP\r\n"

const (
	// mcUDPFramable is the largest reply message memcached's UDP framing
	// can carry: a 16-bit datagram count of UDPMaxPayload bytes each
	// (about 90 MB). Every message of a reply is within it, so is the whole.
	mcUDPFramable = 0xFFFF * mc.UDPMaxPayload
	// mcKeepBuf is the most reply memory a worker keeps between datagrams.
	mcKeepBuf = 256 << 10
)

// Prefixes is a small set of address prefixes (an allow-list, trusted
// sources). A linear scan: the lists are short, and it allocates nothing.
type Prefixes []netip.Prefix

// Contains reports whether a is in one of the prefixes. IPv4-mapped IPv6
// addresses match IPv4 prefixes.
func (p Prefixes) Contains(a netip.Addr) bool {
	a = a.Unmap()
	for _, q := range p {
		if q.Contains(a) {
			return true
		}
	}
	return false
}

// mcDatagram answers memcached requests, one datagram at a time, for one
// worker (a UDP socket or an AF_XDP queue): it runs the request, frames the
// reply into datagrams of at most memcache.UDPMaxDatagram bytes and applies
// the amplification bound. Its buffers grow to the largest reply seen and
// are reused: nothing is allocated in steady state.
type mcDatagram struct {
	conn  *mcserve.Conn
	reply []byte // the reply messages, unframed
	out   []byte // the reply datagrams, framed, back to back
	lens  []int  // size of each datagram in out
	amp   int
	trust *atomic.Pointer[Prefixes] // sources the amplification bound spares; nil: none
	stats *WorkerStats
}

func newMCDatagram(h *mcserve.Handler, amp int, trust *atomic.Pointer[Prefixes], stats *WorkerStats) *mcDatagram {
	return &mcDatagram{conn: h.NewConn(), reply: make([]byte, 0, 2048), out: make([]byte, 0, 2048),
		lens: make([]int, 0, 8), amp: amp, trust: trust, stats: stats}
}

func (m *mcDatagram) trusted(src netip.Addr) bool {
	if m.trust == nil {
		return false
	}
	p := m.trust.Load()
	return p != nil && p.Contains(src)
}

// reset empties out and lens, and gives back an out grown for a large
// reply.
func (m *mcDatagram) reset() {
	m.out, m.lens = m.out[:0], m.lens[:0]
	if cap(m.out) > mcKeepBuf {
		m.out = make([]byte, 0, 2048)
	}
}

// serve answers the request datagram req (its UDP payload) from src: its
// reply datagrams are appended to out, in order, with their sizes to lens,
// and serve returns how many it appended (0: nothing to send). No
// datagram is larger than pathMax (the UDP payload the link carries
// unfragmented; the socket path, where the kernel fragments, passes no
// bound): a reply that needs larger ones is replaced by the "use TCP"
// error, as one over the amplification bound is.
func (m *mcDatagram) serve(req []byte, src netip.Addr, pathMax int) int {
	before := len(m.lens)
	m.serveInto(req, src, pathMax)
	return len(m.lens) - before
}

// tooLarge appends the one "use TCP" datagram, if it fits room.
func (m *mcDatagram) tooLarge(requestID uint16, room int) {
	if mc.UDPHeaderLen+len(mcTooLarge) > room {
		return // even the error would not fit: say nothing
	}
	m.out = mc.AppendUDPHeader(m.out, mc.UDPHeader{RequestID: requestID, Total: 1})
	m.out = append(m.out, mcTooLarge...)
	m.lens = append(m.lens, mc.UDPHeaderLen+len(mcTooLarge))
}

func (m *mcDatagram) serveInto(req []byte, src netip.Addr, pathMax int) {
	m.stats.Rx.Add(1)
	if len(req) >= mc.UDPHeaderLen && !mc.IsRequest(req[mc.UDPHeaderLen:]) {
		// A reply (or noise) is never answered: no reply loops.
		m.stats.Drops[codec.ReasonNotRequest].Add(1)
		return
	}
	// The budget is fixed before the request runs: the amplification
	// bound for an untrusted source (the framed reply is larger than the
	// unframed one, so the exact check below still decides), else what
	// memcached's framing can number.
	budget := mcUDPFramable
	bounded := m.amp > 0 && !m.trusted(src)
	if bounded {
		budget = min(budget, m.amp*len(req))
	}
	reply, ends, hdr, ok, over := m.conn.ServeDatagramWithin(req, m.reply[:0], budget)
	m.reply = reply[:0]
	if cap(m.reply) > mcKeepBuf {
		m.reply = make([]byte, 0, 2048) // one large reply is done: give it back
	}
	if !ok {
		m.stats.Drops[codec.ReasonBadFrameHeader].Add(1)
		return
	}
	if over {
		if bounded {
			m.stats.Rejects[codec.ReasonAmplification].Add(1)
			m.tooLarge(hdr.RequestID, min(m.amp*len(req), pathMax))
		} else {
			m.stats.Rejects[codec.ReasonTooLarge].Add(1)
			m.tooLarge(hdr.RequestID, pathMax)
		}
		return
	}
	// An empty message (a multi-get whose first key misses) goes out as a
	// bare header numbered 0 of 0, as memcached sends it.
	size, biggest, prev := 0, 0, 0
	for _, end := range ends {
		n := end - prev
		size += n + max(mc.UDPDatagrams(n), 1)*mc.UDPHeaderLen
		biggest = max(biggest, mc.UDPHeaderLen+min(n, mc.UDPMaxPayload))
		prev = end
	}
	if size == 0 {
		return // noreply, or a quiet meta command
	}
	if bounded && size > m.amp*len(req) {
		m.stats.Rejects[codec.ReasonAmplification].Add(1)
		m.tooLarge(hdr.RequestID, min(m.amp*len(req), pathMax))
		return
	}
	if biggest > pathMax {
		// The link cannot carry memcached's 1400-byte datagrams: they would
		// be dropped on the wire.
		m.stats.Rejects[codec.ReasonTooLarge].Add(1)
		m.tooLarge(hdr.RequestID, pathMax)
		return
	}
	prev = 0
	for _, end := range ends {
		msg := reply[prev:end]
		prev = end
		total := mc.UDPDatagrams(len(msg))
		if total == 0 {
			m.out = mc.AppendUDPHeader(m.out, mc.UDPHeader{RequestID: hdr.RequestID})
			m.lens = append(m.lens, mc.UDPHeaderLen)
			continue
		}
		for i := range total {
			s, e := mc.UDPChunk(len(msg), i)
			m.out = mc.AppendUDPHeader(m.out, mc.UDPHeader{RequestID: hdr.RequestID, Seq: uint16(i), Total: uint16(total)})
			m.out = append(m.out, msg[s:e]...)
			m.lens = append(m.lens, mc.UDPHeaderLen+e-s)
		}
	}
}

// mcUDPWorker serves memcached datagrams on one UDP socket with batched
// recvmmsg/sendmmsg, like udpWorker does for the Rebound protocol. A reply
// may take several datagrams, so replies go out from the mcDatagram's
// buffer rather than in place.
type mcUDPWorker struct {
	gate  *gate // sources served; nil: all
	io    *udpbatch.Conn
	mc    *mcDatagram
	stats *WorkerStats
	to    []int // per reply datagram of the batch: the slot it answers
}

func newMCUDPWorker(conn *net.UDPConn, h *mcserve.Handler, stats *WorkerStats, batch, amp int, trust *atomic.Pointer[Prefixes], gro bool) (*mcUDPWorker, error) {
	bio, err := newBatchConn(conn, batch, gro)
	if err != nil {
		return nil, err
	}
	return &mcUDPWorker{io: bio, mc: newMCDatagram(h, amp, trust, stats), stats: stats}, nil
}

// run serves until the socket is closed.
func (w *mcUDPWorker) run() error {
	for {
		n, closed := readBatch(w.io, w.stats)
		if closed {
			return nil
		}
		if n == 0 {
			continue
		}
		// Every reply of the batch goes into mc's buffers first (they may
		// grow and move), then out in as few sendmmsg calls as fit.
		w.mc.reset()
		w.to = w.to[:0]
		for i := 0; i < n; i++ {
			src := w.io.From(i).Addr()
			if !admitDatagram(w.io, i, src, w.gate, w.stats) {
				continue
			}
			for range w.mc.serve(w.io.Data(i), src, math.MaxInt) {
				w.to = append(w.to, i)
			}
		}
		off := 0
		for k, l := range w.mc.lens {
			d := w.mc.out[off : off+l]
			off += l
			if !w.io.Queue(d, w.to[k]) {
				flushBatch(w.io, w.stats)
				w.io.Queue(d, w.to[k])
			}
		}
		flushBatch(w.io, w.stats)
		w.stats.batch(n)
	}
}
