package userspace

import (
	"net/netip"
	"runtime"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rebound-net/rebound/codec"
	"github.com/rebound-net/rebound/internal/cpuset"
	"github.com/rebound-net/rebound/xdp"
)

// Waiting: a worker that finds nothing to do keeps polling its rings for
// spinFor (each round a few atomic loads) before it blocks in poll(2), so a
// loaded worker, whose gaps between batches are far shorter, never pays a
// sleep and a wake-up, and an idle one uses no CPU.
const (
	spinFor = 500 * time.Microsecond
	// busySpinFor is spinFor with busy polling: the requests arrive only
	// while the worker polls, so it keeps polling through short lulls.
	busySpinFor = time.Second
	pollTimeout = 100 * time.Millisecond
	// clockEvery: an idle worker reads the clock every this many empty
	// rounds (a read costs more than a round).
	clockEvery = 64
	// txStallAfter: a tx ring that has not moved for this long is stalled
	// (link down, say): the worker says so and kicks it only every
	// txStallKick instead of spinning on it.
	txStallAfter = time.Second
	txStallKick  = 10 * time.Millisecond
)

// rawProto is a protocol of your own that this worker answers.
type rawProto struct {
	port uint16
	ds   datagramServer
}

// rawRef is a frame of the batch in flight for a protocol of your own.
type rawRef struct {
	frameRef
	p *datagramServer
}

// frameRef is one rx frame of the batch in flight.
type frameRef struct {
	desc  xdp.Desc
	full  []byte // from the packet start to the end of its UMEM frame
	frame codec.Frame
}

// xdpWorker serves one rx queue through one AF_XDP socket with its own
// UMEM and frame pool. It runs on one goroutine locked to its OS thread and
// is the only user of its rings.
type xdpWorker struct {
	sock  *xdp.Socket
	umem  *xdp.UMEM
	pool  *xdp.Pool
	h     Handler
	gate  *gate // sources served; nil: all
	stats *WorkerStats
	size  int // batch size
	mtu   int
	b     batcher
	refs  []frameRef
	err   error         // why the loop stopped, if not asked to
	spin  time.Duration // how long an idle worker spins before it sleeps in poll
	cpu   int           // CPU its thread is pinned to (Config.CPUs); -1: not pinned

	// memcached datagrams (to mcPort), answered one at a time after the
	// batch of Rebound ones; a reply of several datagrams takes frames
	// from the pool for all but its first.
	mc     *mcDatagram
	mcPort atomic.Uint32 // moved by Server.SetListen
	mcNext atomic.Uint32 // during a move: the new port, answered too
	mcRefs []frameRef

	// protocols of your own, by UDP port, answered after the others.
	raw     []rawProto
	rawRefs []rawRef
	extra   []xdp.Desc
	spare   [1]uint64

	// Frame bookkeeping, by the worker alone: frames handed to the kernel
	// (fill, tx) and taken back (rx, completion). Free + handed - taken
	// must equal the pool's total at every point between two steps.
	filled, received, sent, completed uint64
}

func newXDPWorker(sock *xdp.Socket, pool *xdp.Pool, h Handler, stats *WorkerStats, batch, amp, mtu int) *xdpWorker {
	spin := spinFor
	if sock.BusyPolling() {
		spin = busySpinFor
	}
	return &xdpWorker{
		sock: sock, umem: sock.UMEM(), pool: pool, h: h, stats: stats, size: batch, mtu: mtu, spin: spin, cpu: -1,
		b: newBatcher(batch, amp, stats), refs: make([]frameRef, 0, batch),
	}
}

// run serves until stop is set, then drains what is in flight.
func (w *xdpWorker) run(stop *atomic.Bool) {
	runtime.LockOSThread()
	if w.cpu >= 0 {
		// Pinned: the goroutine ends locked, so its thread exits with
		// it rather than run other goroutines on this CPU alone.
		if err := cpuset.Pin(w.cpu); err != nil {
			w.err = err
			return
		}
	} else {
		defer runtime.UnlockOSThread()
	}
	w.refill() // the server filled it before registering the socket; top up
	idle := 0
	var idleSince, txSince time.Time
	txSeen := w.completed
	for !stop.Load() {
		n := w.step()
		w.complete()
		if n > 0 {
			idle = 0
			continue
		}
		if w.sock.Tx.Outstanding() > 0 {
			// Copy mode sends a bounded number of descriptors per kick.
			// A ring that does not drain (link down) is noticed within
			// txStallAfter and then kicked gently, not in a busy loop.
			now := time.Now()
			switch {
			case w.completed != txSeen || txSince.IsZero():
				txSeen, txSince = w.completed, now
				w.stats.TxStalled.Store(false)
			case now.Sub(txSince) > txStallAfter:
				w.stats.TxStalled.Store(true)
				time.Sleep(txStallKick)
			}
			w.kick()
			if err := w.sock.Err(); err != nil {
				w.err = err
				return
			}
			continue
		}
		if !txSince.IsZero() {
			txSince = time.Time{}
			w.stats.TxStalled.Store(false)
		}
		if err := w.sock.Err(); err != nil {
			w.err = err
			return
		}
		// With busy polling, an empty round runs the queue's NAPI
		// context from here: that is where the next requests come from.
		if err := w.sock.BusyPoll(); err != nil {
			w.err = err
			return
		}
		if idle++; idle == 1 {
			idleSince = time.Now()
		}
		if idle%clockEvery != 0 {
			continue
		}
		if time.Since(idleSince) < w.spin {
			// Let the kernel's receive work for this queue run if it
			// shares the core: when the XDP program answers most
			// requests itself, that work is most of the server, and a
			// worker spinning through its time slice halves it.
			unix.RawSyscall(unix.SYS_SCHED_YIELD, 0, 0, 0)
			continue
		}
		if err := w.sock.WakeRx(); err != nil {
			w.err = err
			return
		}
		ready, err := w.sock.Wait(pollTimeout)
		if err != nil {
			w.err = err
			return
		}
		if ready {
			idle = 0
		} else {
			// A timeout, not traffic: look at the rings once more,
			// then sleep again without spinning first (spinning after
			// every timeout cost an idle server 0.5% of a core).
			idle = clockEvery - 1
		}
	}
	w.drain()
}

