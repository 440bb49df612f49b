package bpf

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/features"
	"golang.org/x/sys/unix"

	"github.com/rebound-net/rebound/codec"
)

// Limits of the items the program answers from (ITEM_KEY_MAX and
// ITEM_VALUE_MAX in the C source). Larger ones stay in userspace only.
const (
	AnswerKeyMax   = 250
	AnswerValueMax = 1024
	// MaxAnswerItems bounds Options.AnswerItems.
	MaxAnswerItems = 1 << 20
	// DefaultAnswerItems is what the server asks for unless told otherwise:
	// about 14 MiB of kernel memory for the slots and the buckets.
	DefaultAnswerItems = 8192
)

// Layout of struct item and struct item_small (a sequence count, struct
// item_meta, then the memcached reply) in the C source.
const (
	itemOffBody    = 8 // after the sequence count and its padding
	itemOffExpire  = itemOffBody
	itemOffStored  = itemOffExpire + 8
	itemOffCAS     = itemOffStored + 8
	itemOffFlags   = itemOffCAS + 8
	itemOffLen     = itemOffFlags + 4
	itemOffKeyLen  = itemOffLen + 2
	itemOffSufLen  = itemOffKeyLen + 1
	itemOffDataSum = itemOffSufLen + 1
	itemOffMCSum   = itemOffDataSum + 2
	itemOffMCLen   = itemOffMCSum + 2
	itemOffMCHead  = itemOffMCLen + 2
	itemOffMC      = itemOffMCHead + 2
	// The memcached reply's room (MC_AREA, 41 rounds of 32 bytes the
	// program copies; the reply is 1311 bytes at most) and a slot's size,
	// in items and in items_small (SMALL_SLOT): an item goes there when
	// its reply's rounds fit.
	mcArea        = 41 * 32
	itemSize      = itemOffMC + mcArea
	smallItemSize = 256
	smallArea     = smallItemSize - itemOffMC
	smallReplyMax = smallArea &^ 31
	classBig      = 0
	classSmall    = 1
	// item_buckets: 8 entries of tag | small | slot a bucket (struct bucket).
	bucketWays = 8
	bucketSize = bucketWays * 8
	slotBits   = 20 // MaxAnswerItems is 1 << slotBits
	slotMask   = 1<<slotBits - 1
	smallBit   = 1 << slotBits // SMALL_BIT: the slot is in items_small
	tagMask    = ^uint64(1<<(slotBits+1) - 1)
	hashMul    = 0x9e3779b97f4a7c15

	answerCfgSize = 16
	// struct flush_state: the sequence count and its padding, then cas,
	// past, at and at_clock.
	flushSize     = 40
	noFlushAt     = ^uint64(0)
	clockEvery    = time.Second
	clockDriftMax = 10 * time.Millisecond
)

// pickClock chooses the clock the program's deadlines are on: CLOCK_TAI
// (bpf_ktime_get_tai_ns, Linux 6.1), which steps with the wall clock the
// store compares expiry times with; else CLOCK_MONOTONIC, and the
// program's calls are turned into bpf_ktime_get_ns before it is loaded.
func pickClock(spec *ebpf.CollectionSpec) (int32, error) {
	err := features.HaveProgramHelper(ebpf.XDP, asm.FnKtimeGetTaiNs)
	if err == nil {
		return unix.CLOCK_TAI, nil
	}
	if !errors.Is(err, ebpf.ErrNotSupported) {
		return 0, fmt.Errorf("bpf: probe bpf_ktime_get_tai_ns: %w", err)
	}
	for _, ps := range spec.Programs {
		for i := range ps.Instructions {
			if ins := &ps.Instructions[i]; ins.IsBuiltinCall() && ins.Constant == int64(asm.FnKtimeGetTaiNs) {
				ins.Constant = int64(asm.FnKtimeGetNs)
			}
		}
	}
	return unix.CLOCK_MONOTONIC, nil
}

