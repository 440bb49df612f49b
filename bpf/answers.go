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
	answerCfgSize = 40
	noFlushAt     = ^uint64(0)
	clockEvery    = time.Second
	clockDriftMax = 10 * time.Millisecond
)

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
// behind a sequence count the program checks around its copy (writeSlot),
// so it uses one version of a slot, whole, and a write costs no system
// call. A Put of a key that has a slot rewrites it in place; a new
// key gets a free slot, filled before the key points to it. A slot freed
// by a Delete may go to another key at once: a program run that read the
// old index finds another key in it and leaves the request to userspace.
// When no slot is free, or the key or value is over the limits, the key
// is not held (removed if it was): the program leaves its GETs to
// userspace, which is always right.
type Items struct {
	mu     sync.Mutex
	index  *ebpf.Map // keys over shortKeyMax bytes
	short  *ebpf.Map // keys of up to shortKeyMax bytes
	slots  []byte    // the items map, mapped: itemSize bytes a slot
	cfgMap *ebpf.Map
	cap    int
	slotOf map[string]uint32
	free   []uint32
	cfg    [answerCfgSize]byte
	offset int64 // unix ns minus monotonic ns, as of the last check
	// The flush state as Flush was given it (unix ns), so that it can be
	// written again on the program's clock when the offset changes.
	flushCAS           uint64
	flushPast, flushAt int64
	buf                [itemSize]byte
	key                [itemKeySize]byte
	broken             bool  // a map update failed: answering is off for good
	err                error // why

	stop chan struct{}
	done chan struct{}

	puts, deletes, noRoom, failures atomic.Uint64
}

// ItemStats are counters of Items.
type ItemStats struct {
	Items    int    // keys in the map now
	Puts     uint64 // items written
	Deletes  uint64 // keys removed
	NoRoom   uint64 // new keys not held for want of a free slot
	Failures uint64 // map updates that failed (answers are off after one)
}

func newItems(index, short, slots, cfg *ebpf.Map) (*Items, error) {
	n := int(slots.MaxEntries())
	if slots.ValueSize() != itemSize {
		return nil, fmt.Errorf("bpf: item slots of %d bytes, want %d: the program and bpf/answers.go disagree", slots.ValueSize(), itemSize)
	}
	page := os.Getpagesize()
	mem, err := unix.Mmap(slots.FD(), 0, (n*itemSize+page-1)/page*page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("bpf: map the item slots: %w", err)
	}
	it := &Items{index: index, short: short, slots: mem, cfgMap: cfg, cap: int(index.MaxEntries()),
		slotOf: make(map[string]uint32, index.MaxEntries()), free: make([]uint32, 0, n),
		stop: make(chan struct{}), done: make(chan struct{})}
	for i := n - 1; i >= 0; i-- {
		it.free = append(it.free, uint32(i))
	}
	it.flushPast, it.flushAt = math.MinInt64, -1
	it.offset = clockOffset()
	it.setFlush()
	go it.watchClock()
	return it, nil
}

// writeSlot writes b (from itemOffBody on) into slot, in place, between
// two steps of its sequence count (struct item in the C source): odd while
// it writes, even again after. Go's atomic stores are full barriers, so a
// program run that reads the same even count before and after its copy
// copied no byte of this write. Called with mu held: one writer.
func (it *Items) writeSlot(slot uint32, b []byte) {
	s := it.slots[int(slot)*itemSize : int(slot+1)*itemSize]
	seq := (*uint32)(unsafe.Pointer(&s[0]))
	n := atomic.LoadUint32(seq)
	atomic.StoreUint32(seq, n+1)
	copy(s[itemOffBody:], b[itemOffBody:])
	atomic.StoreUint32(seq, n+2)
}

// Items returns the program's item map, or nil when Options.AnswerItems
// was 0.
func (p *Program) Items() *Items { return p.items }

// clockOffset is the unix time minus the monotonic clock (the one
// bpf_ktime_get_ns reads), in ns: the wall clock read between two
// readings of the monotonic one, best of three, so that a thread
// preempted between its reads does not look like a clock jump.
func clockOffset() int64 {
	best, off := int64(math.MaxInt64), int64(0)
	for range 3 {
		var m1, w, m2 unix.Timespec
		_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &m1)
		_ = unix.ClockGettime(unix.CLOCK_REALTIME, &w)
		_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &m2)
		if gap := m2.Nano() - m1.Nano(); gap < best {
			best, off = gap, w.Nano()-(m1.Nano()+gap/2)
		}
	}
	return off
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
// deadline on the program's clock, where 0 means never. An exptime before
// the clock's start is 1, long past, not 0: mono's floor would make an
// item given a past or negative exptime (1, -1) live forever. An exptime
// whose ns do not fit an int64 (after 2262) is never, as the store, which
// compares seconds, never reaches it either.
func (it *Items) expireMono(exptime int64) uint64 {
	if exptime == 0 || exptime > math.MaxInt64/int64(time.Second) {
		return 0
	}
	if exptime < math.MinInt64/int64(time.Second) {
		return 1
	}
	return max(it.mono(exptime*int64(time.Second)), 1)
}

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
		if len(it.free) == 0 {
			it.noRoom.Add(1)
			return
		}
		slot = it.free[len(it.free)-1]
	}
	b := it.buf[:]
	clear(b[:itemOffData])
	putKey(b[itemOffKey:], key)
	binary.LittleEndian.PutUint64(b[itemOffExpire:], it.expireMono(exptime))
	binary.LittleEndian.PutUint64(b[itemOffStored:], it.mono(storedNs))
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
	it.puts.Add(1)
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
	it.flushCAS, it.flushPast, it.flushAt = cas, past, at
	it.setFlush()
	if err := it.writeConfig(); err != nil {
		it.fail(err)
		return err
	}
	return nil
}

// setFlush puts the flush state into cfg, on the program's clock as of
// the current offset. Called with mu held.
func (it *Items) setFlush() {
	binary.LittleEndian.PutUint64(it.cfg[16:], it.flushCAS)
	binary.LittleEndian.PutUint64(it.cfg[24:], it.mono(it.flushPast))
	a := noFlushAt
	if it.flushAt >= 0 && it.flushAt != math.MaxInt64 {
		a = it.mono(it.flushAt)
	}
	binary.LittleEndian.PutUint64(it.cfg[32:], a)
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
	off := clockOffset()
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
	// clock jumped, and a past one would cover other items than the
	// store's. Write it again on the new one.
	it.setFlush()
	if err := it.writeConfig(); err != nil {
		it.fail(err)
	}
}

// close stops the clock watcher and unmaps the slots.
func (it *Items) close() {
	close(it.stop)
	<-it.done
	it.mu.Lock()
	defer it.mu.Unlock()
	it.broken = true // nothing writes to the slots any more
	_ = unix.Munmap(it.slots)
	it.slots = nil
}