// step serves one batch: rx descriptors in, replies out on the tx ring in
// the same frames. It returns how many rx descriptors it consumed.
func (w *xdpWorker) step() int {
	descs := w.sock.Rx.Peek(w.size)
	if len(descs) == 0 {
		w.sock.Rx.Release(0)
		return 0
	}
	tx := w.sock.Tx.Reserve(len(descs))
	k := len(tx) // a full tx ring leaves the rest of rx for the next round
	w.refs = w.refs[:0]
	for _, d := range descs[:k] {
		pkt := w.umem.Packet(d.Addr, d.Len)
		if pkt == nil {
			w.stats.Drops[codec.ReasonTruncated].Add(1)
			w.pool.Put(d.Addr)
			continue
		}
		f, why := codec.ParseFrame(pkt)
		if why == codec.ReasonNone {
			why = w.admit(pkt, f)
		}
		if why != codec.ReasonNone {
			w.stats.Drops[why].Add(1)
			w.pool.Put(d.Addr)
			continue
		}
		full := pkt[:cap(pkt)]
		port := f.DstPort(pkt)
		if w.mc != nil && (uint32(port) == w.mcPort.Load() || uint32(port) == w.mcNext.Load()) {
			w.mcRefs = append(w.mcRefs, frameRef{desc: d, full: full, frame: f})
			continue
		}
		if p := w.rawFor(port); p != nil {
			w.rawRefs = append(w.rawRefs, rawRef{frameRef{desc: d, full: full, frame: f}, p})
			continue
		}
		w.refs = append(w.refs, frameRef{desc: d, full: full, frame: f})
		w.b.add(full[f.Payload:f.Payload+f.PayloadLen], f.PathMax(w.mtu))
	}
	w.sock.Rx.Release(k)
	w.received += uint64(k)
	w.b.run(w.h)
	j := 0
	for i := range w.refs {
		r := &w.refs[i]
		n := 0
		if rl := w.b.items[i].replyLen; rl > 0 {
			n = r.frame.Reply(r.full, rl)
		}
		if n == 0 {
			w.pool.Put(r.desc.Addr)
			continue
		}
		tx[j] = xdp.Desc{Addr: r.desc.Addr, Len: uint32(n)}
		j++
	}
	w.b.reset()
	clear(w.refs) // drop frame references
	for i := range w.mcRefs {
		if n := w.serveMemcache(&w.mcRefs[i]); n > 0 {
			tx[j] = xdp.Desc{Addr: w.mcRefs[i].desc.Addr, Len: uint32(n)}
			j++
		}
	}
	clear(w.mcRefs)
	w.mcRefs = w.mcRefs[:0]
	w.stats.Rx.Add(uint64(len(w.rawRefs)))
	for i := range w.rawRefs {
		r := &w.rawRefs[i]
		f := r.frame
		n := r.p.serve(r.full[f.Payload:], f.PayloadLen, f.SrcAddr(r.full), f.PathMax(w.mtu))
		fl := 0
		if n > 0 {
			fl = f.Reply(r.full, n)
		}
		if fl == 0 {
			w.pool.Put(r.desc.Addr)
			continue
		}
		tx[j] = xdp.Desc{Addr: r.desc.Addr, Len: uint32(fl)}
		j++
	}
	clear(w.rawRefs)
	w.rawRefs = w.rawRefs[:0]
	w.sock.Tx.Submit(j)
	w.sent += uint64(j)
	w.stats.Tx.Add(uint64(j))
	w.submitExtra()
	if j > 0 {
		w.kick()
	}
	return k
}

// rawFor returns the protocol of your own served on port, or nil.
func (w *xdpWorker) rawFor(port uint16) *datagramServer {
	for i := range w.raw {
		if w.raw[i].port == port {
			return &w.raw[i].ds
		}
	}
	return nil
}