// answerSizes returns the entries of item_buckets, and of items and of
// items_small each, for n items: a slot of each size for each key, and a
// bucket of eight entries for each, rounded up to a power of two (so that
// a bucket rarely has more than two and almost never a ninth).
func answerSizes(n int) (buckets, slots uint32) {
	if n <= 0 {
		return 1, 1
	}
	return 1 << bits.Len(uint(n-1)), uint32(n)
}

// setAnswerVars sets the program's constants for buckets buckets: the
// hash seed, chosen at random (returned), the bucket mask and whether
// loads keep their order on this CPU (x86).
func setAnswerVars(spec *ebpf.CollectionSpec, buckets uint32) (uint64, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return 0, fmt.Errorf("bpf: hash seed: %w", err)
	}
	seed := binary.LittleEndian.Uint64(b[:])
	ordered := uint32(0)
	if orderedStores { // x86 keeps loads in order too
		ordered = 1
	}
	for name, v := range map[string]any{"hash_seed": seed, "bucket_mask": buckets - 1, "ordered_loads": ordered} {
		vs, ok := spec.Variables[name]
		if !ok {
			return 0, fmt.Errorf("bpf: the embedded program has no %s", name)
		}
		if err := vs.Set(v); err != nil {
			return 0, fmt.Errorf("bpf: set %s: %w", name, err)
		}
	}
	return seed, nil
}

