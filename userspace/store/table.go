package store

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
)

// shardCount is the number of key shards, each a map under its own lock
// (a power of two).
const shardCount = 256

// op is what a compute function asks of the table.
type op uint8

const (
	opCancel     op = iota // leave the key as it was
	opWrite                // store the returned item under the key
	opInvalidate           // remove the key
)

// shard is one part of the key space.
type shard struct {
	mu sync.RWMutex
	m  map[string]*item
	_  [32]byte // its own cache line, apart from its neighbours' locks
}

// recency is every item in the table on one list, most recently written
// or read first: eviction takes items from the other end, as memcached's
// LRU does. A read moves an item to the front at most once a second (the
// first read in a new second of the store's clock; memcached bumps at most
// once a minute), so that hot keys do not take the list's lock on every
// read. What goes first is what was written or read longest ago: never a
// write just acknowledged because an older item was read more often.
type recency struct {
	mu   sync.Mutex
	root item // sentinel: root.next is the newest item, root.prev the oldest
}

// table maps keys to items, bounded by weight. Its maps change under their
// shard's lock, and its list under recency.mu, taken inside a shard's
// lock (the evictor, which holds recency.mu first, only tries a shard's
// lock, never waits for one). An item is in a shard's map exactly while it
// is on the list.
type table struct {
	shards [shardCount]shard
	seed   maphash.Seed
	lru    recency
	items  atomic.Int64
	bytes  atomic.Int64
}

func (t *table) init() {
	t.seed = maphash.MakeSeed()
	for i := range t.shards {
		t.shards[i].m = make(map[string]*item)
	}
	t.lru.root.next, t.lru.root.prev = &t.lru.root, &t.lru.root
}

func (t *table) shardOf(key []byte) *shard {
	return &t.shards[maphash.Bytes(t.seed, key)&(shardCount-1)]
}

func (t *table) shardOfString(key string) *shard {
	return &t.shards[maphash.String(t.seed, key)&(shardCount-1)]
}

// get returns key's item, dead or alive.
func (t *table) get(key []byte) (*item, bool) {
	sh := t.shardOf(key)
	sh.mu.RLock()
	it, ok := sh.m[string(key)]
	sh.mu.RUnlock()
	return it, ok
}

func (l *recency) unlink(it *item) {
	it.prev.next, it.next.prev = it.next, it.prev
	it.prev, it.next = nil, nil
}

func (l *recency) pushFront(it *item) {
	it.prev, it.next = &l.root, l.root.next
	l.root.next.prev = it
	l.root.next = it
}

// bump moves it to the front, if it is still on the list (a write may have
// replaced it or an eviction removed it since it was read).
func (l *recency) bump(it *item) {
	l.mu.Lock()
	if it.prev != nil && l.root.next != it {
		l.unlink(it)
		l.pushFront(it)
	}
	l.mu.Unlock()
}

// compute runs fn on key's item (found false if none) under the key's
// shard lock, with the table's own copy of the key, or a new copy if it is
// missing; ifPresent skips a missing key without copying it. fn returns the
// item to store (opWrite), or asks for the key's removal (opInvalidate),
// which is told to the mirror, or for nothing (opCancel). A write that
// takes the table over its limit evicts before compute returns, never the
// item just written.
func (s *Store) compute(key []byte, ifPresent bool, fn func(k string, old *item, found bool) (*item, op)) {
	t := &s.t
	sh := t.shardOf(key)
	sh.mu.Lock()
	old, found := sh.m[string(key)]
	if !found && ifPresent {
		sh.mu.Unlock()
		return
	}
	var k string
	if found {
		k = old.key
	} else {
		k = string(key)
	}
	it, o := fn(k, old, found)
	switch {
	case o == opWrite:
		it.key = k
		sh.m[k] = it
		w := weight(it)
		t.lru.mu.Lock()
		if found {
			w -= weight(old)
			t.lru.unlink(old)
		} else {
			t.items.Add(1)
		}
		t.lru.pushFront(it)
		t.lru.mu.Unlock()
		t.bytes.Add(w)
	case o == opInvalidate && found:
		delete(sh.m, k)
		t.lru.mu.Lock()
		t.lru.unlink(old)
		t.lru.mu.Unlock()
		t.items.Add(-1)
		t.bytes.Add(-weight(old))
		s.tellDelete(k)
	}
	sh.mu.Unlock()
	if o == opWrite && t.bytes.Load() > s.limit {
		s.evict(it)
	}
}

// evict removes items from the oldest end of the list until the table is
// within its limit, never keep, counting a dead one (expired, flushed) as
// expired and a live one as evicted. It passes over items whose shard is
// busy with a write, and stops after one pass over the list, leaving the
// rest to the next write.
func (s *Store) evict(keep *item) {
	t := &s.t
	now := s.now()
	l := &t.lru
	l.mu.Lock()
	defer l.mu.Unlock()
	budget := t.items.Load() + 1
	for cur := l.root.prev; cur != &l.root && t.bytes.Load() > s.limit && budget > 0; budget-- {
		prev := cur.prev
		if sh := t.shardOfString(cur.key); cur != keep && sh.mu.TryLock() {
			delete(sh.m, cur.key)
			l.unlink(cur)
			t.items.Add(-1)
			t.bytes.Add(-weight(cur))
			if s.live(cur, now) {
				s.evictions.Add(1)
			} else {
				s.expired.Add(1)
			}
			s.tellDelete(cur.key)
			sh.mu.Unlock()
		}
		cur = prev
	}
}

// tellDelete tells the mirror that key is gone.
func (s *Store) tellDelete(key string) {
	if b := s.mirror.Load(); b != nil {
		b.m.Delete(key)
	}
}

func weight(it *item) int64 { return int64(len(it.key) + len(it.value) + ItemOverhead) }