// admit checks what the kernel's stack and the socket paths would check
// before a request is served: unicast at both layers, a source the gate
// lets in, and checksums that hold (a corrupted SET must not be stored).
// The XDP program steers only what looks right, but a frame may come from
// a program that is not ours.
func (w *xdpWorker) admit(pkt []byte, f codec.Frame) codec.Reason {
	if !f.Unicast(pkt) {
		return codec.ReasonNotUnicast
	}
	if w.gate != nil {
		if why := w.gate.admit(f.SrcAddr(pkt)); why != codec.ReasonNone {
			return why
		}
		if w.gate.ownSource(netip.AddrPortFrom(f.SrcAddr(pkt), f.SrcPort(pkt)), f.DstAddr(pkt)) {
			return codec.ReasonOwnSource
		}
	}
	if !f.ChecksumsOK(pkt) {
		return codec.ReasonBadChecksum
	}
	return codec.ReasonNone
}

// serveMemcache answers one memcached datagram: the first reply datagram
// is written over the request in its frame (returned: its frame length, or
// 0 when the frame went back to the pool); the others go into frames of
// their own, queued on w.extra, with the request's headers copied first.
func (w *xdpWorker) serveMemcache(r *frameRef) int {
	f := r.frame
	m := w.mc
	m.reset()
	n := m.serve(r.full[f.Payload:f.Payload+f.PayloadLen], f.SrcAddr(r.full), f.PathMax(w.mtu))
	if n == 0 {
		w.pool.Put(r.desc.Addr)
		return 0
	}
	off := m.lens[0]
	for i := 1; i < n; i++ {
		l := m.lens[i]
		d := m.out[off : off+l]
		off += l
		if w.pool.Get(w.spare[:]) == 0 {
			w.stats.Drops[codec.ReasonNoFrame].Add(1)
			continue
		}
		frame := w.umem.Packet(w.spare[0], 0)
		frame = frame[:cap(frame)]
		copy(frame, r.full[:f.Payload])
		copy(frame[f.Payload:], d)
		fl := f.Reply(frame, l)
		if fl == 0 {
			w.pool.Put(w.spare[0])
			w.stats.TxErrors.Add(1)
			continue
		}
		w.extra = append(w.extra, xdp.Desc{Addr: w.spare[0], Len: uint32(fl)})
	}
	copy(r.full[f.Payload:], m.out[:m.lens[0]])
	fl := f.Reply(r.full, m.lens[0])
	if fl == 0 {
		w.pool.Put(r.desc.Addr)
		w.stats.TxErrors.Add(1)
	}
	return fl
}

// submitExtra puts the extra reply datagrams on the tx ring; those the
// ring has no room for go back to the pool, counted.
func (w *xdpWorker) submitExtra() {
	if len(w.extra) == 0 {
		return
	}
	done := 0
	for done < len(w.extra) {
		// Twice at most: a reservation stops at the end of the ring.
		tx := w.sock.Tx.Reserve(len(w.extra) - done)
		copy(tx, w.extra[done:])
		w.sock.Tx.Submit(len(tx))
		if len(tx) == 0 {
			break
		}
		done += len(tx)
	}
	for _, d := range w.extra[done:] {
		w.pool.Put(d.Addr)
		w.stats.Drops[codec.ReasonNoFrame].Add(1)
	}
	w.sent += uint64(done)
	w.stats.Tx.Add(uint64(done))
	w.extra = w.extra[:0]
}

func (w *xdpWorker) kick() {
	if err := w.sock.KickTx(); err != nil {
		w.stats.TxErrors.Add(1)
	}
}

// complete takes sent frames back from the completion ring and refills the
// fill ring from the pool.
func (w *xdpWorker) complete() {
	w.completed += uint64(w.sock.Reclaim(w.pool))
	w.refill()
}

func (w *xdpWorker) refill() { w.filled += uint64(w.sock.Refill(w.pool)) }

// drain answers what is already in the rx ring and waits (bounded) for the
// kernel to send everything on the tx ring, so that every frame is home.
func (w *xdpWorker) drain() {
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		n := w.step()
		w.complete()
		if n == 0 && w.sock.Tx.Outstanding() == 0 && w.sock.Completion.Outstanding() == 0 {
			return
		}
		w.kick()
	}
}

// FrameAccount says where a worker's frames are: in its pool, or handed
// to the kernel (on the fill ring, in the kernel, on the rx ring) for
// receiving, or for sending (tx ring, completion ring). A frame in none of
// these places is a leak.
type FrameAccount struct {
	Queue                    int
	Total, Free, Rx, Sending int
}

// Balanced reports whether every frame is accounted for.
func (a FrameAccount) Balanced() bool { return a.Free+a.Rx+a.Sending == a.Total }

func (w *xdpWorker) account() FrameAccount {
	return FrameAccount{
		Queue: w.sock.Queue(), Total: w.pool.Total(), Free: w.pool.Free(),
		Rx: int(w.filled - w.received), Sending: int(w.sent - w.completed),
	}
}