// keyHash is the program's hash of a key (read_key in the C source): its
// bytes as little-endian words, the last one zero-padded, with seed.
func keyHash(seed uint64, key string) uint64 {
	h := seed ^ uint64(len(key))
	for i := 0; i < len(key); i += 8 {
		var w uint64
		for j := min(len(key)-i, 8) - 1; j >= 0; j-- {
			w = w<<8 | uint64(key[i+j])
		}
		h = (h ^ w) * hashMul
		h ^= h >> 29
	}
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

// tagOf is tag_of in the C source: what an entry holds over its slot.
func tagOf(h uint64) uint64 {
	if t := h & tagMask; t != 0 {
		return t
	}
	return 1 << 63
}

// AnswerOp is a request the program answers itself (enum answer_op).
type AnswerOp int

// The answered requests.
const (
	AnswerPing            AnswerOp = iota // Rebound PING
	AnswerGet                             // Rebound GET
	AnswerMemcacheGet                     // memcached "get <key>"
	AnswerMemcacheMetaGet                 // memcached "mg <key>" with v and f, one of them or neither
	NumAnswerOps
)

var answerOpNames = [NumAnswerOps]string{"ping", "get", "memcache_get", "memcache_mg"}

func (o AnswerOp) String() string {
	if o >= 0 && o < NumAnswerOps {
		return answerOpNames[o]
	}
	return "answer_op(" + strconv.Itoa(int(o)) + ")"
}

// AnswerOutcome is how an attempt to answer went (enum answer_outcome).
// Every outcome but AnswerHit sends the request on to userspace.
type AnswerOutcome int

// The outcomes.
const (
	AnswerHit           AnswerOutcome = iota // answered with XDP_TX
	AnswerMiss                               // key not in the map, or flushed
	AnswerExpired                            // item past its expiry
	AnswerTooLarge                           // reply over the path MTU or the frame's room
	AnswerAmplification                      // reply over the amplification bound
	AnswerBadChecksum                        // request checksum wrong (userspace drops it)
	NumAnswerOutcomes
)

var answerOutcomeNames = [NumAnswerOutcomes]string{"hit", "miss", "expired", "too_large", "amplification", "bad_checksum"}

func (o AnswerOutcome) String() string {
	if o >= 0 && o < NumAnswerOutcomes {
		return answerOutcomeNames[o]
	}
	return "answer_outcome(" + strconv.Itoa(int(o)) + ")"
}

// AnswerCounters counts the program's answers by request and outcome,
// summed over CPUs.
type AnswerCounters [NumAnswerOps][NumAnswerOutcomes]uint64

// AnswerCounters reads the answer counters.
func (p *Program) AnswerCounters() (AnswerCounters, error) {
	var c AnswerCounters
	if p.closed {
		return c, errClosed
	}
	var per []uint64
	for op := range NumAnswerOps {
		for o := range NumAnswerOutcomes {
			i := uint32(NumCounters) + uint32(op)*uint32(NumAnswerOutcomes) + uint32(o)
			if err := p.objs.Counters.Lookup(i, &per); err != nil {
				return c, fmt.Errorf("bpf: read answer counter %v %v: %w", op, o, err)
			}
			for _, v := range per {
				c[op][o] += v
			}
		}
	}
	return c, nil
}

// Items is the kernel's copy of the items the program answers GETs from:
// the hot small items of the server's store, kept coherent with it by the
// store itself (Put on every write, Delete on every removal, Flush on
// flush_all), each call made before the store acknowledges the change.
// Calls for one key must be serialized by the caller (the store makes
// them under the key's lock); Items serializes the rest.
//
// An item lives in a slot, of items_small (256 bytes) when its replies
// fit there, else of items, and an entry of item_buckets (in the bucket
// its key's hash picks, under the rest of the hash) points to the slot.
// Slots and buckets are written in place through shared mappings, slots
// behind a sequence count the program checks around its copy (seqWrite),
// so it uses one version of a slot, whole, and a write costs no system
// call. A slot holds the item's replies as the program sends them, built
// here. A Put of a key that has a slot of the right size rewrites it in
// place; otherwise the item gets a free slot, filled before its entry
// points to it (and the old slot, if any, is freed after). A slot freed
// by a Delete may go to another key at once: a program run that read the
// old entry finds another key in it and leaves the request to userspace.
// When no slot is free, the slots of items the program would no longer
// answer (expired, or covered by flush_all) are taken back first (reclaim);
// when none is, or the key's bucket is full or holds its tag already, or
// the key or value is over the limits, the key is not held (removed if it
// was): the program leaves its GETs to userspace, which is always right.
type Items struct {
	mu       sync.Mutex
	buckets  []byte // the item_buckets map, mapped: bucketSize bytes a bucket
	nbuckets uint64
	seed     uint64       // of keyHash
	classes  [2]slotClass // classBig (items), classSmall (items_small)
	flush    []byte       // the flush map, mapped: struct flush_state
	flushMap *ebpf.Map
	cfgMap   *ebpf.Map
	slotOf   map[string]uint32 // a held key's slot: small bit | slot, as in its entry
	cfg      [answerCfgSize]byte
	clock    int32         // the program's clock: unix.CLOCK_TAI, or CLOCK_MONOTONIC before Linux 6.1
	margin   time.Duration // taken off every deadline: the clock offset's error between two checks
	offset   int64         // unix ns minus the program's clock's ns, as of the last check
	// The flush state as Flush was given it (unix ns), so that it can be
	// written again on the program's clock when the offset changes.
	flushCAS           uint64
	flushPast, flushAt int64
	flushGen           uint64 // counts Flush calls and rebases
	// reclaim's memory: the flush generation and the earliest deadline
	// of its last sweep; until one changes or passes, a sweep would find
	// nothing.
	sweptGen  uint64
	nextDead  uint64
	sweptOnce bool
	buf       [itemSize]byte
	broken    bool  // closed: answering is off for good
	err       error // why

	stop chan struct{}
	done chan struct{}

	puts, deletes, noRoom atomic.Uint64
}

// slotClass is the slots of one size: items or items_small.
type slotClass struct {
	mem  []byte // the map, mapped
	size int    // bytes a slot
	free []uint32
	meta []slotMeta // of each slot in use, by slot
}

// slotRef is a slot as slotOf and the entries name it: smallBit | slot.
func slotRef(class int, slot uint32) uint32 { return uint32(class)<<slotBits | slot }

func refClass(ref uint32) int   { return int(ref >> slotBits & 1) }
func refSlot(ref uint32) uint32 { return ref & slotMask }
func (it *Items) metaOf(ref uint32) *slotMeta {
	return &it.classes[refClass(ref)].meta[refSlot(ref)]
}

// slotMeta is what reclaim needs to know of a slot's item: its key and
// what decides whether the program still answers it.
type slotMeta struct {
	key      string
	entry    uint32 // its entry in item_buckets: bucket * bucketWays + way
	expire   uint64 // on the program's clock, margin taken off; 0: never
	cas      uint64
	storedNs int64
}

// ItemStats are counters of Items.
type ItemStats struct {
	Items    int    // keys in the map now
	Puts     uint64 // items written
	Deletes  uint64 // keys removed
	NoRoom   uint64 // new keys not held for want of a free slot
	Failures uint64 // map updates that failed: none since items are written through shared mappings (kept for the metric)
}

func newItems(buckets, slots, small, cfg, flush *ebpf.Map, clock int32, seed uint64) (*Items, error) {
	n := int(slots.MaxEntries())
	if slots.ValueSize() != itemSize || small.ValueSize() != smallItemSize || int(small.MaxEntries()) != n {
		return nil, fmt.Errorf("bpf: item slots of %d and %d bytes, want %d and %d: the program and bpf/answers.go disagree",
			slots.ValueSize(), small.ValueSize(), itemSize, smallItemSize)
	}
	if buckets.ValueSize() != bucketSize {
		return nil, fmt.Errorf("bpf: item buckets of %d bytes, want %d: the program and bpf/answers.go disagree", buckets.ValueSize(), bucketSize)
	}
	if flush.ValueSize() != flushSize {
		return nil, fmt.Errorf("bpf: flush state of %d bytes, want %d: the program and bpf/answers.go disagree", flush.ValueSize(), flushSize)
	}
	page := os.Getpagesize()
	mem, err := unix.Mmap(slots.FD(), 0, (n*itemSize+page-1)/page*page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("bpf: map the item slots: %w", err)
	}
	smem, err := unix.Mmap(small.FD(), 0, (n*smallItemSize+page-1)/page*page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		_ = unix.Munmap(mem)
		return nil, fmt.Errorf("bpf: map the small item slots: %w", err)
	}
	nb := int(buckets.MaxEntries())
	bmem, err := unix.Mmap(buckets.FD(), 0, (nb*bucketSize+page-1)/page*page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		_ = unix.Munmap(mem)
		_ = unix.Munmap(smem)
		return nil, fmt.Errorf("bpf: map the item buckets: %w", err)
	}
	fmem, err := unix.Mmap(flush.FD(), 0, page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		_ = unix.Munmap(mem)
		_ = unix.Munmap(smem)
		_ = unix.Munmap(bmem)
		return nil, fmt.Errorf("bpf: map the flush state: %w", err)
	}
	it := &Items{buckets: bmem, nbuckets: uint64(nb), seed: seed, flush: fmem, flushMap: flush, cfgMap: cfg,
		slotOf: make(map[string]uint32, n), clock: clock, stop: make(chan struct{}), done: make(chan struct{})}
	it.classes[classBig] = slotClass{mem: mem, size: itemSize, free: make([]uint32, 0, n), meta: make([]slotMeta, n)}
	it.classes[classSmall] = slotClass{mem: smem, size: smallItemSize, free: make([]uint32, 0, n), meta: make([]slotMeta, n)}
	if clock != unix.CLOCK_TAI {
		// The monotonic clock drifts from the wall clock by up to
		// clockDriftMax between two checks without a rebase.
		it.margin = clockDriftMax
	}
	for i := n - 1; i >= 0; i-- {
		for c := range it.classes {
			it.classes[c].free = append(it.classes[c].free, uint32(i))
		}
	}
	it.flushPast, it.flushAt = math.MinInt64, -1
	it.offset = clockOffset(clock)
	it.setFlush()
	go it.watchClock()
	return it, nil
}

// seqWrite writes the spans (byte ranges [from, to), whole 8-byte words
// from byte 8 on) of src over dst, in place, between two steps of the
// sequence count in dst's first 4 bytes (struct item and struct
// flush_state in the C source): odd while it writes, even again after.
// dst is 8-byte aligned.
//
// The counts are Go's atomic stores, sequentially consistent, which the
// compiler moves no other memory access across. On x86 (orderedStores)
// the CPU makes stores visible in program order, so the words between
// them are a plain copy; elsewhere every word is an atomic store too, so
// that each becomes visible after the odd count and before the even one
// (a plain copy may not: on arm64 and ppc64le a store after a
// store-release can be seen before it). The program reads the count
// before and after its copy with loads the CPU keeps in order (x86) or
// atomic operations (full barriers), so a run that reads the same even
// count both times copied no byte of this write. The bytes keep their
// memory order (native endianness both ways). Called with mu held: one
// writer.
func seqWrite(dst, src []byte, spans ...[2]int) {
	seq := (*uint32)(unsafe.Pointer(&dst[0]))
	n := atomic.LoadUint32(seq)
	atomic.StoreUint32(seq, n+1)
	for _, sp := range spans {
		d, s := dst[sp[0]:sp[1]], src[sp[0]:sp[1]]
		if orderedStores {
			copy(d, s)
			continue
		}
		for off := 0; off+8 <= len(s); off += 8 {
			atomic.StoreUint64((*uint64)(unsafe.Pointer(&d[off])), binary.NativeEndian.Uint64(s[off:]))
		}
	}
	atomic.StoreUint32(seq, n+2)
}

// orderedStores: the CPU makes plain stores visible in program order
// (x86's total store order).
var orderedStores = runtime.GOARCH == "amd64" || runtime.GOARCH == "386"

// writeSlot writes the item in b (metadata, then the memcached reply of
// mcLen bytes, rounded up to words) into the slot ref with seqWrite.
func (it *Items) writeSlot(ref uint32, b []byte, mcLen int) {
	c := &it.classes[refClass(ref)]
	slot := int(refSlot(ref))
	seqWrite(c.mem[slot*c.size:(slot+1)*c.size], b, [2]int{itemOffBody, itemOffMC + (mcLen+7)&^7})
}

// bucketEntry is the entry e of item_buckets (bucket * bucketWays + way).
func (it *Items) bucketEntry(e uint32) *uint64 {
	return (*uint64)(unsafe.Pointer(&it.buckets[int(e)*8]))
}

// freeEntry finds an empty entry for a key of hash h in its bucket: false
// when the bucket is full or holds an entry with the key's tag (the
// program could not tell the two keys' entries apart).
func (it *Items) freeEntry(h uint64) (uint32, bool) {
	b := uint32(h & (it.nbuckets - 1))
	tag := tagOf(h)
	e, found := uint32(0), false
	for w := range uint32(bucketWays) {
		v := atomic.LoadUint64(it.bucketEntry(b*bucketWays + w))
		if v&tagMask == tag {
			return 0, false
		}
		if v == 0 && !found {
			e, found = b*bucketWays+w, true
		}
	}
	return e, found
}

// Items returns the program's item map, or nil when Options.AnswerItems
// was 0.
func (p *Program) Items() *Items { return p.items }

// clockOffset is the unix time minus clock (the program's: see
// pickClock), in ns: the wall clock read between two readings of the
// other, best of three, so that a thread preempted between its reads does
// not look like a clock jump. CLOCK_TAI is the wall clock plus a whole
// number of seconds: its offset is rounded to them, exact.
func clockOffset(clock int32) int64 {
	best, off := int64(math.MaxInt64), int64(0)
	for range 3 {
		var m1, w, m2 unix.Timespec
		_ = unix.ClockGettime(clock, &m1)
		_ = unix.ClockGettime(unix.CLOCK_REALTIME, &w)
		_ = unix.ClockGettime(clock, &m2)
		if gap := m2.Nano() - m1.Nano(); gap < best {
			best, off = gap, w.Nano()-(m1.Nano()+gap/2)
		}
	}
	if clock == unix.CLOCK_TAI {
		s := int64(time.Second)
		if off < 0 {
			return -((-off + s/2) / s * s)
		}
		return (off + s/2) / s * s
	}
	return off
}

// clockNow reads the program's clock.
func (it *Items) clockNow() uint64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(it.clock, &ts)
	return uint64(ts.Nano())
}

