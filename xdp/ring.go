package xdp

import (
	"sync/atomic"
	"unsafe"
)

// Desc is one rx or tx descriptor: a frame's address in the UMEM, the length
// of the packet in it and options (struct xdp_desc).
type Desc struct {
	Addr    uint64
	Len     uint32
	Options uint32
}

// ring is the index state shared by the four ring kinds. The producer and
// consumer indices are free-running u32 counters in the shared mapping; the
// entry of index i is at i & mask. One side of each ring is ours and one is
// the kernel's: we cache the remote index and read it again only when the
// cached one says the batch cannot be served, so a batch reads it at most
// once.
type ring struct {
	producer *atomic.Uint32 // in the mapping
	consumer *atomic.Uint32 // in the mapping
	flags    *atomic.Uint32 // in the mapping (XDP_RING_NEED_WAKEUP)
	size     uint32
	mask     uint32

	local   uint32 // our own index: producer for fill/tx, consumer for rx/completion
	remote  uint32 // cached copy of the kernel's index
	pending uint32 // reserved or peeked entries not yet submitted or released
	corrupt bool   // the kernel's index moved impossibly far; see Err
}

func newRing(prod, cons, flags unsafe.Pointer, size uint32) ring {
	return ring{
		producer: (*atomic.Uint32)(prod),
		consumer: (*atomic.Uint32)(cons),
		flags:    (*atomic.Uint32)(flags),
		size:     size,
		mask:     size - 1,
	}
}

// needsWakeup reports whether the kernel asked to be woken up for this ring
// (XDP_RING_NEED_WAKEUP): a sendto for tx, a poll or recvfrom for fill.
func (r *ring) needsWakeup() bool { return r.flags.Load()&xdpRingNeedWakeup != 0 }

// reserve returns the start slot and count of up to n free entries for a
// producer ring, never wrapping past the end of the ring (a caller that wants
// more calls again after Submit).
func (r *ring) reserve(n int) (start uint32, got uint32) {
	if r.pending != 0 {
		panic("xdp: Reserve before the previous reservation was submitted")
	}
	want := clampCount(n, r.size)
	free := r.size - (r.local - r.remote)
	if free < want {
		r.remote = r.consumer.Load() // acquire: entries the kernel is done with
		free = r.size - (r.local - r.remote)
		if free > r.size { // the kernel consumed more than we produced
			r.corrupt = true
			return 0, 0
		}
	}
	start = r.local & r.mask
	got = min(want, free, r.size-start)
	r.pending = got
	return start, got
}

// submit publishes the first n reserved entries to the kernel.
func (r *ring) submit(n int) {
	if n < 0 || uint32(n) > r.pending {
		panic("xdp: Submit of more entries than were reserved")
	}
	r.local += uint32(n)
	r.pending = 0
	r.producer.Store(r.local) // release: the entries written before are visible
}

// peek returns the start slot and count of up to n filled entries of a
// consumer ring, never wrapping past the end of the ring.
func (r *ring) peek(n int) (start uint32, got uint32) {
	if r.pending != 0 {
		panic("xdp: Peek before the previous batch was released")
	}
	want := clampCount(n, r.size)
	avail := r.remote - r.local
	if avail < want {
		r.remote = r.producer.Load() // acquire: the entries are written
		avail = r.remote - r.local
		if avail > r.size {
			r.corrupt = true
			return 0, 0
		}
	}
	start = r.local & r.mask
	got = min(want, avail, r.size-start)
	r.pending = got
	return start, got
}

// release gives the first n peeked entries back to the kernel.
func (r *ring) release(n int) {
	if n < 0 || uint32(n) > r.pending {
		panic("xdp: Release of more entries than were peeked")
	}
	r.local += uint32(n)
	r.pending = 0
	r.consumer.Store(r.local) // release: we are done reading them
}

// outstanding is, for a producer ring, the entries submitted that the kernel
// has not consumed yet; for a consumer ring, the entries ready to be peeked.
// It reads the kernel's index.
func (r *ring) outstanding(producer bool) uint32 {
	if producer {
		return r.local - r.consumer.Load()
	}
	return r.producer.Load() - r.local
}

func clampCount(n int, size uint32) uint32 {
	if n <= 0 {
		return 0
	}
	if uint64(n) > uint64(size) {
		return size
	}
	return uint32(n)
}

// Ring is one of the four rings: its shared indices and a view of its
// entries. The entry type says the kind: AddrRing (fill, completion) holds
// frame addresses, DescRing (rx, tx) holds descriptors.
type Ring[T uint64 | Desc] struct {
	ring
	entries  []T
	producer bool // we produce (fill, tx) rather than consume (rx, completion)
}

// AddrRing is a fill ring (producer: frames given to the kernel to receive
// into) or a completion ring (consumer: frames the kernel has sent).
type AddrRing = Ring[uint64]

// DescRing is an rx ring (consumer: received packets) or a tx ring
// (producer: packets to send).
type DescRing = Ring[Desc]

// Reserve returns a view of up to n free entries of a producer ring (fill,
// tx) to write into, then publish with Submit. It may return fewer than n
// (ring full, or the batch reaches the end of the ring), and allocates
// nothing.
func (r *Ring[T]) Reserve(n int) []T {
	s, g := r.reserve(n)
	return r.entries[s : s+g : s+g]
}

// Submit publishes the first n entries of the last Reserve.
func (r *Ring[T]) Submit(n int) { r.submit(n) }

// Peek returns a view of up to n filled entries of a consumer ring (rx,
// completion), to be given back with Release once read.
func (r *Ring[T]) Peek(n int) []T {
	s, g := r.peek(n)
	return r.entries[s : s+g : s+g]
}

// Release returns the first n entries of the last Peek to the kernel.
func (r *Ring[T]) Release(n int) { r.release(n) }

// NeedsWakeup reports whether the kernel asked for a wake-up on this ring.
func (r *Ring[T]) NeedsWakeup() bool { return r.needsWakeup() }

// Outstanding counts entries in flight: submitted and not yet consumed by
// the kernel (producer rings), or ready and not yet peeked (consumer rings).
func (r *Ring[T]) Outstanding() int { return int(r.outstanding(r.producer)) }

// Size is the ring's number of entries.
func (r *Ring[T]) Size() int { return int(r.size) }
