package bpf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"os"
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
	// about 15 MiB of kernel memory for the slots and the two indexes.
	DefaultAnswerItems = 8192
)

// Layout of struct item (a sequence count, then struct item_body) and
// struct item_key in the C source.
const (
	itemOffBody    = 8 // after the sequence count and its padding
	itemOffExpire  = itemOffBody
	itemOffStored  = itemOffExpire + 8
	itemOffCAS     = itemOffStored + 8
	itemOffFlags   = itemOffCAS + 8
	itemOffLen     = itemOffFlags + 4
	itemOffSufLen  = itemOffLen + 2
	itemOffDataSum = itemOffSufLen + 2
	itemOffKey     = itemOffDataSum + 8
	itemKeySize    = (1 + AnswerKeyMax + 7) &^ 7 // length byte, key, zero padding to 8 bytes
	itemOffSuffix  = itemOffKey + itemKeySize
	itemSuffixMax  = 24
	itemOffData    = itemOffSuffix + itemSuffixMax
	itemSize       = itemOffData + AnswerValueMax
	// Keys of up to shortKeyMax bytes are indexed by the first
	// shortKeySize bytes of their item_key (ITEM_SKEY_MAX, struct
	// item_skey), longer ones by all of it.
	shortKeyMax   = 47
	shortKeySize  = 1 + shortKeyMax
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

// answerSizes returns the entries of item_index and items for n items:
// a slot for each key.
func answerSizes(n int) (index, slots uint32) {
	if n <= 0 {
		return 1, 1
	}
	return uint32(n), uint32(n)
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
// An item lives in a slot of the items array, and item_index points its
// key to the slot. Slots are written in place through a shared mapping,
// behind a sequence count the program checks around its copy (seqWrite),
// so it uses one version of a slot, whole, and a write costs no system
// call. A Put of a key that has a slot rewrites it in place; a new
// key gets a free slot, filled before the key points to it. A slot freed
// by a Delete may go to another key at once: a program run that read the
// old index finds another key in it and leaves the request to userspace.
// When no slot is free, the slots of items the program would no longer
// answer (expired, or covered by flush_all) are taken back first (reclaim);
// when none is, or the key or value is over the limits, the key
// is not held (removed if it was): the program leaves its GETs to
// userspace, which is always right.
type Items struct {
	mu       sync.Mutex
	index    *ebpf.Map // keys over shortKeyMax bytes
	short    *ebpf.Map // keys of up to shortKeyMax bytes
	slots    []byte    // the items map, mapped: itemSize bytes a slot
	flush    []byte    // the flush map, mapped: struct flush_state
	flushMap *ebpf.Map
	cfgMap   *ebpf.Map
	cap      int
	slotOf   map[string]uint32
	free     []uint32
	meta     []slotMeta // of each slot in use, by slot
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
	key       [itemKeySize]byte
	broken    bool  // a map update failed: answering is off for good
	err       error // why

	stop chan struct{}
	done chan struct{}

	puts, deletes, noRoom, failures atomic.Uint64
}

// slotMeta is what reclaim needs to know of a slot's item: its key and
// what decides whether the program still answers it.
type slotMeta struct {
	key      string
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
	Failures uint64 // map updates that failed (answers are off after one)
}

func newItems(index, short, slots, cfg, flush *ebpf.Map, clock int32) (*Items, error) {
	n := int(slots.MaxEntries())
	if slots.ValueSize() != itemSize {
		return nil, fmt.Errorf("bpf: item slots of %d bytes, want %d: the program and bpf/answers.go disagree", slots.ValueSize(), itemSize)
	}
	if flush.ValueSize() != flushSize {
		return nil, fmt.Errorf("bpf: flush state of %d bytes, want %d: the program and bpf/answers.go disagree", flush.ValueSize(), flushSize)
	}
	page := os.Getpagesize()
	mem, err := unix.Mmap(slots.FD(), 0, (n*itemSize+page-1)/page*page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("bpf: map the item slots: %w", err)
	}
	fmem, err := unix.Mmap(flush.FD(), 0, page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		_ = unix.Munmap(mem)
		return nil, fmt.Errorf("bpf: map the flush state: %w", err)
	}
	it := &Items{index: index, short: short, slots: mem, flush: fmem, flushMap: flush, cfgMap: cfg, cap: int(index.MaxEntries()),
		slotOf: make(map[string]uint32, index.MaxEntries()), free: make([]uint32, 0, n), meta: make([]slotMeta, n),
		clock: clock, stop: make(chan struct{}), done: make(chan struct{})}
	if clock != unix.CLOCK_TAI {
		// The monotonic clock drifts from the wall clock by up to
		// clockDriftMax between two checks without a rebase.
		it.margin = clockDriftMax
	}
	for i := n - 1; i >= 0; i-- {
		it.free = append(it.free, uint32(i))
	}
	it.flushPast, it.flushAt = math.MinInt64, -1
	it.offset = clockOffset(clock)
	it.setFlush()
	go it.watchClock()
	return it, nil
}

// seqWrite writes src over dst from byte 8 on, in place, between two
// steps of the sequence count in dst's first 4 bytes (struct item and
// struct flush_state in the C source): odd while it writes, even again
// after. dst is 8-byte aligned and src a whole number of 8-byte words.
//
// Every store is one of Go's atomic stores, which are sequentially
// consistent: each becomes visible in program order, after the odd count
// and before the even one, on every architecture Go runs on (a plain
// copy may not: on arm64 and ppc64le a store after a store-release can be
// seen before it). The program reads the count with atomic operations
// (full barriers) before and after its copy, so a run that reads the
// same even count both times copied no byte of this write. The bytes
// keep their memory order (native endianness both ways). Called with mu
// held: one writer.
func seqWrite(dst, src []byte) {
	seq := (*uint32)(unsafe.Pointer(&dst[0]))
	n := atomic.LoadUint32(seq)
	atomic.StoreUint32(seq, n+1)
	dst = dst[:len(src)]
	for off := 8; off+8 <= len(src); off += 8 {
		atomic.StoreUint64((*uint64)(unsafe.Pointer(&dst[off])), binary.NativeEndian.Uint64(src[off:]))
	}
	atomic.StoreUint32(seq, n+2)
}

// writeSlot writes b (from itemOffBody on, rounded up to whole words)
// into slot with seqWrite.
func (it *Items) writeSlot(slot uint32, b []byte) {
	seqWrite(it.slots[int(slot)*itemSize:int(slot+1)*itemSize], b[:(len(b)+7)&^7])
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
		return errors.New("bpf: answers were turned off after a failed map update")
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
	slot, had := it.slotOf[key]
	if !had {
		if len(it.free) == 0 && !it.reclaim() {
			it.noRoom.Add(1)
			return
		}
		slot = it.free[len(it.free)-1]
	}
	b := it.buf[:]
	clear(b[:itemOffData])
	putKey(b[itemOffKey:], key)
	expire := it.expireMono(exptime)
	binary.LittleEndian.PutUint64(b[itemOffExpire:], expire)
	binary.LittleEndian.PutUint64(b[itemOffStored:], unixStored(storedNs))
	binary.LittleEndian.PutUint64(b[itemOffCAS:], cas)
	binary.LittleEndian.PutUint32(b[itemOffFlags:], flags)
	binary.LittleEndian.PutUint16(b[itemOffLen:], uint16(len(value)))
	binary.LittleEndian.PutUint16(b[itemOffDataSum:], onesSum(value))
	suf := b[itemOffSuffix : itemOffSuffix : itemOffSuffix+itemSuffixMax]
	suf = append(suf, ' ')
	suf = strconv.AppendUint(suf, uint64(flags), 10)
	suf = append(suf, ' ')
	suf = strconv.AppendUint(suf, uint64(len(value)), 10)
	suf = append(suf, '\r', '\n')
	b[itemOffSufLen] = byte(len(suf))
	copy(b[itemOffData:], value)
	it.writeSlot(slot, b[:itemOffData+len(value)])
	if !had {
		copy(it.key[:], b[itemOffKey:itemOffKey+itemKeySize])
		m, k := it.indexFor(it.key[:], key)
		if err := m.Put(k, slot); err != nil {
			it.fail(fmt.Errorf("index key: %w", err))
			return
		}
		it.free = it.free[:len(it.free)-1]
		it.slotOf[key] = slot
	}
	it.meta[slot] = slotMeta{key: key, expire: expire, cas: cas, storedNs: storedNs}
	if expire != 0 {
		it.nextDead = min(it.nextDead, expire)
	}
	it.puts.Add(1)
}

// reclaim takes back the slots of the items the program no longer
// answers, expired or flushed, when the map is full: the store removes
// such items only when it finds them, and until then their slots would
// keep new keys out. It reports whether a slot is free. A sweep walks
// every slot, so it runs only when it may find something: after a flush
// or a rebase, or once the earliest deadline it saw has passed. Called
// with mu held.
func (it *Items) reclaim() bool {
	now := it.clockNow()
	if it.sweptOnce && it.sweptGen == it.flushGen && now < it.nextDead {
		return false
	}
	it.sweptOnce, it.sweptGen, it.nextDead = true, it.flushGen, math.MaxUint64
	atClock := it.flushAtClock()
	for key, slot := range it.slotOf {
		m := &it.meta[slot]
		dead := m.expire != 0 && now >= m.expire
		dead = dead || m.cas <= it.flushCAS || m.storedNs <= it.flushPast ||
			(now >= atClock && m.storedNs <= it.flushAt && it.flushAt >= 0)
		if dead {
			it.deleteLocked(key)
			if it.broken {
				return false
			}
		} else if m.expire != 0 {
			it.nextDead = min(it.nextDead, m.expire)
		}
	}
	return len(it.free) > 0
}

// putKey writes key as struct item_key: its length, then its bytes (the
// zero padding after them is the caller's).
func putKey(dst []byte, key string) {
	dst[0] = byte(len(key))
	copy(dst[1:], key)
}

// indexFor returns the index map of key, the short one up to shortKeyMax
// bytes, and k, key's struct item_key, cut to the form that map takes.
func (it *Items) indexFor(k []byte, key string) (*ebpf.Map, []byte) {
	if len(key) <= shortKeyMax {
		return it.short, k[:shortKeySize]
	}
	return it.index, k[:itemKeySize]
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
	slot, ok := it.slotOf[key]
	if !ok {
		return
	}
	var k [itemKeySize]byte
	putKey(k[:], key)
	m, ik := it.indexFor(k[:], key)
	if err := m.Delete(ik); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		// The program could go on answering the old value: stop answering.
		it.fail(fmt.Errorf("remove key: %w", err))
		return
	}
	delete(it.slotOf, key)
	it.meta[slot] = slotMeta{}
	it.free = append(it.free, slot)
	it.deletes.Add(1)
}

// fail turns answering off for good: the map may no longer match the
// store. Called with mu held.
func (it *Items) fail(err error) {
	it.failures.Add(1)
	if it.broken {
		return
	}
	it.broken = true
	binary.LittleEndian.PutUint32(it.cfg[0:], 0)
	if werr := it.writeConfig(); werr != nil {
		err = errors.Join(err, werr)
	}
	it.err = err
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
	seqWrite(it.flush, b[:])
}

// Stats reads the counters.
func (it *Items) Stats() ItemStats {
	it.mu.Lock()
	n := len(it.slotOf)
	it.mu.Unlock()
	return ItemStats{Items: n, Puts: it.puts.Load(), Deletes: it.deletes.Load(),
		NoRoom: it.noRoom.Load(), Failures: it.failures.Load()}
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
	_ = unix.Munmap(it.slots)
	_ = unix.Munmap(it.flush)
	it.slots, it.flush = nil, nil
}