// mono turns a unix time in ns into the program's clock; a time before
// the clock's start is 0. The comparison comes before the subtraction:
// the store passes math.MinInt64 for "no flush", and MinInt64 minus the
// offset wraps around to a time far in the future, which flushed every
// item.
func (it *Items) mono(unixNs int64) uint64 {
	if unixNs <= it.offset {
		return 0
	}
	return uint64(unixNs - it.offset)
}

// expireMono turns an exptime (unix seconds, 0: never) into the item's
// deadline on the program's clock, less the margin, where 0 means never.
// An exptime before the clock's start is 1, long past, not 0: mono's
// floor would make an item given a past or negative exptime (1, -1) live
// forever. An exptime whose ns do not fit an int64 (after 2262) is never,
// as the store, which compares seconds, never reaches it either.
func (it *Items) expireMono(exptime int64) uint64 {
	if exptime == 0 || exptime > math.MaxInt64/int64(time.Second) {
		return 0
	}
	if exptime < math.MinInt64/int64(time.Second) {
		return 1
	}
	return max(it.early(it.mono(exptime*int64(time.Second))), 1)
}

// early takes the margin off a deadline on the program's clock.
func (it *Items) early(d uint64) uint64 {
	return d - min(d, uint64(it.margin))
}

// unixStored is a unix ns time as the program compares it with the flush
// state (stored_ns, past, at): as is, and 0 for a time before 1970 (the
// store's "no flush" is math.MinInt64).
func unixStored(ns int64) uint64 { return uint64(max(ns, 0)) }

