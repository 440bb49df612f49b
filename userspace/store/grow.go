package store

import (
	"math"
	"runtime"
	"sync/atomic"
)

// Resizing the index. The index starts small (a slot per KiB of the
// limit) so that a store of large items keeps its memory for items; a
// store of small items doubles it as it fills, each time the items the
// slots allow are fewer than the segments could hold at the items'
// average size. When larger items take the place of small ones, the
// index halves again (back to its first size at the least) once the
// segments are full and few of its slots are used. The memory a larger
// table takes is taken from the segments first (the oldest are evicted),
// so that the index and the segments together stay within the limit,
// also while both tables exist; what a smaller one leaves goes to them.
//
// The entries move bucket by bucket, each under its stripe's lock, while
// reads and writes go on: a writer moves its key's two buckets first if
// they have not moved yet, and then uses the new table only; a reader
// looks in the table each of its buckets is in, and starts again if one
// moved meanwhile (indexState.moved).

// growLoad is the share of slots in use past which the store considers
// growing the index, as a fraction of 1024.
const growLoad = 600

// growSlack: the store grows the index only if the segments, once they
// gave it the memory, would still hold more items than growSlack/1024 of
// the slots the index has now.
const growSlack = 870

// shrinkLoad: an index found with fewer than shrinkLoad/1024 of its
// slots in use when a full store evicts a segment halves, so that the
// segments get its memory. Halved, it is less than twice as loaded: far
// from growLoad, so that it does not double again on the next items.
const shrinkLoad = 256

// lock takes the locks of k's buckets and sets k's table (the one writes
// go to) and buckets in it; while the index is resized it first moves
// the key's buckets into the new table.
func (s *Store) lock(k *hkey) {
	s.x.lockStripes(k.h)
	st := s.x.state.Load()
	if st.old != nil {
		o1, o2 := st.old.buckets(k.h)
		s.moveBucket(st, o1)
		s.moveBucket(st, o2)
	}
	k.t = st.t
	k.b1, k.b2 = st.t.buckets(k.h)
}

// newItem counts an item added under k and, past the load that calls for
// it, asks for the index to be considered for growing (by the next write,
// before it takes its locks: startResize).
func (s *Store) newItem(k hkey) {
	n := s.items.Add(1)
	if n > int64(k.t.nslots())*growLoad/1024 && s.total.Load() >= s.growCheck.Load() && !s.wantResize.Load() {
		s.wantResize.Store(true)
	}
}

// segmentEvicted is told by evictOne, which makes room in full segments:
// an index with fewer than shrinkLoad/1024 of its slots in use, larger
// than it started, asks to be halved (by the next write: startResize).
func (s *Store) segmentEvicted() {
	st := s.x.state.Load()
	if st.old == nil && st.t.bits > s.x.minBits && s.items.Load() < int64(st.t.nslots())*shrinkLoad/1024 && !s.wantResize.Load() {
		s.wantResize.Store(true)
	}
}

// inlineGrowSlots: a table up to this many slots is resized in the write
// that finds it asked for (under a millisecond), so that a store filled
// fast does not outrun it; a larger one in a goroutine of its own, with
// the slots past growLoad to fill meanwhile.
const inlineGrowSlots = 1 << 13

// startResize resizes the index if a write or an eviction asked for it;
// the caller holds no lock.
func (s *Store) startResize() {
	if !s.wantResize.Load() || !s.resizing.CompareAndSwap(false, true) {
		return
	}
	s.wantResize.Store(false)
	if s.x.state.Load().t.nslots() <= inlineGrowSlots {
		s.resize()
	} else {
		go s.resize()
	}
}

// fullLoad is the share of slots in use (of 1024) from which full bucket
// pairs start evicting items for slots.
const fullLoad = 700

