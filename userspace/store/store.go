package store

import (
	"math"
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

// ItemOverhead is what an item counts against Config.MemoryLimit besides its
// key and value: the item header, the cache's node and its bookkeeping.
const ItemOverhead = 128

// Config configures a Store.
type Config struct {
	// MemoryLimit bounds keys+values+ItemOverhead per item, in bytes
	// (default 256 MiB).
	MemoryLimit int64
	// MaxItemSize is the largest value Set accepts (default 1 MiB).
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
}

// Vivify makes Incr create a missing key with Initial and Exptime.
type Vivify struct {
	Initial uint64
	Exptime int64
}

// Stats are the store's gauges and counters.
type Stats struct {
	Items      int64 // items held, expired ones not yet removed included
	Bytes      int64 // weight held: keys+values+ItemOverhead each
	LimitBytes int64 // Config.MemoryLimit
	Evictions  int64 // items removed to stay under the limit
	Expired    int64 // expired or flushed items removed when found
	TotalItems int64 // items stored since start
	Flushed    int64 // FlushAll calls
}

// item is immutable once it is in the table, except for the access fields
// and its place on the table's list.
type item struct {
	key      string // the table's copy, set when the item is stored
	value    []byte
	flags    uint32
	cas      uint64
	exptime  int64 // unix seconds, 0 = never
	storedNs int64 // when the value was stored, for FlushAll
	access   atomic.Int64
	fetched  atomic.Bool
	// prev and next place the item on the table's recency list.
	prev, next *item
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
	t       table
	mirror  atomic.Pointer[mirrorBox]
	now     func() time.Time
	maxItem int
	limit   int64
	cas     atomic.Uint64
	flush   atomic.Pointer[flush]
	flushMu sync.Mutex // orders FlushAll calls

	evictions atomic.Int64
	expired   atomic.Int64
	total     atomic.Int64
	flushed   atomic.Int64
}

// New returns an empty store.
func New(cfg Config) *Store {
	if cfg.MemoryLimit <= 0 {
		cfg.MemoryLimit = DefaultMemoryLimit
	}
	if cfg.MaxItemSize <= 0 {
		cfg.MaxItemSize = DefaultMaxItemSize
	}
	// An item's weight is a uint32 and must fit under the limit.
	cfg.MaxItemSize = int(min(int64(cfg.MaxItemSize), cfg.MemoryLimit/2, 1<<31))
	if cfg.Now == nil {
		cfg.Now = coarseNow
	}
	s := &Store{now: cfg.Now, maxItem: cfg.MaxItemSize, limit: cfg.MemoryLimit}
	s.t.init()
	return s
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

// put tells the mirror of it, the new version of key.
func (s *Store) put(key string, it *item) {
	if b := s.mirror.Load(); b != nil {
		b.m.Put(key, it.value, it.flags, it.cas, it.exptime, it.storedNs)
	}
}

// MaxItemSize is the largest value Set accepts.
func (s *Store) MaxItemSize() int { return s.maxItem }

// live reports whether it is visible at now.
func (s *Store) live(it *item, now time.Time) bool {
	if it.exptime != 0 && it.exptime <= now.Unix() {
		return false
	}
	if f := s.flush.Load(); f != nil {
		if it.cas <= f.cas || it.storedNs <= f.past {
			return false
		}
		if it.storedNs <= f.at && now.UnixNano() >= f.at {
			return false
		}
	}
	return true
}

// lookup returns the live item of key, removing a dead one it finds.
func (s *Store) lookup(key []byte, now time.Time) (*item, bool) {
	it, ok := s.t.get(key)
	if !ok {
		return nil, false
	}
	if !s.live(it, now) {
		s.removeDead(key, it)
		return nil, false
	}
	return it, true
}

// updateLive runs fn on key's item (with the table's own copy of the
// key) under the key's lock, if the key is present and its item live; a
// dead item found instead is removed (counted as expired) and fn is not
// called.
func (s *Store) updateLive(key []byte, now time.Time, fn func(k string, old *item) (*item, op)) {
	s.compute(key, true, func(k string, old *item, _ bool) (*item, op) {
		if !s.live(old, now) {
			s.expired.Add(1)
			return nil, opInvalidate
		}
		return fn(k, old)
	})
}

// removeDead removes it if key still maps to it.
func (s *Store) removeDead(key []byte, it *item) {
	s.compute(key, true, func(_ string, old *item, _ bool) (*item, op) {
		if old != it {
			return old, opCancel
		}
		s.expired.Add(1)
		return nil, opInvalidate
	})
}

func metaOf(it *item) Meta {
	return Meta{
		Flags:      it.flags,
		CAS:        it.cas,
		Exptime:    it.exptime,
		LastAccess: it.access.Load(),
		Fetched:    it.fetched.Load(),
		Size:       len(it.value),
	}
}

// markFetched records a read; it writes only what changed, so that hot keys
// read by many cores do not bounce a cache line on every read. The first
// read of an item in a second moves it to the front of the eviction order.
func (s *Store) markFetched(it *item, now time.Time) {
	sec := now.Unix()
	if last := it.access.Load(); last != sec && it.access.CompareAndSwap(last, sec) {
		s.t.lru.bump(it)
	}
	if !it.fetched.Load() {
		it.fetched.Store(true)
	}
}

// Get appends the value of key to dst, and marks the item fetched. It
// allocates nothing when cap(dst) suffices.
func (s *Store) Get(key []byte, dst []byte) (value []byte, m Meta, ok bool) {
	now := s.now()
	it, ok := s.lookup(key, now)
	if !ok {
		return dst, Meta{}, false
	}
	m = metaOf(it)
	s.markFetched(it, now)
	return append(dst, it.value...), m, true
}

// View returns the stored value of key itself, without a copy, and marks
// the item fetched. Stored values are never modified (every write stores
// a new item), so the slice stays valid and unchanging for as long as the
// caller holds it, whatever happens to the key; the caller must not write
// to it. It never allocates.
func (s *Store) View(key []byte) (value []byte, m Meta, ok bool) {
	now := s.now()
	it, ok := s.lookup(key, now)
	if !ok {
		return nil, Meta{}, false
	}
	s.markFetched(it, now)
	return it.value[:len(it.value):len(it.value)], metaOf(it), true
}

// GetInto copies the value of key into dst[:cap(dst)] if it fits, and marks
// the item fetched. It returns the value's length n; n > cap(dst) means the
// value did not fit: nothing was copied nor marked. It never allocates.
func (s *Store) GetInto(key []byte, dst []byte) (n int, m Meta, ok bool) {
	now := s.now()
	it, ok := s.lookup(key, now)
	if !ok {
		return 0, Meta{}, false
	}
	n = len(it.value)
	if n > cap(dst) {
		return n, metaOf(it), true
	}
	m = metaOf(it)
	s.markFetched(it, now)
	copy(dst[:n], it.value)
	return n, m, true
}

// Now reads the store's clock (Config.Now), for callers that turn relative
// times into the absolute exptimes the store takes.
func (s *Store) Now() time.Time { return s.now() }

// Peek is Get without marking the item fetched or accessed.
func (s *Store) Peek(key []byte, dst []byte) (value []byte, m Meta, ok bool) {
	it, ok := s.lookup(key, s.now())
	if !ok {
		return dst, Meta{}, false
	}
	return append(dst, it.value...), metaOf(it), true
}

// expiredAt reports whether an item with exptime is dead on arrival.
func expiredAt(exptime int64, now time.Time) bool {
	return exptime < 0 || (exptime != 0 && exptime <= now.Unix())
}

// Set stores value under key as mode says; cas, when not 0, must match the
// item's CAS. Append and Prepend keep the item's flags and exptime. An
// exptime in the past or negative deletes the key (a later get misses) but
// reports Stored.
func (s *Store) Set(key, value []byte, mode Mode, flags uint32, exptime int64, cas uint64) (Result, uint64) {
	if len(value) > s.maxItem {
		return TooLarge, 0
	}
	now := s.now()
	res := NotStored
	var newCAS uint64
	s.compute(key, false, func(k string, old *item, found bool) (*item, op) {
		if found && !s.live(old, now) {
			found = false
		}
		if cas != 0 {
			switch {
			case !found:
				res = NotFound
				return old, opCancel
			case old.cas != cas:
				res = Exists
				return old, opCancel
			}
		}
		it := &item{flags: flags, exptime: exptime}
		switch mode {
		case ModeAdd:
			if found {
				return old, opCancel
			}
		case ModeReplace:
			if !found {
				return old, opCancel
			}
		case ModeAppend, ModePrepend:
			if !found {
				return old, opCancel
			}
			if len(old.value)+len(value) > s.maxItem {
				res = TooLarge
				return old, opCancel
			}
			it.flags, it.exptime = old.flags, old.exptime
			v := make([]byte, 0, len(old.value)+len(value))
			if mode == ModeAppend {
				v = append(append(v, old.value...), value...)
			} else {
				v = append(append(v, value...), old.value...)
			}
			it.value = v
		}
		res = Stored
		if expiredAt(it.exptime, now) {
			newCAS = s.cas.Add(1) // numbered, as memcached numbers it, then gone
			if old != nil {
				return nil, opInvalidate
			}
			return old, opCancel
		}
		if it.value == nil {
			it.value = append(make([]byte, 0, len(value)), value...)
		}
		it.cas = s.cas.Add(1)
		it.storedNs = now.UnixNano()
		it.access.Store(now.Unix()) // storing is an access, as memcached counts it
		newCAS = it.cas
		s.put(k, it)
		return it, opWrite
	})
	if newCAS != 0 {
		s.total.Add(1)
	}
	return res, newCAS
}

// Delete removes key; cas, when not 0, must match the item's CAS.
func (s *Store) Delete(key []byte, cas uint64) Result {
	res := NotFound
	s.updateLive(key, s.now(), func(_ string, old *item) (*item, op) {
		if cas != 0 && old.cas != cas {
			res = Exists
			return old, opCancel
		}
		res = Deleted
		return nil, opInvalidate
	})
	return res
}

// touch sets the exptime of a live item, keeping its value and CAS, and
// returns the item now stored (nil if none).
func (s *Store) touch(key []byte, exptime int64, now time.Time) *item {
	var cur *item
	s.updateLive(key, now, func(k string, old *item) (*item, op) {
		if expiredAt(exptime, now) {
			cur = old // visible to this call, gone after it
			return nil, opInvalidate
		}
		it := &item{value: old.value, flags: old.flags, cas: old.cas, exptime: exptime, storedNs: old.storedNs}
		it.access.Store(old.access.Load())
		it.fetched.Store(old.fetched.Load())
		cur = it
		s.put(k, it)
		return it, opWrite
	})
	return cur
}

// Touch sets the exptime of key. It does not mark the item fetched.
func (s *Store) Touch(key []byte, exptime int64) (Meta, bool) {
	it := s.touch(key, exptime, s.now())
	if it == nil {
		return Meta{}, false
	}
	m := metaOf(it)
	m.Exptime = exptime
	return m, true
}

// GetAndTouch sets the exptime of key and appends its value to dst, marking
// the item fetched.
func (s *Store) GetAndTouch(key []byte, exptime int64, dst []byte) ([]byte, Meta, bool) {
	now := s.now()
	it := s.touch(key, exptime, now)
	if it == nil {
		return dst, Meta{}, false
	}
	m := metaOf(it)
	m.Exptime = exptime
	s.markFetched(it, now)
	return append(dst, it.value...), m, true
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
	now := s.now()
	r = NotFound
	s.compute(key, false, func(k string, old *item, found bool) (*item, op) {
		if found && !s.live(old, now) {
			found = false
		}
		var it *item
		switch {
		case !found && (vivify == nil || cas != 0):
			return old, opCancel
		case !found:
			if expiredAt(vivify.Exptime, now) {
				newValue, r = vivify.Initial, Stored
				newCAS = s.cas.Add(1) // numbered, as memcached numbers it, then gone
				if old != nil {
					return nil, opInvalidate
				}
				return old, opCancel
			}
			newValue = vivify.Initial
			it = &item{value: strconv.AppendUint(nil, newValue, 10), exptime: vivify.Exptime}
		case cas != 0 && old.cas != cas:
			r = Exists
			return old, opCancel
		default:
			n, ok := parseUint(old.value)
			if !ok {
				r = NonNumeric
				return old, opCancel
			}
			switch {
			case !decr:
				n += delta // wraps, as memcached
			case delta > n:
				n = 0
			default:
				n -= delta
			}
			newValue = n
			v := strconv.AppendUint(make([]byte, 0, max(len(old.value), 20)), n, 10)
			for len(v) < len(old.value) {
				v = append(v, ' ')
			}
			it = &item{value: v, flags: old.flags, exptime: old.exptime}
			if len(v) == len(old.value) {
				// memcached changes a number that fits in place: the
				// item stays fetched (mg h)
				it.fetched.Store(old.fetched.Load())
			}
		}
		r = Stored
		it.cas = s.cas.Add(1)
		it.access.Store(now.Unix())
		it.storedNs = now.UnixNano()
		it.access.Store(now.Unix()) // storing is an access, as memcached counts it
		newCAS = it.cas
		s.put(k, it)
		return it, opWrite
	})
	if newCAS != 0 {
		s.total.Add(1)
	}
	return newValue, newCAS, r
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
	return Stats{
		Items:      s.t.items.Load(),
		Bytes:      s.t.bytes.Load(),
		LimitBytes: s.limit,
		Evictions:  s.evictions.Load(),
		Expired:    s.expired.Load(),
		TotalItems: s.total.Load(),
		Flushed:    s.flushed.Load(),
	}
}