// Configure turns answering on or off and sets the bounds the program
// applies: the amplification factor (0 or less: none) and the interface
// MTU.
func (it *Items) Configure(on bool, amp, mtu int) error {
	it.mu.Lock()
	defer it.mu.Unlock()
	if it.broken && on {
		return errors.New("bpf: answers are off: the program is closed")
	}
	v := uint32(0)
	if on {
		v = 1
	}
	binary.LittleEndian.PutUint32(it.cfg[0:], v)
	binary.LittleEndian.PutUint32(it.cfg[4:], uint32(max(amp, 0)))
	binary.LittleEndian.PutUint32(it.cfg[8:], uint32(max(mtu, 0)))
	return it.writeConfig()
}

func (it *Items) writeConfig() error {
	if err := it.cfgMap.Put(uint32(0), it.cfg[:]); err != nil {
		return fmt.Errorf("bpf: write answer config: %w", err)
	}
	return nil
}

// Put writes the item under key: value, memcached flags, CAS, expiry
// (unix seconds, 0: never) and when it was stored (unix ns, for flush_all),
// or removes key when the item cannot be held.
func (it *Items) Put(key string, value []byte, flags uint32, cas uint64, exptime, storedNs int64) {
	it.mu.Lock()
	defer it.mu.Unlock()
	if it.broken {
		return
	}
	if len(key) == 0 || len(key) > AnswerKeyMax || len(value) > AnswerValueMax {
		it.deleteLocked(key)
		return
	}
	b := it.buf[:]
	clear(b[:itemOffMC])
	expire := it.expireMono(exptime)
	binary.LittleEndian.PutUint64(b[itemOffExpire:], expire)
	binary.LittleEndian.PutUint64(b[itemOffStored:], unixStored(storedNs))
	binary.LittleEndian.PutUint64(b[itemOffCAS:], cas)
	binary.LittleEndian.PutUint32(b[itemOffFlags:], flags)
	binary.LittleEndian.PutUint16(b[itemOffLen:], uint16(len(value)))
	b[itemOffKeyLen] = byte(len(key))
	binary.LittleEndian.PutUint16(b[itemOffDataSum:], onesSum(value))
	// The memcached get reply after its frame header, whole: "VALUE ", the
	// key, the suffix " <flags> <bytes>\r\n", the data, "\r\nEND\r\n".
	mc := b[itemOffMC:itemOffMC:itemSize]
	mc = append(mc, "VALUE "...)
	mc = append(mc, key...)
	mc = append(mc, ' ')
	mc = strconv.AppendUint(mc, uint64(flags), 10)
	mc = append(mc, ' ')
	mc = strconv.AppendUint(mc, uint64(len(value)), 10)
	mc = append(mc, '\r', '\n')
	head := len(mc)
	b[itemOffSufLen] = byte(head - 6 - len(key))
	mc = append(mc, value...)
	mc = append(mc, "\r\nEND\r\n"...)
	binary.LittleEndian.PutUint16(b[itemOffMCSum:], onesSum(mc))
	binary.LittleEndian.PutUint16(b[itemOffMCLen:], uint16(len(mc)))
	binary.LittleEndian.PutUint16(b[itemOffMCHead:], uint16(head))
	class := classBig
	if (len(mc)+31)&^31 <= smallReplyMax {
		class = classSmall
	}

	ref, had := it.slotOf[key]
	if had && refClass(ref) == class {
		it.writeSlot(ref, b, len(mc))
	} else {
		if len(it.classes[class].free) == 0 {
			it.reclaim() // (which may remove key itself)
		}
		if len(it.classes[class].free) == 0 {
			it.deleteLocked(key)
			it.noRoom.Add(1)
			return
		}
		var entry uint32
		var tag uint64
		if ref, had = it.slotOf[key]; had {
			entry = it.metaOf(ref).entry
			tag = atomic.LoadUint64(it.bucketEntry(entry)) & tagMask
		} else {
			h := keyHash(it.seed, key)
			var ok bool
			if entry, ok = it.freeEntry(h); !ok {
				it.noRoom.Add(1)
				return
			}
			tag = tagOf(h)
		}
		c := &it.classes[class]
		nref := slotRef(class, c.free[len(c.free)-1])
		c.free = c.free[:len(c.free)-1]
		it.writeSlot(nref, b, len(mc))
		// The slot is whole before the entry points to it.
		atomic.StoreUint64(it.bucketEntry(entry), tag|uint64(nref))
		if had {
			it.freeSlot(ref)
		}
		it.slotOf[key] = nref
		*it.metaOf(nref) = slotMeta{entry: entry}
		ref = nref
	}
	m := it.metaOf(ref)
	*m = slotMeta{key: key, entry: m.entry, expire: expire, cas: cas, storedNs: storedNs}
	if expire != 0 {
		it.nextDead = min(it.nextDead, expire)
	}
	it.puts.Add(1)
}

