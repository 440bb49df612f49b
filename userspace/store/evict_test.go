package store

import (
	"fmt"
	"testing"
	"time"
)

// TestRecentSetsSurviveAFullStore is what memcaslap saw after earlier runs
// had filled the store with items that were read many times (issue 18,
// item 7): the store must evict the least recently used items, as
// memcached's LRU does, never a set it has just acknowledged because an
// older item was read more often. A frequency-based admission (TinyLFU)
// refuses almost every new key once the store is full of popular ones.
func TestRecentSetsSurviveAFullStore(t *testing.T) {
	const limit = 4 << 20
	s := newStore(t, Config{MemoryLimit: limit})
	val := make([]byte, 900)
	per := int64(len(val) + 16 + ItemOverhead)
	n := int(2 * limit / per) // twice what fits

	// A first client: each key set, then read a few times.
	for i := range n {
		k := fmt.Appendf(nil, "old-%012d", i)
		s.Set(k, val, ModeSet, 0, 0, 0)
		for range 4 {
			s.Get(k, nil)
		}
	}
	// A later client: a window of new keys that fits in a quarter of the
	// store, set and then read back as memcaslap does.
	window := int(limit / 4 / per)
	var misses, lastMisses int
	for i := range 4 * n {
		k := fmt.Appendf(nil, "new-%012d", i)
		if r, _ := s.Set(k, val, ModeSet, 0, 0, 0); r != Stored {
			t.Fatalf("set %s: %v", k, r)
		}
		if _, _, ok := s.Get(k, nil); !ok {
			misses++
		}
		if i >= window {
			old := fmt.Appendf(nil, "new-%012d", i-window)
			if _, _, ok := s.Get(old, nil); !ok {
				lastMisses++
			}
		}
	}
	if misses != 0 || lastMisses != 0 {
		t.Fatalf("of %d new keys: %d missed right after their set, %d missed %d sets later (a quarter of the store); stats %+v",
			4*n, misses, lastMisses, window, s.Stats())
	}
}

// TestEvictionIsLeastRecentFirst: items read long ago go before items
// written since, read or not (memcaslap's later runs read only their own
// keys). A CLOCK that gives every item read since its last pass another
// round keeps the old items and evicts the new unread ones first.
func TestEvictionIsLeastRecentFirst(t *testing.T) {
	const limit = 1 << 20
	c := newClock()
	s := newStore(t, Config{MemoryLimit: limit, Now: c.Now})
	val := make([]byte, 400)
	per := int64(len(val) + 16 + ItemOverhead)
	n := int(limit / per)
	for i := range n {
		k := fmt.Appendf(nil, "old-%012d", i)
		s.Set(k, val, ModeSet, 0, 0, 0)
	}
	c.Add(time.Second)
	for i := range n {
		s.Get(fmt.Appendf(nil, "old-%012d", i), nil)
	}
	c.Add(time.Second)
	fresh := n / 2
	for i := range fresh {
		s.Set(fmt.Appendf(nil, "new-%012d", i), val, ModeSet, 0, 0, 0)
	}
	var lost int
	for i := range fresh {
		if _, _, ok := s.Peek(fmt.Appendf(nil, "new-%012d", i), nil); !ok {
			lost++
		}
	}
	if lost != 0 {
		t.Fatalf("%d of %d new items evicted while older ones stayed; stats %+v", lost, fresh, s.Stats())
	}
}
