package store

import (
	"hash/maphash"
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
	// bytesPerSlot sizes the index: one slot per this many bytes of
	// --kv-memory (items of 32-byte keys and 64-byte values take 128
	// bytes, so such a store fills about 80% of its slots).
	bytesPerSlot = 112
	// stripes is the number of writer locks (a power of two).
	stripes = 1024
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

// index is the key table.
type index struct {
	seed    maphash.Seed
	slots   []uint64 // buckets*bucketSlots entries
	access  []uint32 // per slot: the item's last access, unix seconds
	buckets uint64
	locks   []stripe
}

// hkey is a key's place in the index.
type hkey struct {
	b1, b2 uint64 // its two buckets
	tag    uint64
}

// initIndex lays the index over mem, which holds slots*slotBytes bytes.
func (x *index) init(mem []byte, slots int) {
	x.seed = maphash.MakeSeed()
	x.buckets = uint64(slots / bucketSlots)
	n := int(x.buckets) * bucketSlots
	x.slots = unsafe.Slice((*uint64)(unsafe.Pointer(&mem[0])), n)
	x.access = unsafe.Slice((*uint32)(unsafe.Pointer(&mem[n*8])), n)
	x.locks = make([]stripe, stripes)
}

func (x *index) hash(key []byte) hkey {
	h := maphash.Bytes(x.seed, key)
	b1 := (h & 0xffffffff) * x.buckets >> 32
	b2 := (h >> 32) * x.buckets >> 32
	if b2 == b1 {
		b2 = (b1 + 1) % x.buckets
	}
	tag := (h*0x9e3779b97f4a7c15)>>55%entTagMask + 1
	return hkey{b1: b1, b2: b2, tag: tag}
}

// lock takes the stripes of both of the key's buckets, in order.
func (x *index) lock(k hkey) {
	a, b := k.b1%stripes, k.b2%stripes
	if a > b {
		a, b = b, a
	}
	x.locks[a].Lock()
	if b != a {
		x.locks[b].Lock()
	}
}

func (x *index) unlock(k hkey) {
	a, b := k.b1%stripes, k.b2%stripes
	x.locks[a].Unlock()
	if b != a {
		x.locks[b].Unlock()
	}
}

func (x *index) load(i uint64) uint64     { return atomic.LoadUint64(&x.slots[i]) }
func (x *index) store(i uint64, e uint64) { atomic.StoreUint64(&x.slots[i], e) }
func (x *index) cas(i uint64, old, e uint64) bool {
	return atomic.CompareAndSwapUint64(&x.slots[i], old, e)
}
func (x *index) loadAccess(i uint64) uint32     { return atomic.LoadUint32(&x.access[i]) }
func (x *index) storeAccess(i uint64, t uint32) { atomic.StoreUint32(&x.access[i], t) }

// touchAccess records a read at sec, writing only when it changes.
func (x *index) touchAccess(i uint64, sec uint32) {
	if x.loadAccess(i) != sec {
		x.storeAccess(i, sec)
	}
}

// markRead records a read in entry e of slot i, if the slot still holds
// it: fetched, and one more read up to 3. It writes only what changes, so
// a hot key read by many cores stops writing its entry.
func (x *index) markRead(i uint64, e uint64) {
	n := e | entFetched
	if entReadCount(e) < 3 {
		n += 1 << entReadsSh
	}
	if n != e {
		x.cas(i, e, n)
	}
}