// reclaim takes back the slots of the items the program no longer
// answers, expired or flushed, when the map is full: the store removes
// such items only when it finds them, and until then their slots would
// keep new keys out. A sweep walks
// every slot, so it runs only when it may find something: after a flush
// or a rebase, or once the earliest deadline it saw has passed. Called
// with mu held.
func (it *Items) reclaim() {
	now := it.clockNow()
	if it.sweptOnce && it.sweptGen == it.flushGen && now < it.nextDead {
		return
	}
	it.sweptOnce, it.sweptGen, it.nextDead = true, it.flushGen, math.MaxUint64
	atClock := it.flushAtClock()
	for key, ref := range it.slotOf {
		m := it.metaOf(ref)
		dead := m.expire != 0 && now >= m.expire
		dead = dead || m.cas <= it.flushCAS || m.storedNs <= it.flushPast ||
			(now >= atClock && m.storedNs <= it.flushAt && it.flushAt >= 0)
		if dead {
			it.deleteLocked(key)
		} else if m.expire != 0 {
			it.nextDead = min(it.nextDead, m.expire)
		}
	}
}

// onesSum is the 16-bit one's complement sum of b as the program sums
// frame bytes: 16-bit words in memory (little-endian) order from b's
// start, a last odd byte as the low byte of a word. That is the
// network-order sum (the complement of codec.Checksum) with its bytes
// swapped.
func onesSum(b []byte) uint16 { return bits.ReverseBytes16(^codec.Checksum(b)) }