// awaitGrow: a write that finds the table at fullLoad while it is about
// to grow (the goroutine that grows it has not run yet) yields until the
// new table is there, for a millisecond or so at most, rather than evict
// an item for a slot: a busy machine (or the race detector) can leave
// that goroutine waiting while writers fill what is left of the table.
func (s *Store) awaitGrow() {
	st := s.x.state.Load()
	if st.old != nil || !s.resizing.Load() || s.items.Load() < int64(st.t.nslots())*fullLoad/1024 {
		return
	}
	for i := 0; i < 1000 && s.resizing.Load() && s.x.state.Load() == st; i++ {
		runtime.Gosched()
	}
}

// resize halves the index if few of its slots are used, or doubles it if
// that lets the store hold more items: if the segments, with the memory
// the larger table takes, would hold more items than the table has slots
// now. If neither, it looks again once half a table of new items has
// been stored.
func (s *Store) resize() {
	defer s.resizing.Store(false)
	cur := s.x.state.Load().t
	items, size := s.items.Load(), s.itemSize()
	switch {
	case cur.bits > s.x.minBits && items < int64(cur.nslots())*shrinkLoad/1024:
		s.rebuild(cur, cur.bits-1)
	case items <= int64(cur.nslots())*growLoad/1024:
		// Asked for by a write to the table this one grew out of.
	case cur.bits >= s.x.maxBits ||
		(s.limit-tableBytes(cur.bits+1))/size <= int64(cur.nslots())*growSlack/1024:
		s.growCheck.Store(s.total.Load() + int64(cur.nslots()/2))
	default:
		s.rebuild(cur, cur.bits+1)
	}
}

// itemSize is the size to plan the index for: the average of the items
// held, or of the items written last if smaller (small items coming in
// place of larger ones: the segments soon hold more of them than the
// average of those held says).
func (s *Store) itemSize() int64 {
	avg := s.bytes.Load() / max(s.items.Load(), 1)
	if r := s.recentSize.Load(); r > 0 {
		avg = min(avg, r)
	}
	return max(avg, 1)
}

// sizeWindowBits: the store samples the average size of the items
// written every 1 MiB of them (a thousand 1 KiB items, some 13,000 of
// 16 bytes under 32-byte keys).
const sizeWindowBits = 20

// sampleSize is called by the write that takes written bytes past a
// window's end: the average size of the items written in that window.
func (s *Store) sampleSize(written int64) {
	total := s.total.Load()
	t0, w0 := s.sizeT.Swap(total), s.sizeW.Swap(written)
	if total > t0 {
		s.recentSize.Store((written - w0) / (total - t0))
	}
}

// rebuild moves the index from table cur into a new one of 2^next
// buckets, while reads and writes go on; the caller is the one resize.
func (s *Store) rebuild(cur *table, next uint) {
	t, err := newTable(next)
	if err != nil {
		s.growCheck.Store(math.MaxInt64)
		return
	}
	// Room for both tables: the segments' share goes down at once, and
	// the oldest segments go before any entry moves. Writes use the new
	// table from now on, so that a full one does not evict for slots
	// while that runs (they touch a few of its pages meanwhile).
	s.sg.setLimit(s.segmentsFor(tableBytes(cur.bits) + tableBytes(next)))
	s.maps.add(t.mem)
	gs := &indexState{t: t, old: cur, moved: make([]atomic.Uint64, (1<<cur.bits+63)/64)}
	s.x.state.Store(gs)
	for i := 0; i < 2*s.sg.n && s.sg.over() > 0; i++ {
		if !s.evictOne(true) {
			break
		}
	}
	for b := range uint64(1) << cur.bits {
		a := b >> (cur.bits - s.x.stripeBits)
		s.x.locks[a].Lock()
		s.moveBucket(gs, b)
		s.x.locks[a].Unlock()
	}
	s.x.state.Store(&indexState{t: t})
	if next > cur.bits {
		s.grows.Add(1)
	} else {
		s.shrinks.Add(1)
	}
	// A reader that looked at the old table before its last bucket moved
	// finds, when it looks again, that its bucket moved: the old pages
	// can go, read as empty from now on. (One such reader late enough
	// to record a read in them would take a page back: the next resize
	// gives those back too.)
	s.retired = append(s.retired, cur)
	for _, r := range s.retired {
		dropPages(r.mem)
	}
	s.sg.setLimit(s.segmentsFor(tableBytes(next)))
	s.growCheck.Store(0)
}

