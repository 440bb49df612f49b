package store

import (
	"hash/maphash"
	"math/bits"
	"sync"
	"sync/atomic"
	"unsafe"
)

// The index maps keys to item locations: buckets of bucketSlots entries,
// a key in one of two buckets (the two chosen by its hash, as in a cuckoo
// table without kicks), each entry one uint64 that holds no pointer, in
// memory outside the Go heap. Readers load entries atomically without a
// lock; writers change a bucket under its stripe's lock.
//
// The index grows with the items: it starts at a slot for every KiB of
// the limit and doubles, while the store fills, as long as the items its
// slots allow are fewer than the segments could hold (see Store.resize);
// it halves again when the segments are full and few of its slots are
// used (larger items came in place of small ones). A doubling moves the
// entries bucket by bucket into a table twice the size, while reads and
// writes go on: bucket b of a table of 2^k buckets becomes buckets 2b
// and 2b+1 of the next (a bucket is the top k bits of one half of the
// key's hash), and both are guarded by the same stripe; a halving moves
// buckets 2b and 2b+1 into bucket b, under that stripe too.
//
// An entry (0: empty):
//
//	bit 63     fetched since stored (memcached's fetched flag, mg h)
//	bits 61-62 reads since stored or last moved forward, up to 3
//	bits 52-60 tag: 9 bits of the key's hash, never 0
//	bits 40-51 the generation of the item's segment when it was written
//	bits 0-39  the item's offset in the arena, in units of itemAlign
const (
	bucketSlots = 8
	entFetched  = uint64(1) << 63
	entReadsSh  = 61
	entReads    = uint64(3) << entReadsSh
	entTagSh    = 52
	entTagMask  = uint64(0x1ff)
	entGenSh    = 40
	entGenMask  = uint64(0xfff)
	entLocMask  = uint64(1)<<40 - 1

	// slotBytes is what the index takes a slot: its entry and its
	// access time.
	slotBytes = 8 + 4
	// minBytesPerSlot bounds the index's growth: at most one slot per
	// this many bytes of the limit (items of 32-byte keys and 64-byte
	// values take 128 bytes).
	minBytesPerSlot = 112
	// startBytesPerSlot sizes the first table: one slot per KiB.
	startBytesPerSlot = 1024
	// maxStripeBits: at most 1024 writer locks.
	maxStripeBits = 10
)

func entTag(e uint64) uint64 { return e >> entTagSh & entTagMask }
func entGen(e uint64) uint64 { return e >> entGenSh & entGenMask }
func entOff(e uint64) int64  { return int64(e&entLocMask) * itemAlign }
func entReadCount(e uint64) uint64 {
	return e & entReads >> entReadsSh
}

func makeEntry(tag uint64, gen uint64, off int64) uint64 {
	return tag<<entTagSh | (gen&entGenMask)<<entGenSh | uint64(off/itemAlign)
}

// stripe is one writer lock, on a cache line of its own.
type stripe struct {
	sync.Mutex
	_ [56]byte
}

// table is one size of the index: 2^bits buckets in memory of its own.
type table struct {
	mem    []byte
	slots  []uint64 // buckets*bucketSlots entries
	access []uint32 // per slot: the item's last access, unix seconds
	bits   uint     // log2 of the buckets
}

// newTable maps a table of 2^bits buckets.
func newTable(bits uint) (*table, error) {
	n := bucketSlots << bits
	mem, err := mapRegion(int(tableBytes(bits)))
	if err != nil {
		return nil, err
	}
	return &table{
		mem:    mem,
		slots:  unsafe.Slice((*uint64)(unsafe.Pointer(&mem[0])), n),
		access: unsafe.Slice((*uint32)(unsafe.Pointer(&mem[n*8])), n),
		bits:   bits,
	}, nil
}

// tableBytes is what a table of 2^bits buckets takes, in whole pages.
func tableBytes(bits uint) int64 {
	return roundUp(int64(bucketSlots<<bits)*slotBytes, pageSize)
}

func (t *table) nslots() int { return len(t.slots) }