// Delete removes key, if it is held.
func (it *Items) Delete(key string) {
	it.mu.Lock()
	defer it.mu.Unlock()
	it.deleteLocked(key)
}

func (it *Items) deleteLocked(key string) {
	ref, ok := it.slotOf[key]
	if !ok {
		return
	}
	atomic.StoreUint64(it.bucketEntry(it.metaOf(ref).entry), 0)
	delete(it.slotOf, key)
	it.freeSlot(ref)
	it.deletes.Add(1)
}

// freeSlot gives the slot ref back. Called with mu held.
func (it *Items) freeSlot(ref uint32) {
	c := &it.classes[refClass(ref)]
	c.meta[refSlot(ref)] = slotMeta{}
	c.free = append(c.free, refSlot(ref))
}

// Err reports why answering was turned off, if it was.
func (it *Items) Err() error {
	it.mu.Lock()
	defer it.mu.Unlock()
	if !it.broken {
		return nil
	}
	return fmt.Errorf("bpf: answers off: %w", it.err)
}

// Flush applies flush_all as the store records it: items with a CAS up to
// cas, or stored at or before past (unix ns), are gone; from at (unix ns)
// on, so are items stored at or before at (at < 0 or math.MaxInt64: no
// pending flush).
func (it *Items) Flush(cas uint64, past, at int64) error {
	it.mu.Lock()
	defer it.mu.Unlock()
	if it.broken {
		return it.err
	}
	it.flushCAS, it.flushPast, it.flushAt = cas, past, at
	it.setFlush()
	return nil
}