// segmentsFor is how many segments fit in the limit beside index bytes.
func (s *Store) segmentsFor(index int64) int {
	return int(min(max(s.limit-index, 0)/s.sg.size, int64(s.sg.n)))
}

// moveBucket moves bucket b of the old table into the new one, unless it
// has moved; the caller holds b's stripe. Each entry goes to one of its
// key's buckets in the new table under the same stripe (growing: the two
// b becomes, or for a key whose two old buckets were neighbours, the two
// its neighbour becomes; shrinking: the one b and its neighbour become,
// or that one's neighbour); when they are full, the item in the oldest
// segment among theirs and the entry's is evicted, as a new key's would
// be (Stats.SlotEvictions).
func (s *Store) moveBucket(st *indexState, b uint64) {
	if st.isMoved(b) {
		return
	}
	old, t := st.old, st.t
	sh := t.bits - s.x.stripeBits
	stripe := b >> (old.bits - s.x.stripeBits)
	for i := b * bucketSlots; i < (b+1)*bucketSlots; i++ {
		e := old.load(i)
		if e == 0 {
			continue
		}
		off := entOff(e)
		h := readHeader(s.mem(off, hdrSize))
		n1, n2 := t.buckets(s.x.hash(s.keyAt(off, h)).h)
		// Only buckets under b's stripe: a key's other new bucket may be
		// another stripe's, and then its first is.
		if n1>>sh != stripe {
			n1 = n2
		} else if n2>>sh != stripe {
			n2 = n1
		}
		to := freeSlot(t, n1, n2)
		if to == noSlot {
			// Full: the item in the oldest segment goes, this one or
			// one already there (a halving can fill a bucket).
			victim, born := s.oldestIn(t, n1, n2)
			if s.sg.born[off/s.sg.size].Load() <= born {
				s.evictForSlot(old, i, s.now())
				continue
			}
			s.evictForSlot(t, victim, s.now())
			to = victim
		}
		t.storeAccess(to, old.loadAccess(i))
		t.store(to, e)
	}
	st.setMoved(b)
	for i := b * bucketSlots; i < (b+1)*bucketSlots; i++ {
		old.store(i, 0)
	}
}

// lookIn looks key up once without a lock in the tables its buckets are
// in, in the index st (as the read found it; see readOnce); again asks to
// start over. An entry found was the key's when it was read; a miss is
// one only if no bucket of the key moved meanwhile: if the index started
// or ended resizing, or one of the key's buckets moved, the read starts
// over. It sets k's table and buckets to where it looked last.
func (s *Store) lookIn(st *indexState, k *hkey, key []byte, dst []byte, mode readMode) (slot uint64, e uint64, h header, ok bool, grow int, again bool) {
	if st.old == nil {
		k.t = st.t
		k.b1, k.b2 = st.t.buckets(k.h)
		slot, e, h, ok, grow, again = s.readOnce(*k, key, dst, mode)
		if !ok && !again && s.x.state.Load() != st {
			again = true
		}
		return slot, e, h, ok, grow, again
	}
	o1, o2 := st.old.buckets(k.h)
	m1, m2 := st.isMoved(o1), st.isMoved(o2)
	if m1 || m2 {
		k.t = st.t
		k.b1, k.b2 = st.t.buckets(k.h)
		slot, e, h, ok, grow, again = s.readOnce(*k, key, dst, mode)
	}
	if !ok && !again && grow == 0 && !(m1 && m2) {
		k.t, k.b1, k.b2 = st.old, o1, o2
		slot, e, h, ok, grow, again = s.readOnce(*k, key, dst, mode)
	}
	if !ok && !again && (s.x.state.Load() != st || st.isMoved(o1) != m1 || st.isMoved(o2) != m2) {
		again = true
	}
	return slot, e, h, ok, grow, again
}