// buckets are the two buckets of hash h: the top bits of each half, the
// second moved to the first's neighbour when they are the same.
func (t *table) buckets(h uint64) (b1, b2 uint64) {
	b1 = h & 0xffffffff >> (32 - t.bits)
	b2 = h >> 32 >> (32 - t.bits)
	if b2 == b1 {
		b2 = b1 ^ 1
	}
	return b1, b2
}

func (t *table) load(i uint64) uint64     { return atomic.LoadUint64(&t.slots[i]) }
func (t *table) store(i uint64, e uint64) { atomic.StoreUint64(&t.slots[i], e) }
func (t *table) cas(i uint64, old, e uint64) bool {
	return atomic.CompareAndSwapUint64(&t.slots[i], old, e)
}
func (t *table) loadAccess(i uint64) uint32     { return atomic.LoadUint32(&t.access[i]) }
func (t *table) storeAccess(i uint64, s uint32) { atomic.StoreUint32(&t.access[i], s) }

// touchAccess records a read at sec, writing only when it changes.
func (t *table) touchAccess(i uint64, sec uint32) {
	if t.loadAccess(i) != sec {
		t.storeAccess(i, sec)
	}
}

// markRead records a read in entry e of slot i, if the slot still holds
// it: fetched, and one more read up to 3. It writes only what changes, so
// a hot key read by many cores stops writing its entry.
func (t *table) markRead(i uint64, e uint64) {
	n := e | entFetched
	if entReadCount(e) < 3 {
		n += 1 << entReadsSh
	}
	if n != e {
		t.cas(i, e, n)
	}
}

// indexState is the index as readers find it: a table, and while it
// grows, the table it grows from and which of that one's buckets have
// moved.
type indexState struct {
	t     *table
	old   *table          // nil unless resizing (growing or shrinking)
	moved []atomic.Uint64 // a bit per bucket of old: moved to t
}

func (st *indexState) isMoved(b uint64) bool {
	return st.moved[b/64].Load()&(1<<(b%64)) != 0
}

func (st *indexState) setMoved(b uint64) {
	st.moved[b/64].Or(1 << (b % 64))
}

// index is the key table.
type index struct {
	seed       maphash.Seed
	state      atomic.Pointer[indexState]
	stripeBits uint
	minBits    uint // the first table, the smallest it shrinks back to
	maxBits    uint // the largest table it may grow to
	locks      []stripe
}

// hkey is a key's hash and, once found or locked, the table its slots
// are in and its two buckets there.
type hkey struct {
	h      uint64
	tag    uint64
	t      *table
	b1, b2 uint64
}

// init starts the index at a table of 2^bits buckets, growing to at
// most 2^maxBits and shrinking back to no fewer than it started with.
func (x *index) init(t *table, maxBits uint) {
	x.seed = maphash.MakeSeed()
	x.minBits = t.bits
	x.maxBits = max(maxBits, t.bits)
	x.stripeBits = min(maxStripeBits, t.bits-1)
	x.locks = make([]stripe, 1<<x.stripeBits)
	x.state.Store(&indexState{t: t})
}

// bucketBits is log2 of the power-of-two buckets nearest to slots/8,
// at least 2 buckets.
func bucketBits(slots int64) uint {
	b := max(slots/bucketSlots, 2)
	return uint(bits.Len64(uint64(b) - 1))
}

func (x *index) hash(key []byte) hkey {
	h := maphash.Bytes(x.seed, key)
	tag := (h*0x9e3779b97f4a7c15)>>55%entTagMask + 1
	return hkey{h: h, tag: tag}
}

// stripes are the locks of both of hash h's buckets in every table: a
// bucket's stripe is its top stripeBits bits, which a bucket and the two
// it becomes share, and so do a bucket and its neighbour.
func (x *index) stripes(h uint64) (a, b uint64) {
	sh := 32 - x.stripeBits
	a, b = h&0xffffffff>>sh, h>>32>>sh
	if a > b {
		a, b = b, a
	}
	return a, b
}

func (x *index) lockStripes(h uint64) {
	a, b := x.stripes(h)
	x.locks[a].Lock()
	if b != a {
		x.locks[b].Lock()
	}
}

func (x *index) unlock(k hkey) {
	a, b := x.stripes(k.h)
	x.locks[a].Unlock()
	if b != a {
		x.locks[b].Unlock()
	}
}
