package store

import (
	"bytes"
	"fmt"
	"math"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of Config.
const (
	DefaultMemoryLimit = 256 << 20
	DefaultMaxItemSize = 1 << 20
)

// ItemOverhead is what an item takes in the store's memory besides its
// key and value: its header and padding, and a share of the index at the
// load a store of small items reaches. (The index, about a ninth of
// Config.MemoryLimit, is set aside whatever the items.)
const ItemOverhead = 48

// Config configures a Store.
type Config struct {
	// MemoryLimit is the memory the store takes, in bytes: its index and
	// its segments, which hold the items (default 256 MiB; at least 64 KiB).
	MemoryLimit int64
	// MaxItemSize is the largest value Set accepts (default 1 MiB; at most
	// a sixteenth of the segments' memory).
	MaxItemSize int
	// Now is the clock; tests inject theirs. The default is a clock shared
	// by all stores that ticks every 10 ms.
	Now func() time.Time
}

// Mode selects what Set does.
type Mode uint8

// Modes of Set.
const (
	ModeSet     Mode = iota // store unconditionally
	ModeAdd                 // store only if the key is missing
	ModeReplace             // store only if the key exists
	ModeAppend              // add the value after the existing one
	ModePrepend             // add the value before the existing one
)

// Result is the outcome of a store operation.
type Result uint8

// Results.
const (
	Stored Result = iota
	NotStored
	Exists
	NotFound
	Deleted
	TooLarge
	NonNumeric
)

var resultNames = [...]string{
	Stored:     "STORED",
	NotStored:  "NOT_STORED",
	Exists:     "EXISTS",
	NotFound:   "NOT_FOUND",
	Deleted:    "DELETED",
	TooLarge:   "TOO_LARGE",
	NonNumeric: "NON_NUMERIC",
}

func (r Result) String() string {
	if int(r) < len(resultNames) {
		return resultNames[r]
	}
	return "Result(" + strconv.FormatUint(uint64(r), 10) + ")"
}

// Meta describes an item. LastAccess and Fetched are as they were before the
// call that returns them (memcached's meta flags l and h).
type Meta struct {
	Flags      uint32
	CAS        uint64
	Exptime    int64 // absolute unix seconds, 0 = never
	LastAccess int64 // unix seconds
	Fetched    bool  // fetched since stored
	Size       int   // length of the value
	// Of memcached's meta protocol: Stale (invalidated by md I, or stored
	// by ms I with an older CAS), Won (a client has been told to recache
	// the item: Claim), KeyBinary (the key was sent in base64).
	Stale, Won, KeyBinary bool
}

// SetOptions are the meta protocol's extras to SetMeta.
type SetOptions struct {
	// KeyBinary marks the key as sent in base64 (mg k echoes it so).
	KeyBinary bool
	// Invalidate (ms I): a CAS older than the item's stores the value as
	// a stale item that keeps the old exptime (and a win already given),
	// instead of failing with Exists.
	Invalidate bool
	// Won creates the item already won (mg N: the client that vivifies a
	// key is the one told to fill it).
	Won bool
}

// Vivify makes Incr create a missing key with Initial and Exptime.
type Vivify struct {
	Initial uint64
	Exptime int64
}

// Stats are the store's gauges and counters.
type Stats struct {
	Items         int64 // items held, expired ones not yet removed included
	Bytes         int64 // memory the items held take: header, key, value
	LimitBytes    int64 // Config.MemoryLimit: the store takes no more
	ArenaBytes    int64 // of it, the segments that hold items (the rest is the index)
	Evictions     int64 // items removed to stay under the limit
	Expired       int64 // expired or flushed items removed when found
	TotalItems    int64 // items stored since start
	Flushed       int64 // FlushAll calls
	IndexBytes    int64 // the index's table: the limit less the arena's share
	IndexSlots    int64 // the items the table has room for
	IndexResizing bool  // entries are moving into a table of another size
	IndexGrows    int64 // times the index doubled
	IndexShrinks  int64 // times the index halved
	// SlotEvictions: of Evictions, those of an item whose index slot a
	// new key needed (its two buckets full) rather than its segment.
	SlotEvictions int64
}

// flush is the state FlushAll leaves: items with a CAS up to cas, or stored
// at or before past (unix ns), are invisible; so are, from at on, items
// stored at or before at (a pending delayed flush; noFlush if none).
type flush struct {
	cas  uint64
	past int64
	at   int64
}

const noFlush = math.MaxInt64

// Mirror keeps a copy of the store's items coherent with it: the XDP
// program's item map (bpf.Items). Put is called with every new version of
// an item (set, add, replace, append, prepend, cas, incr, decr, touch),
// Delete with every removal (delete, expiry found, flush found, eviction),
// each under the key's lock (so in the store's order for that key) and
// before the change is visible to other calls of the store or acknowledged
// to a client. Flush is called by FlushAll with the state it leaves (see
// the flush type), before FlushAll returns. A Mirror must not call the
// store.
type Mirror interface {
	Put(key string, value []byte, flags uint32, cas uint64, exptime, storedNs int64)
	Delete(key string)
	Flush(cas uint64, past, at int64) error
}

// mirrorBox lets an interface sit in an atomic.Pointer.
type mirrorBox struct{ m Mirror }

// Store is a memory-bounded item store, safe for concurrent use.
type Store struct {
	maps    *mappings // the index's tables and the segments: outside the Go heap
	x       index
	sg      segments
	mirror  atomic.Pointer[mirrorBox]
	now     func() time.Time
	maxItem int
	limit   int64
	cas     atomic.Uint64
	flush   atomic.Pointer[flush]
	flushMu sync.Mutex // orders FlushAll calls

	items     atomic.Int64
	bytes     atomic.Int64
	written   atomic.Int64 // bytes of items written since start
	evictions atomic.Int64
	expired   atomic.Int64
	total     atomic.Int64
	flushed   atomic.Int64

	// growCheck is the count of items stored (total) before which a
	// new item does not make the store consider growing its index again;
	// wantResize asks for the index to be resized, and resizing is set
	// while it is (Store.resize).
	growCheck  atomic.Int64
	resizing   atomic.Bool
	wantResize atomic.Bool
	grows      atomic.Int64
	shrinks    atomic.Int64
	// recentSize is the average size of the items written in the last
	// window of 2^sizeWindowBits bytes (sizeT and sizeW: total and
	// written when that window began; Store.sampleSize).
	recentSize   atomic.Int64
	sizeT, sizeW atomic.Int64
	// slotEvictions are the evictions of an item to free an index slot
	// (both of a new key's buckets full), not a segment.
	slotEvictions atomic.Int64
	retired       []*table // tables resized out of (resize's, while resizing)
}

// Sizes of the store's parts.
const (
	minMemoryLimit = 64 << 10
	minSegment     = pageSize
	maxSegment     = 1 << 20
	pageSize       = 4096
	// maxArena is what an entry's 40-bit offset reaches.
	maxArena = itemAlign << 40
)

// layout is how New divides Config.MemoryLimit.
type layout struct {
	bits, maxBits uint // log2 of the index's first and largest buckets
	segSize       int64
	segs          int
	maxItem       int
}

func planLayout(limit int64, maxItem int) layout {
	var l layout
	l.bits = bucketBits(limit / startBytesPerSlot)
	l.maxBits = max(l.bits, bucketBits(limit/minBytesPerSlot))
	arena := min(limit-tableBytes(l.bits), maxArena)
	seg := int64(maxSegment)
	for seg > minSegment && seg > arena/16 {
		seg /= 2
	}
	l.maxItem = int(min(int64(maxItem), arena/16-hdrSize-maxKeyLen, 1<<31-1))
	l.segSize = max(seg, roundUp(itemSize(maxKeyLen, l.maxItem), pageSize))
	l.segs = int(arena / l.segSize)
	return l
}

// MaxItemSizeFor is the largest Config.MaxItemSize a store of
// memoryLimit bytes takes: a sixteenth of its segments, less an item's
// header and longest key (a smaller one is lowered to it).
func MaxItemSizeFor(memoryLimit int64) int {
	return planLayout(max(memoryLimit, minMemoryLimit), math.MaxInt32).maxItem
}

func roundUp(n, to int64) int64 { return (n + to - 1) / to * to }

// New returns an empty store. Its memory is mapped at once and taken
// (in RSS) as items are written; it is returned when the store is
// garbage.
func New(cfg Config) *Store {
	if cfg.MemoryLimit <= 0 {
		cfg.MemoryLimit = DefaultMemoryLimit
	}
	cfg.MemoryLimit = max(cfg.MemoryLimit, minMemoryLimit)
	if cfg.MaxItemSize <= 0 {
		cfg.MaxItemSize = DefaultMaxItemSize
	}
	if cfg.Now == nil {
		cfg.Now = coarseNow
	}
	l := planLayout(cfg.MemoryLimit, cfg.MaxItemSize)
	region, err := mapRegion(int(int64(l.segs) * l.segSize))
	if err != nil {
		panic(fmt.Sprintf("store: map %d bytes: %v", int64(l.segs)*l.segSize, err))
	}
	t, err := newTable(l.bits)
	if err != nil {
		panic(fmt.Sprintf("store: map %d bytes: %v", tableBytes(l.bits), err))
	}
	s := &Store{now: cfg.Now, maxItem: l.maxItem, limit: cfg.MemoryLimit, maps: &mappings{}}
	s.maps.add(region)
	s.maps.add(t.mem)
	s.x.init(t, l.maxBits)
	s.sg.init(region, l.segSize, l.segs)
	runtime.AddCleanup(s, (*mappings).unmap, s.maps)
	return s
}

// mappings are the memory a store mapped: its segments and every index
// table it had (one it grew out of gave its pages back, but a reader may
// still look at it: it stays mapped, reading as empty, until the store is
// garbage).
type mappings struct {
	mu sync.Mutex
	m  [][]byte
}

func (ms *mappings) add(b []byte) {
	ms.mu.Lock()
	ms.m = append(ms.m, b)
	ms.mu.Unlock()
}

func (ms *mappings) unmap() {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	for _, b := range ms.m {
		unmapRegion(b)
	}
	ms.m = nil
}

// SetMirror attaches m (nil detaches): from now on every change is told
// to it. Items stored before are not: the mirror starts empty and holds a
// subset of the store. The flush state in force is told at once.
func (s *Store) SetMirror(m Mirror) error {
	if m == nil {
		s.mirror.Store(nil)
		return nil
	}
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	if f := s.flush.Load(); f != nil {
		if err := m.Flush(f.cas, f.past, f.at); err != nil {
			return err
		}
	}
	s.mirror.Store(&mirrorBox{m})
	return nil
}

// MaxItemSize is the largest value Set accepts.
func (s *Store) MaxItemSize() int { return s.maxItem }

// live reports whether an item with header h is visible at now.
func (s *Store) live(h header, now time.Time) bool {
	if h.exptime != 0 && int64(h.exptime) <= now.Unix() {
		return false
	}
	if f := s.flush.Load(); f != nil {
		if h.cas <= f.cas || h.storedNs <= f.past {
			return false
		}
		if h.storedNs <= f.at && now.UnixNano() >= f.at {
			return false
		}
	}
	return true
}

// mem returns the arena's bytes [off, off+n).
func (s *Store) mem(off, n int64) []byte { return s.sg.mem[off : off+n : off+n] }

// keyAt is the key of the item at off.
func (s *Store) keyAt(off int64, h header) []byte { return s.mem(off+hdrSize, int64(h.klen)) }

// valueAt is the value of the item at off.
func (s *Store) valueAt(off int64, h header) []byte {
	return s.mem(off+hdrSize+int64(h.klen), int64(h.vlen))
}

func metaOf(h header, e uint64, access uint32) Meta {
	return Meta{
		Flags:      h.flags,
		CAS:        h.cas,
		Exptime:    int64(h.exptime),
		LastAccess: int64(access),
		Fetched:    e&entFetched != 0,
		Size:       int(h.vlen),
		Stale:      h.marks&markStale != 0,
		Won:        h.marks&markWon != 0,
		KeyBinary:  h.marks&markKeyBinary != 0,
	}
}

// readTries is how many times a read without a lock starts again when
// the segment it copied from changed meanwhile, before it takes the
// key's lock (a variable for tests). Reading without a lock trusts the
// copy when the segment's generation, loaded atomically after it, did not
// change: sound where loads are not reordered with later loads (x86's
// total store order). Elsewhere (arm64, ppc64le, ...) the copy's plain
// loads may be satisfied after that atomic load, so every read takes the
// key's lock: 0 tries.
var readTries = lockFreeReadTries(runtime.GOARCH)

func lockFreeReadTries(arch string) int {
	if arch == "amd64" || arch == "386" {
		return 4
	}
	return 0
}

// readMode says what read does with a value found.
type readMode uint8

const (
	readAppend readMode = iota // append it to dst
	readInto                   // copy it into dst[:cap(dst)] if it fits
	readNone                   // copy nothing
)

// read finds key's live item without a lock, copies its value as mode
// says, and (mark) records the read. It loads the entry, copies, then
// checks that the item's segment was not reused meanwhile (its
// generation), starting again if it was: an entry and the item it points
// to are written before the entry is published and never change after.
// n is the value's length.
func (s *Store) read(key []byte, dst []byte, mode readMode, mark bool) (out []byte, n int, m Meta, ok bool) {
	if len(key) > maxKeyLen {
		return dst, 0, Meta{}, false
	}
	now := s.now()
	k := s.x.hash(key)
	for range readTries {
		slot, e, h, ok, grow, again := s.lookIn(s.x.state.Load(), &k, key, dst, mode)
		if grow > 0 {
			dst = slices.Grow(dst, grow)
		}
		if again {
			continue
		}
		if !ok {
			return dst, 0, Meta{}, false
		}
		return s.found(k, key, slot, e, h, dst, mode, mark, now)
	}
	// The segments keep changing under this read: take the key's lock,
	// under which its item's segment stays.
	s.lock(&k)
	slot, e := s.findLocked(k, key)
	if slot == noSlot {
		s.x.unlock(k)
		return dst, 0, Meta{}, false
	}
	off := entOff(e)
	h := readHeader(s.mem(off, hdrSize))
	switch v := s.valueAt(off, h); {
	case mode == readAppend:
		out = append(dst, v...)
	case mode == readInto && len(v) <= cap(dst):
		copy(dst[:len(v)], v)
	}
	s.x.unlock(k)
	if out != nil {
		dst = out[:len(dst)]
	}
	return s.found(k, key, slot, e, h, dst, mode, mark, now)
}

// found ends a read that found the item e in slot with header h (dst
// holds a copy of its value past len(dst) if mode asked for one).
func (s *Store) found(k hkey, key []byte, slot uint64, e uint64, h header, dst []byte, mode readMode, mark bool, now time.Time) ([]byte, int, Meta, bool) {
	if !s.live(h, now) {
		s.removeDead(k, key, e)
		return dst, 0, Meta{}, false
	}
	n := int(h.vlen)
	m := metaOf(h, e, k.t.loadAccess(slot))
	if mark && (mode != readInto || n <= cap(dst)) {
		k.t.markRead(slot, e)
		k.t.touchAccess(slot, uint32(now.Unix()))
	}
	if mode == readAppend {
		dst = dst[:len(dst)+n]
	}
	return dst, n, m, true
}

// readOnce looks key up once without a lock, copying its value past
// len(dst) (mode readAppend, growing dst if it must) or into dst[:n]
// (readInto, if it fits); again asks to start over.
func (s *Store) readOnce(k hkey, key []byte, dst []byte, mode readMode) (slot uint64, e uint64, h header, ok bool, grow int, again bool) {
	mem := s.sg.mem
	for _, b := range [2]uint64{k.b1, k.b2} {
		for i := b * bucketSlots; i < (b+1)*bucketSlots; i++ {
			e := k.t.load(i)
			if e == 0 || entTag(e) != k.tag {
				continue
			}
			off := entOff(e)
			seg := off / s.sg.size
			if seg >= int64(s.sg.n) {
				continue // never written so; ignored rather than trusted
			}
			gen := &s.sg.gen[seg]
			g := gen.Load()
			if g&entGenMask != entGen(e) {
				return 0, 0, header{}, false, 0, true // its segment is being reused
			}
			end := (seg + 1) * s.sg.size
			h := readHeader(mem[off : off+hdrSize])
			kend := off + hdrSize + int64(h.klen)
			vend := kend + int64(h.vlen)
			if vend > end || !bytes.Equal(mem[off+hdrSize:kend], key) {
				if gen.Load() != g {
					return 0, 0, header{}, false, 0, true
				}
				continue // another key with the same tag
			}
			switch v := mem[kend:vend:vend]; {
			case mode == readAppend:
				if cap(dst)-len(dst) < len(v) {
					return 0, 0, header{}, false, len(v), true // grown by the caller
				}
				copy(dst[len(dst):len(dst)+len(v)], v)
			case mode == readInto && len(v) <= cap(dst):
				copy(dst[:len(v)], v)
			}
			if gen.Load() != g {
				return 0, 0, header{}, false, 0, true
			}
			return i, e, h, true, 0, false
		}
	}
	return 0, 0, header{}, false, 0, false
}

// findLocked returns key's slot and entry (slot -1: none); the caller
// holds the key's locks, under which every entry of its buckets points
// to an item that stays.
func (s *Store) findLocked(k hkey, key []byte) (slot uint64, e uint64) {
	for _, b := range [2]uint64{k.b1, k.b2} {
		for i := b * bucketSlots; i < (b+1)*bucketSlots; i++ {
			e := k.t.load(i)
			if e == 0 || entTag(e) != k.tag {
				continue
			}
			off := entOff(e)
			if klen := s.mem(off, hdrSize)[28]; int(klen) == len(key) && bytes.Equal(s.mem(off+hdrSize, int64(klen)), key) {
				return i, e
			}
		}
	}
	return noSlot, 0
}

const noSlot = ^uint64(0)

// current is a key's item as a writer finds it under the key's locks.
type current struct {
	t     *table // the table slot is in
	slot  uint64 // noSlot: none
	e     uint64
	off   int64
	h     header
	found bool // present and live
}

// lookupLocked finds key's item; a dead one found is removed (counted as
// expired) and reported as missing.
func (s *Store) lookupLocked(k hkey, key []byte, now time.Time) current {
	slot, e := s.findLocked(k, key)
	if slot == noSlot {
		return current{slot: noSlot}
	}
	c := current{t: k.t, slot: slot, e: e, off: entOff(e)}
	c.h = readHeader(s.mem(c.off, hdrSize))
	if !s.live(c.h, now) {
		s.expired.Add(1)
		s.removeLocked(k.t, slot, c.off, c.h)
		return current{slot: noSlot}
	}
	c.found = true
	return c
}

// removeLocked empties slot of t, which holds the item at off, and tells
// the mirror.
func (s *Store) removeLocked(t *table, slot uint64, off int64, h header) {
	t.store(slot, 0)
	s.items.Add(-1)
	s.bytes.Add(-h.size())
	if b := s.mirror.Load(); b != nil {
		b.m.Delete(string(s.keyAt(off, h)))
	}
}

// removeDead removes the dead item e of key if key still maps to it.
func (s *Store) removeDead(k hkey, key []byte, e uint64) {
	s.lock(&k)
	if slot, cur := s.findLocked(k, key); slot != noSlot && sameItem(cur, e) {
		s.expired.Add(1)
		off := entOff(cur)
		s.removeLocked(k.t, slot, off, readHeader(s.mem(off, hdrSize)))
	}
	s.x.unlock(k)
}

// sameItem reports whether two entries point to the same item (the read
// counts and fetched flag aside).
func sameItem(a, b uint64) bool {
	const item = entTagMask<<entTagSh | entGenMask<<entGenSh | entLocMask
	return a&item == b&item
}

// freeSlot is an empty slot of the emptier of buckets b1 and b2 of t
// (noSlot: both are full): two choices, the less loaded taken, keep the
// buckets even, so that few fill while the index has room.
func freeSlot(t *table, b1, b2 uint64) uint64 {
	s1, n1 := firstFree(t, b1)
	s2, n2 := firstFree(t, b2)
	if n2 > n1 {
		return s2
	}
	return s1
}

// firstFree is bucket b's first empty slot (noSlot: none) and how many
// are empty.
func firstFree(t *table, b uint64) (slot uint64, n int) {
	slot = noSlot
	for i := b * bucketSlots; i < (b+1)*bucketSlots; i++ {
		if t.load(i) == 0 {
			if n == 0 {
				slot = i
			}
			n++
		}
	}
	return slot, n
}

// freeSlotLocked returns an empty slot of one of the key's buckets. When
// both are full it empties the one whose item is in the oldest segment,
// counted as an eviction (or as expired if it was dead).
func (s *Store) freeSlotLocked(k hkey, now time.Time) uint64 {
	if i := freeSlot(k.t, k.b1, k.b2); i != noSlot {
		return i
	}
	victim, _ := s.oldestIn(k.t, k.b1, k.b2)
	s.evictForSlot(k.t, victim, now)
	return victim
}

// oldestIn is the slot of buckets b1 and b2 (full) whose item is in the
// oldest segment, and that segment's birth.
func (s *Store) oldestIn(t *table, b1, b2 uint64) (victim, born uint64) {
	victim, born = noSlot, uint64(math.MaxUint64)
	for _, b := range [2]uint64{b1, b2} {
		for i := b * bucketSlots; i < (b+1)*bucketSlots; i++ {
			if age := s.sg.born[entOff(t.load(i))/s.sg.size].Load(); age < born {
				victim, born = i, age
			}
		}
	}
	return victim, born
}

// evictForSlot removes the item of slot i of t to free the slot, counted
// as an eviction for a slot (or as expired, if it was dead).
func (s *Store) evictForSlot(t *table, i uint64, now time.Time) {
	off := entOff(t.load(i))
	h := readHeader(s.mem(off, hdrSize))
	if s.live(h, now) {
		s.evictions.Add(1)
		s.slotEvictions.Add(1)
	} else {
		s.expired.Add(1)
	}
	s.removeLocked(t, i, off, h)
}

// item is a new item about to be written: its header, and its value in
// up to two parts (append and prepend join two).
type item struct {
	h      header
	v1, v2 []byte
	access uint32
	bits   uint64 // fetched flag and read count to keep
}

// writeLocked writes it under key in a new place and publishes it,
// replacing c's item if there is one. ok false: no room without an
// eviction first; the caller unlocks, evicts and starts over. It gives
// the item its CAS unless it has one.
func (s *Store) writeLocked(k hkey, key []byte, c current, it *item, now time.Time) bool {
	it.h.klen = uint8(len(key))
	it.h.vlen = uint32(len(it.v1) + len(it.v2))
	size := it.h.size()
	off, ok := s.sg.alloc(size, false)
	if !ok {
		return false
	}
	if it.h.cas == 0 {
		it.h.cas = s.cas.Add(1)
	}
	b := s.mem(off, size)
	writeHeader(b, it.h)
	p := hdrSize + copy(b[hdrSize:], key)
	p += copy(b[p:], it.v1)
	copy(b[p:], it.v2)
	slot := c.slot
	if slot == noSlot {
		slot = s.freeSlotLocked(k, now)
		s.newItem(k)
	} else {
		s.bytes.Add(-c.h.size())
	}
	s.bytes.Add(size)
	if w := s.written.Add(size); w>>sizeWindowBits != (w-size)>>sizeWindowBits {
		s.sampleSize(w)
	}
	if m := s.mirror.Load(); m != nil {
		if it.h.marks&(markStale|markWon) != 0 {
			// A stale or won item is answered with X, W or Z: never
			// from the mirror's copy.
			m.m.Delete(string(key))
		} else {
			m.m.Put(string(key), s.valueAt(off, it.h), it.h.flags, it.h.cas, int64(it.h.exptime), it.h.storedNs)
		}
	}
	k.t.storeAccess(slot, it.access)
	k.t.store(slot, makeEntry(k.tag, s.sg.gen[off/s.sg.size].Load(), off)|it.bits)
	s.sg.done(off)
	return true
}

// makeRoom resizes the index if a write or an eviction asked for it,
// and evicts the oldest segment when no more than the reserve is free,
// before a write takes its key's lock.
func (s *Store) makeRoom() {
	s.startResize()
	s.awaitGrow()
	if s.sg.nFree.Load() <= reserve {
		s.evictOne(false)
	}
}

// writeTries bounds a write's evictions: past them it fails (NotStored),
// which only a store whose every segment is pinned by writes in flight
// could see.
const writeTries = 64

// evictOne evicts the oldest sealed segment, unless another eviction
// made room meanwhile (force: even then). Its live items read at least twice since written
// (or last moved) move to the head, as long as they take at most half a
// segment; the rest are removed. It reports false when there was nothing
// to evict.
func (s *Store) evictOne(force bool) bool {
	sg := &s.sg
	sg.evictMu.Lock()
	defer sg.evictMu.Unlock()
	if !force && sg.nFree.Load() > reserve {
		return true
	}
	seg := sg.oldest()
	if seg < 0 {
		return false
	}
	sg.waitWrites(seg)
	now := s.now()
	base := int64(seg) * sg.size
	end := base + sg.used[seg]
	budget := sg.size / 2
	for off := base; off < end; {
		h := readHeader(s.mem(off, hdrSize))
		size := h.size()
		key := s.keyAt(off, h)
		k := s.x.hash(key)
		s.lock(&k)
		if slot, e := s.findLocked(k, key); slot != noSlot && entOff(e) == off {
			live := s.live(h, now)
			if !live || entReadCount(e) < 2 || size > budget || !s.moveLocked(slot, e, k, off, size) {
				if live {
					s.evictions.Add(1)
				} else {
					s.expired.Add(1)
				}
				s.removeLocked(k.t, slot, off, h)
			} else {
				budget -= size
			}
		}
		s.x.unlock(k)
		off += size
	}
	sg.release(seg)
	s.segmentEvicted()
	return true
}

// moveLocked copies the item at off to the head and points slot (which
// holds e) to the copy, whose read count starts again; false if there is
// no room.
func (s *Store) moveLocked(slot, e uint64, k hkey, off, size int64) bool {
	to, ok := s.sg.alloc(size, true)
	if !ok {
		return false
	}
	copy(s.mem(to, size), s.mem(off, size))
	ne := makeEntry(k.tag, s.sg.gen[to/s.sg.size].Load(), to)
	for !k.t.cas(slot, e, ne|e&entFetched) {
		e = k.t.load(slot) // a reader marked it meanwhile
	}
	s.sg.done(to)
	return true
}

// Get appends the value of key to dst, and marks the item fetched. It
// allocates nothing when cap(dst) suffices.
func (s *Store) Get(key []byte, dst []byte) (value []byte, m Meta, ok bool) {
	value, _, m, ok = s.read(key, dst, readAppend, true)
	runtime.KeepAlive(s)
	return value, m, ok
}

// Fetch marks the item of key fetched, as a Get does, without copying
// its value.
func (s *Store) Fetch(key []byte) (Meta, bool) {
	_, _, m, ok := s.read(key, nil, readNone, true)
	runtime.KeepAlive(s)
	return m, ok
}

// GetInto copies the value of key into dst[:cap(dst)] if it fits, and marks
// the item fetched. It returns the value's length n; n > cap(dst) means the
// value did not fit: nothing was copied nor marked. It never allocates.
func (s *Store) GetInto(key []byte, dst []byte) (n int, m Meta, ok bool) {
	_, n, m, ok = s.read(key, dst, readInto, true)
	runtime.KeepAlive(s)
	return n, m, ok
}

// Now reads the store's clock (Config.Now), for callers that turn relative
// times into the absolute exptimes the store takes.
func (s *Store) Now() time.Time { return s.now() }

// Peek is Get without marking the item fetched or accessed.
func (s *Store) Peek(key []byte, dst []byte) (value []byte, m Meta, ok bool) {
	value, _, m, ok = s.read(key, dst, readAppend, false)
	runtime.KeepAlive(s)
	return value, m, ok
}

// expiredAt reports whether an item with exptime is dead on arrival.
func expiredAt(exptime int64, now time.Time) bool {
	return exptime < 0 || (exptime != 0 && exptime <= now.Unix())
}

// exptime32 is how an item holds its exptime: unix seconds as a uint32,
// which reach 2106 (later is never).
func exptime32(exptime int64) uint32 { return uint32(min(exptime, math.MaxUint32)) }

// Set stores value under key as mode says; cas, when not 0, must match the
// item's CAS. Append and Prepend keep the item's flags and exptime. An
// exptime in the past or negative deletes the key (a later get misses) but
// reports Stored. A key longer than 255 bytes is TooLarge.
func (s *Store) Set(key, value []byte, mode Mode, flags uint32, exptime int64, cas uint64) (Result, uint64) {
	return s.SetMeta(key, value, mode, flags, exptime, cas, SetOptions{})
}

// SetMeta is Set with the meta protocol's extras (SetOptions).
func (s *Store) SetMeta(key, value []byte, mode Mode, flags uint32, exptime int64, cas uint64, o SetOptions) (Result, uint64) {
	if len(value) > s.maxItem || len(key) > maxKeyLen {
		return TooLarge, 0
	}
	defer runtime.KeepAlive(s)
	now := s.now()
	k := s.x.hash(key)
	for range writeTries {
		s.makeRoom()
		s.lock(&k)
		res, newCAS, done := s.setLocked(k, key, value, mode, flags, exptime, cas, o, now)
		s.x.unlock(k)
		if done {
			if newCAS != 0 {
				s.total.Add(1)
			}
			return res, newCAS
		}
		s.evictOne(false)
	}
	return NotStored, 0
}

func (s *Store) setLocked(k hkey, key, value []byte, mode Mode, flags uint32, exptime int64, cas uint64, o SetOptions, now time.Time) (Result, uint64, bool) {
	c := s.lookupLocked(k, key, now)
	var marks uint8
	if o.KeyBinary {
		marks |= markKeyBinary
	}
	if o.Won {
		marks |= markWon
	}
	if cas != 0 {
		switch {
		case !c.found:
			return NotFound, 0, true
		case c.h.cas != cas && o.Invalidate && cas < c.h.cas:
			// memcached: the value replaces the item's, stale, keeping
			// its exptime and a win already given
			marks |= markStale | c.h.marks&markWon
			exptime = int64(c.h.exptime)
		case c.h.cas != cas:
			return Exists, 0, true
		}
	}
	it := item{h: header{flags: flags, marks: marks}, v1: value}
	switch mode {
	case ModeAdd:
		if c.found {
			return NotStored, 0, true
		}
	case ModeReplace:
		if !c.found {
			return NotStored, 0, true
		}
	case ModeAppend, ModePrepend:
		if !c.found {
			return NotStored, 0, true
		}
		if int(c.h.vlen)+len(value) > s.maxItem {
			return TooLarge, 0, true
		}
		it.h.flags, exptime = c.h.flags, int64(c.h.exptime)
		if mode == ModeAppend {
			it.v1, it.v2 = s.valueAt(c.off, c.h), value
		} else {
			it.v2 = s.valueAt(c.off, c.h)
		}
	}
	if expiredAt(exptime, now) {
		newCAS := s.cas.Add(1) // numbered, as memcached numbers it, then gone
		if c.found {
			s.removeLocked(k.t, c.slot, c.off, c.h)
		}
		return Stored, newCAS, true
	}
	it.h.exptime = exptime32(exptime)
	it.h.storedNs = now.UnixNano()
	it.access = uint32(now.Unix()) // storing is an access, as memcached counts it
	if !s.writeLocked(k, key, c, &it, now) {
		return 0, 0, false
	}
	return Stored, it.h.cas, true
}

// Delete removes key; cas, when not 0, must match the item's CAS.
func (s *Store) Delete(key []byte, cas uint64) Result {
	if len(key) > maxKeyLen {
		return NotFound
	}
	defer runtime.KeepAlive(s)
	k := s.x.hash(key)
	s.lock(&k)
	defer s.x.unlock(k)
	c := s.lookupLocked(k, key, s.now())
	switch {
	case !c.found:
		return NotFound
	case cas != 0 && c.h.cas != cas:
		return Exists
	}
	s.removeLocked(k.t, c.slot, c.off, c.h)
	return Deleted
}

// touch sets the exptime of a live item, keeping its value and CAS, by
// writing it anew, and returns its meta (ok false if none); fetch also
// marks it fetched and appends its value to dst.
func (s *Store) touch(key []byte, exptime int64, now time.Time, fetch bool, dst []byte) ([]byte, Meta, bool) {
	if len(key) > maxKeyLen {
		return dst, Meta{}, false
	}
	k := s.x.hash(key)
	for range writeTries {
		s.makeRoom()
		s.lock(&k)
		c := s.lookupLocked(k, key, now)
		if !c.found {
			s.x.unlock(k)
			return dst, Meta{}, false
		}
		m := metaOf(c.h, c.e, k.t.loadAccess(c.slot))
		m.Exptime = exptime
		if fetch {
			dst = append(dst, s.valueAt(c.off, c.h)...)
		}
		if expiredAt(exptime, now) {
			s.removeLocked(k.t, c.slot, c.off, c.h) // visible to this call, gone after it
			s.x.unlock(k)
			return dst, m, true
		}
		h := c.h
		h.exptime = exptime32(exptime)
		it := s.rewritten(c, h)
		if fetch {
			it.access = uint32(now.Unix())
			it.bits = markedRead(it.bits)
		}
		ok := s.writeLocked(k, key, c, &it, now)
		s.x.unlock(k)
		if ok {
			return dst, m, true
		}
		if fetch {
			dst = dst[:len(dst)-int(c.h.vlen)]
		}
		s.evictOne(false)
	}
	return dst, Meta{}, false
}

// rewritten is c's item written again with header h: its value, access
// time, fetched flag and read count kept (touch, Invalidate, Claim).
func (s *Store) rewritten(c current, h header) item {
	return item{h: h, v1: s.valueAt(c.off, c.h), access: c.t.loadAccess(c.slot), bits: c.e & (entFetched | entReads)}
}

// markedRead is the fetched flag and read count bits after one more read.
func markedRead(bits uint64) uint64 {
	if bits&entReads != entReads {
		bits += 1 << entReadsSh
	}
	return bits | entFetched
}

// Touch sets the exptime of key. It does not mark the item fetched.
func (s *Store) Touch(key []byte, exptime int64) (Meta, bool) {
	_, m, ok := s.touch(key, exptime, s.now(), false, nil)
	runtime.KeepAlive(s)
	return m, ok
}

// GetAndTouch sets the exptime of key and appends its value to dst, marking
// the item fetched.
func (s *Store) GetAndTouch(key []byte, exptime int64, dst []byte) ([]byte, Meta, bool) {
	dst, m, ok := s.touch(key, exptime, s.now(), true, dst)
	runtime.KeepAlive(s)
	return dst, m, ok
}

// Incr adds delta to (or, with decr, subtracts it from) the decimal number
// stored under key, as memcached does: incr wraps at 2^64, decr stops at 0,
// and a result shorter than the stored text is padded with spaces to its
// length. On a missing key, vivify (if not nil) creates it with its Initial
// value, which is returned as is. The result is Stored, NotFound or
// NonNumeric.
func (s *Store) Incr(key []byte, delta uint64, decr bool, vivify *Vivify) (newValue uint64, cas uint64, r Result) {
	return s.IncrCAS(key, delta, decr, vivify, 0)
}

// IncrCAS is Incr that, when cas is not 0, changes the item only if its CAS
// matches (else Exists; NotFound if missing, even with vivify).
func (s *Store) IncrCAS(key []byte, delta uint64, decr bool, vivify *Vivify, cas uint64) (newValue uint64, newCAS uint64, r Result) {
	return s.IncrMeta(key, delta, decr, vivify, cas, nil)
}

// IncrMeta is IncrCAS that, with exptime not nil, also gives the item it
// changes that exptime (ma T); an item vivify creates takes vivify's.
func (s *Store) IncrMeta(key []byte, delta uint64, decr bool, vivify *Vivify, cas uint64, exptime *int64) (newValue uint64, newCAS uint64, r Result) {
	if len(key) > maxKeyLen {
		return 0, 0, NotFound
	}
	defer runtime.KeepAlive(s)
	now := s.now()
	k := s.x.hash(key)
	var digits [20]byte
	for range writeTries {
		s.makeRoom()
		s.lock(&k)
		var done bool
		newValue, newCAS, r, done = s.incrLocked(k, key, delta, decr, vivify, cas, exptime, now, &digits)
		s.x.unlock(k)
		if done {
			if newCAS != 0 {
				s.total.Add(1)
			}
			return newValue, newCAS, r
		}
		s.evictOne(false)
	}
	return 0, 0, NotStored
}

// spaces pads a number shorter than the text it replaces.
var spaces = bytes.Repeat([]byte{' '}, 256)

func (s *Store) incrLocked(k hkey, key []byte, delta uint64, decr bool, vivify *Vivify, cas uint64, exptime *int64, now time.Time, digits *[20]byte) (uint64, uint64, Result, bool) {
	c := s.lookupLocked(k, key, now)
	var it item
	var n uint64
	switch {
	case !c.found && (vivify == nil || cas != 0):
		return 0, 0, NotFound, true
	case !c.found:
		n = vivify.Initial
		exp := vivify.Exptime
		if expiredAt(exp, now) {
			return n, s.cas.Add(1), Stored, true // numbered, as memcached numbers it, then gone
		}
		it = item{h: header{exptime: exptime32(exp)}, v1: strconv.AppendUint(digits[:0], n, 10)}
	case cas != 0 && c.h.cas != cas:
		return 0, 0, Exists, true
	default:
		old := s.valueAt(c.off, c.h)
		var ok bool
		if n, ok = parseUint(old); !ok {
			return 0, 0, NonNumeric, true
		}
		switch {
		case !decr:
			n += delta // wraps, as memcached
		case delta > n:
			n = 0
		default:
			n -= delta
		}
		v := strconv.AppendUint(digits[:0], n, 10)
		it = item{h: header{flags: c.h.flags, exptime: c.h.exptime}, v1: v}
		if pad := len(old) - len(v); pad > 0 {
			if pad <= len(spaces) {
				it.v2 = spaces[:pad]
			} else {
				it.v2 = bytes.Repeat([]byte{' '}, pad)
			}
		}
		it.h.marks = c.h.marks & markKeyBinary
		if len(v) <= len(old) {
			// memcached changes a number that fits in place: the item
			// stays fetched (mg h), and stale or won
			it.bits = c.e & entFetched
			it.h.marks = c.h.marks
		}
		if exptime != nil {
			it.h.exptime = exptime32(*exptime)
		}
	}
	it.h.storedNs = now.UnixNano()
	it.access = uint32(now.Unix()) // storing is an access, as memcached counts it
	if !s.writeLocked(k, key, c, &it, now) {
		return 0, 0, 0, false
	}
	return n, it.h.cas, Stored, true
}

// Invalidate marks key's item stale (md I): its value stays and is read
// as before, flagged stale, and the next client to read it is told to
// recache it (Claim). It takes a new CAS; with exptime not nil, that
// exptime too. cas, when not 0, must match the item's. The result is
// Deleted (done), NotFound or Exists.
func (s *Store) Invalidate(key []byte, cas uint64, exptime *int64) Result {
	if len(key) > maxKeyLen {
		return NotFound
	}
	defer runtime.KeepAlive(s)
	now := s.now()
	k := s.x.hash(key)
	for range writeTries {
		s.makeRoom()
		s.lock(&k)
		c := s.lookupLocked(k, key, now)
		switch {
		case !c.found:
			s.x.unlock(k)
			return NotFound
		case cas != 0 && c.h.cas != cas:
			s.x.unlock(k)
			return Exists
		}
		h := c.h
		h.cas = 0 // a new one
		h.marks = h.marks&^markWon | markStale
		if exptime != nil {
			h.exptime = exptime32(*exptime)
		}
		it := s.rewritten(c, h)
		ok := s.writeLocked(k, key, c, &it, now)
		s.x.unlock(k)
		if ok {
			return Deleted
		}
		s.evictOne(false)
	}
	return NotStored
}

// Claim gives the win of key's item to the caller, once: the item read
// with CAS cas, if no client has won it yet, is stale or (recache not 0)
// expires before recache (unix seconds), is marked won and Claim returns
// true. Every later reader sees Meta.Won (memcached's Z) until the item is
// stored again or invalidated. This is memcached's stampede protection:
// one client recomputes the value, the others use the stale one. already
// says another client won it first. An item gone meanwhile (expired, say
// by the caller's own touch) is won by no one: the next read misses.
func (s *Store) Claim(key []byte, cas uint64, recache int64) (won, already bool) {
	if len(key) > maxKeyLen {
		return false, false
	}
	defer runtime.KeepAlive(s)
	now := s.now()
	k := s.x.hash(key)
	for range writeTries {
		s.makeRoom()
		s.lock(&k)
		c := s.lookupLocked(k, key, now)
		due := c.h.marks&markStale != 0 || recache != 0 && c.h.exptime != 0 && int64(c.h.exptime) < recache
		switch {
		case !c.found || c.h.cas != cas || !due:
			s.x.unlock(k)
			return false, false
		case c.h.marks&markWon != 0:
			s.x.unlock(k)
			return false, true
		}
		h := c.h
		h.marks |= markWon // the same CAS: the item is unchanged but for the win
		it := s.rewritten(c, h)
		ok := s.writeLocked(k, key, c, &it, now)
		s.x.unlock(k)
		if ok {
			return true, false
		}
		s.evictOne(false)
	}
	return false, false
}

// parseUint reads a number as memcached's safe_strtoull does: leading
// spaces, decimal digits that fit a uint64, then the end or a space.
func parseUint(b []byte) (uint64, bool) {
	i := 0
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	neg := false
	if i < len(b) && (b[i] == '+' || b[i] == '-') {
		neg = b[i] == '-'
		i++ // strtoull takes a sign
	}
	start := i
	var n uint64
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		d := uint64(b[i] - '0')
		if n > (1<<64-1-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	if i == start || (i < len(b) && !isSpace(b[i])) {
		return 0, false
	}
	if neg {
		// strtoull negates; memcached refuses a '-' only when the
		// result reads as negative signed: "-0" is 0
		if n = -n; int64(n) < 0 {
			return 0, false
		}
	}
	return n, true
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

// FlushAll makes every item stored before now+delay invisible from that
// moment on; items stored later stay. A later FlushAll replaces a pending
// one. Flushed items are removed as they are found, or evicted.
func (s *Store) FlushAll(delay time.Duration) {
	s.flushed.Add(1)
	now := s.now().UnixNano()
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	next := flush{past: math.MinInt64, at: noFlush}
	if prev := s.flush.Load(); prev != nil {
		next.cas, next.past = prev.cas, prev.past
		if prev.at <= now { // it took effect: keep it
			next.past = max(next.past, prev.at)
		}
	}
	if delay <= 0 {
		// The CAS counter orders stores exactly, even within one clock tick.
		next.cas = s.cas.Load()
	} else {
		next.at = now + int64(delay)
	}
	s.flush.Store(&next)
	if b := s.mirror.Load(); b != nil {
		// An error has turned the mirror off (it answers nothing more).
		_ = b.m.Flush(next.cas, next.past, next.at)
	}
}

// Stats returns the store's counters.
func (s *Store) Stats() Stats {
	st := s.x.state.Load()
	return Stats{
		Items:         s.items.Load(),
		Bytes:         s.bytes.Load(),
		LimitBytes:    s.limit,
		ArenaBytes:    s.sg.limitBytes(),
		IndexBytes:    tableBytes(st.t.bits),
		IndexSlots:    int64(st.t.nslots()),
		IndexResizing: st.old != nil,
		IndexGrows:    s.grows.Load(),
		IndexShrinks:  s.shrinks.Load(),
		SlotEvictions: s.slotEvictions.Load(),
		Evictions:     s.evictions.Load(),
		Expired:       s.expired.Load(),
		TotalItems:    s.total.Load(),
		Flushed:       s.flushed.Load(),
	}
}