// flushAtClock is the moment a pending flush takes effect, on the
// program's clock less the margin; noFlushAt for none.
func (it *Items) flushAtClock() uint64 {
	if it.flushAt < 0 || it.flushAt == math.MaxInt64 {
		return noFlushAt
	}
	return it.early(it.mono(it.flushAt))
}

// setFlush writes the flush state the program reads (struct flush_state),
// in place behind its sequence count: the program sees the three values
// of one Flush, never a mix. past and at stay in unix ns, as items'
// stored times are (compared with each other only); the moment a pending
// flush takes effect goes on the program's clock as of the current
// offset. Called with mu held.
func (it *Items) setFlush() {
	it.flushGen++
	var b [flushSize]byte
	binary.LittleEndian.PutUint64(b[8:], it.flushCAS)
	binary.LittleEndian.PutUint64(b[16:], unixStored(it.flushPast))
	at := noFlushAt
	if it.flushAt >= 0 && it.flushAt != math.MaxInt64 {
		at = uint64(it.flushAt)
	}
	binary.LittleEndian.PutUint64(b[24:], at)
	binary.LittleEndian.PutUint64(b[32:], it.flushAtClock())
	seqWrite(it.flush, b[:], [2]int{8, flushSize})
}

// Stats reads the counters.
func (it *Items) Stats() ItemStats {
	it.mu.Lock()
	n := len(it.slotOf)
	it.mu.Unlock()
	return ItemStats{Items: n, Puts: it.puts.Load(), Deletes: it.deletes.Load(),
		NoRoom: it.noRoom.Load()}
}

// watchClock watches the wall clock: if it jumps, the expiry deadlines
// written so far (on the monotonic clock) no longer match the store's, so
// every key is removed.
func (it *Items) watchClock() {
	defer close(it.done)
	t := time.NewTicker(clockEvery)
	defer t.Stop()
	for {
		select {
		case <-it.stop:
			return
		case <-t.C:
			it.checkClock()
		}
	}
}

func (it *Items) checkClock() {
	off := clockOffset(it.clock)
	it.mu.Lock()
	defer it.mu.Unlock()
	d := time.Duration(off - it.offset)
	if d > -clockDriftMax && d < clockDriftMax {
		return
	}
	for key := range it.slotOf {
		it.deleteLocked(key)
	}
	it.offset = off
	// The flush state was written on the old offset: a pending flush would
	// take effect in the program as far from the store's moment as the
	// clock jumped. Write it again on the new one.
	it.setFlush()
}

// close stops the clock watcher and unmaps the slots.
func (it *Items) close() {
	close(it.stop)
	<-it.done
	it.mu.Lock()
	defer it.mu.Unlock()
	it.broken = true // nothing writes to the slots any more
	if it.err == nil {
		it.err = errClosed
	}
	for c := range it.classes {
		_ = unix.Munmap(it.classes[c].mem)
		it.classes[c].mem = nil
	}
	_ = unix.Munmap(it.buckets)
	_ = unix.Munmap(it.flush)
	it.buckets, it.flush = nil, nil
}
