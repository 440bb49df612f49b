package store

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestIndexGrowsUnderLoad: the index doubles several times while writers
// add keys and readers read keys already acknowledged; no read misses or
// sees an older value than the last one acknowledged before it began,
// nothing is evicted (the limit has room for every item), and the index
// and segments together stay within the limit.
func TestIndexGrowsUnderLoad(t *testing.T) {
	const (
		limit   = 64 << 20
		writers = 2
		perW    = 150_000
		readers = 2
	)
	s := newStore(t, Config{MemoryLimit: limit})
	start := s.Stats().IndexBytes
	key := func(w, i int) []byte { return fmt.Appendf(nil, "w%d-key-%024d", w, i) }
	// acked[w] is how many of writer w's keys are stored; each key i is
	// stored twice: version 1, then version 2 once key i+perW/2 is.
	var acked [writers]atomic.Int64
	var v2 [writers]atomic.Int64 // keys below this carry version 2
	var stop atomic.Bool
	var bad atomic.Int64
	var reads atomic.Int64
	var wg sync.WaitGroup
	val := func(i, version int) []byte {
		b := make([]byte, 40)
		binary.LittleEndian.PutUint64(b, uint64(i))
		b[8] = byte(version)
		return b
	}
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perW {
				if r, _ := s.Set(key(w, i), val(i, 1), ModeSet, 0, 0, 0); r != Stored {
					t.Errorf("set %s: %v", key(w, i), r)
					return
				}
				acked[w].Store(int64(i + 1))
				// Writers faster than the goroutine that grows the
				// index (on a busy machine) could fill the table before
				// the entries start moving, and a full bucket pair
				// evicts (a few do from about 70% of the slots on; it grows at 59%),
				// which would make a miss right: they wait for the
				// moving to start, and go on while it runs.
				for s.resizing.Load() && s.x.state.Load().old == nil {
					time.Sleep(20 * time.Microsecond)
				}
				if i%2 == 1 { // rewrite an older key: version 2
					j := int(v2[w].Load())
					if r, _ := s.Set(key(w, j), val(j, 2), ModeSet, 0, 0, 0); r != Stored {
						t.Errorf("set %s: %v", key(w, j), r)
						return
					}
					v2[w].Store(int64(j + 1))
				}
			}
		}()
	}
	var rg sync.WaitGroup
	for r := range readers {
		rg.Add(1)
		go func() {
			defer rg.Done()
			rng := rand.New(rand.NewPCG(uint64(r), 7))
			buf := make([]byte, 0, 64)
			for !stop.Load() {
				w := rng.IntN(writers)
				n, n2 := acked[w].Load(), v2[w].Load()
				if n == 0 {
					continue
				}
				i := rng.Int64N(n)
				v, _, ok := s.Get(key(w, int(i)), buf[:0])
				reads.Add(1)
				switch {
				case !ok:
					bad.Add(1)
					t.Errorf("%s missed (acknowledged; %+v)", key(w, int(i)), s.Stats())
				case binary.LittleEndian.Uint64(v) != uint64(i):
					bad.Add(1)
					t.Errorf("%s: value of key %d", key(w, int(i)), binary.LittleEndian.Uint64(v))
				case i < n2 && v[8] != 2:
					bad.Add(1)
					t.Errorf("%s: version %d after version 2 was acknowledged", key(w, int(i)), v[8])
				}
				if bad.Load() > 10 {
					return
				}
			}
		}()
	}
	wg.Wait()
	stop.Store(true)
	rg.Wait()
	st := s.Stats()
	t.Logf("%d reads; %+v (index from %d bytes)", reads.Load(), st, start)
	if st.IndexGrows < 3 || st.IndexBytes < 8*start {
		t.Fatalf("the index grew %d times, to %d bytes from %d: want 3 doublings or more", st.IndexGrows, st.IndexBytes, start)
	}
	if st.Evictions != 0 || st.Items != writers*perW {
		t.Fatalf("items %d (want %d), evictions %d (want 0)", st.Items, writers*perW, st.Evictions)
	}
	if st.ArenaBytes+st.IndexBytes > limit {
		t.Fatalf("segments %d and index %d bytes: over the limit %d", st.ArenaBytes, st.IndexBytes, limit)
	}
	// Every key, read once more after the growing.
	for w := range writers {
		for i := range perW {
			if v, _, ok := s.Peek(key(w, i), nil); !ok || binary.LittleEndian.Uint64(v) != uint64(i) {
				t.Fatalf("%s after growing: %v %v", key(w, i), v, ok)
			}
		}
	}
}

// TestIndexSizedByItems: a store of large items keeps a small index and
// gives the memory to its segments; one of small items grows its index.
// Either way the two fit in the limit, and the store holds about as many
// items as its segments allow.
func TestIndexSizedByItems(t *testing.T) {
	const limit = 64 << 20
	for _, size := range []int{64, 1024} {
		s := newStore(t, Config{MemoryLimit: limit})
		val := make([]byte, size)
		per := itemSize(32, size)
		for i := range int(2 * limit / per) {
			s.Set(fmt.Appendf(nil, "key:%028d", i), val, ModeSet, 0, 0, 0)
		}
		s.startResize()
		st := s.Stats()
		// Items the segments hold, less what the index and one segment
		// being evicted take.
		fit := (st.ArenaBytes - 2*s.sg.size) / per
		t.Logf("%d-byte values: %d items (%d would fill the segments), index %d KiB, grown %d times, %d evicted for a slot",
			size, st.Items, fit, st.IndexBytes>>10, st.IndexGrows, st.SlotEvictions)
		if st.ArenaBytes+st.IndexBytes > limit {
			t.Fatalf("%d-byte values: segments %d and index %d bytes over the limit", size, st.ArenaBytes, st.IndexBytes)
		}
		if st.Items < fit*85/100 {
			t.Fatalf("%d-byte values: %d items, the segments would hold %d", size, st.Items, fit)
		}
		if size == 1024 && st.IndexBytes > limit/40 {
			t.Fatalf("1 KiB values: an index of %d bytes, more than 2.5%% of the limit", st.IndexBytes)
		}
	}
}

// TestReadAcrossGrowStart: a reader that found the index before it began
// to grow or shrink, and looks after its key's buckets moved to the new
// table, finds nothing where it looks; it must start over, not report a
// miss.
func TestReadAcrossGrowStart(t *testing.T) {
	for _, d := range []int{+1, -1} {
		s := newStore(t, Config{MemoryLimit: 8 << 20})
		key := []byte("a key that moves")
		set(t, s, string(key), "v")
		before := s.x.state.Load()
		nt, err := newTable(uint(int(before.t.bits) + d))
		if err != nil {
			t.Fatal(err)
		}
		s.maps.add(nt.mem)
		gs := &indexState{t: nt, old: before.t, moved: make([]atomic.Uint64, (1<<before.t.bits+63)/64)}
		s.x.state.Store(gs)
		k := s.x.hash(key)
		o1, o2 := before.t.buckets(k.h)
		s.x.lockStripes(k.h)
		s.moveBucket(gs, o1)
		s.moveBucket(gs, o2)
		s.x.unlock(k)
		if _, _, _, ok, _, again := s.lookIn(before, &k, key, nil, readNone); ok || !again {
			t.Fatalf("table %+d bits: a read that began before the resizing: found %v, start over %v; want not found and start over", d, ok, again)
		}
		if _, _, _, ok, _, again := s.lookIn(gs, &k, key, nil, readNone); !ok || again {
			t.Fatalf("table %+d bits: a read in the resizing index: found %v, start over %v", d, ok, again)
		}
		if v, _, ok := get(s, string(key)); !ok || v != "v" {
			t.Fatalf("table %+d bits: get: %q %v", d, v, ok)
		}
	}
}

// TestIndexShrinksUnderLoad: a store filled with small items grows its
// index; when 1 KiB items take their place, the index halves back while
// writers go on and readers read the keys written last: none of those
// misses or reads another value, the limit holds, and the store ends
// holding about as many 1 KiB items as its segments allow, with an index
// no larger than a store that only ever held 1 KiB items.
func TestIndexShrinksUnderLoad(t *testing.T) {
	const (
		limit   = 64 << 20
		writers = 2
		window  = 2000 // keys stored last (by either writer): never the oldest segments'
		readers = 2
	)
	s := newStore(t, Config{MemoryLimit: limit})
	start := s.Stats().IndexBytes
	small := make([]byte, 64)
	for i := range int(limit / itemSize(32, 64)) {
		s.Set(fmt.Appendf(nil, "small:%026d", i), small, ModeSet, 0, 0, 0)
	}
	s.startResize()
	grown := s.Stats()
	if grown.IndexGrows < 3 {
		t.Fatalf("small items grew the index %d times, to %d bytes from %d", grown.IndexGrows, grown.IndexBytes, start)
	}
	key := func(w, i int) []byte { return fmt.Appendf(nil, "large:%d:%024d", w, i) }
	val := func(i int) []byte {
		b := make([]byte, 1024)
		binary.LittleEndian.PutUint64(b, uint64(i))
		return b
	}
	perW := int(2 * limit / itemSize(32, 1024) / writers)
	// A key is recent while fewer than `window` keys were stored after
	// it (by either writer: one may run ahead of the other): its
	// segment is among the newest, never evicted.
	var acked [writers]atomic.Int64
	var seq atomic.Int64
	seqOf := [writers][]atomic.Int64{}
	for w := range writers {
		seqOf[w] = make([]atomic.Int64, perW)
	}
	var stop atomic.Bool
	var bad, reads atomic.Int64
	var wg, rg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perW {
				if r, _ := s.Set(key(w, i), val(i), ModeSet, 0, 0, 0); r != Stored {
					t.Errorf("set %s: %v", key(w, i), r)
					return
				}
				seqOf[w][i].Store(seq.Add(1))
				acked[w].Store(int64(i + 1))
			}
		}()
	}
	for r := range readers {
		rg.Add(1)
		go func() {
			defer rg.Done()
			rng := rand.New(rand.NewPCG(uint64(r), 11))
			buf := make([]byte, 0, 1024)
			for !stop.Load() && bad.Load() <= 10 {
				w := rng.IntN(writers)
				n := acked[w].Load()
				if n == 0 {
					continue
				}
				i := n - 1 - rng.Int64N(min(n, window))
				at := seqOf[w][i].Load()
				v, _, ok := s.Get(key(w, int(i)), buf[:0])
				reads.Add(1)
				switch {
				case !ok && seq.Load()-at >= window:
					// No longer recent: it may have been evicted.
				case !ok:
					bad.Add(1)
					t.Errorf("%s missed, one of the last %d stored (%+v)", key(w, int(i)), window, s.Stats())
				case binary.LittleEndian.Uint64(v) != uint64(i):
					bad.Add(1)
					t.Errorf("%s: value of key %d", key(w, int(i)), binary.LittleEndian.Uint64(v))
				}
			}
		}()
	}
	wg.Wait()
	stop.Store(true)
	rg.Wait()
	for s.resizing.Load() {
		time.Sleep(time.Millisecond) // a halving in its goroutine
	}
	st := s.Stats()
	t.Logf("%d reads; grown by small items: %+v; then %+v", reads.Load(), grown, st)
	if st.IndexShrinks == 0 || st.IndexBytes >= grown.IndexBytes {
		t.Fatalf("the index halved %d times: %d bytes, %d with the small items", st.IndexShrinks, st.IndexBytes, grown.IndexBytes)
	}
	if st.ArenaBytes+st.IndexBytes > limit {
		t.Fatalf("segments %d and index %d bytes: over the limit %d", st.ArenaBytes, st.IndexBytes, limit)
	}
	// As TestIndexSizedByItems: 1 KiB items in a store that never held
	// others.
	fresh := newStore(t, Config{MemoryLimit: limit})
	for i := range perW * writers {
		fresh.Set(fmt.Appendf(nil, "fresh:%026d", i), val(i), ModeSet, 0, 0, 0)
	}
	fresh.startResize()
	if fs := fresh.Stats(); st.IndexBytes > fs.IndexBytes {
		t.Fatalf("index of %d KiB after the small items left, %d KiB in a store of 1 KiB items only", st.IndexBytes>>10, fs.IndexBytes>>10)
	}
	if fit := (st.ArenaBytes - 2*s.sg.size) / itemSize(32, 1024); st.Items < fit*85/100 {
		t.Fatalf("%d items of 1 KiB, the segments would hold %d", st.Items, fit)
	}
	for w := range writers {
		for i := range perW {
			if seq.Load()-seqOf[w][i].Load() >= window {
				continue
			}
			if v, _, ok := s.Peek(key(w, i), nil); !ok || binary.LittleEndian.Uint64(v) != uint64(i) {
				t.Fatalf("%s after the halving: %v %v", key(w, i), v, ok)
			}
		}
	}
}

// TestMoveEvictsTheOldest: a halving can fill both of a key's buckets in
// the smaller table; the entry that moves in then evicts the item in the
// oldest segment among theirs and its own, as a new key's write would,
// not itself when it is the newest.
func TestMoveEvictsTheOldest(t *testing.T) {
	s := newStore(t, Config{MemoryLimit: 8 << 20})
	var olds []string
	for i := range 2 * bucketSlots {
		olds = append(olds, fmt.Sprintf("old-%d", i))
		set(t, s, olds[i], "v")
	}
	// Fill the first segment, so that the newest key is born later.
	filler := make([]byte, 4096)
	for i := 0; s.sg.born[s.sg.head].Load() == 1; i++ {
		s.Set(fmt.Appendf(nil, "filler-%d", i), filler, ModeSet, 0, 0, 0)
	}
	set(t, s, "newest", "n")
	st := s.x.state.Load()
	oldT := st.t
	k := s.x.hash([]byte("newest"))
	s.x.lockStripes(k.h)
	defer s.x.unlock(k)
	k.t = oldT
	k.b1, k.b2 = oldT.buckets(k.h)
	slot, _ := s.findLocked(k, []byte("newest"))
	if slot == noSlot {
		t.Fatal("newest not in the index")
	}
	ob := slot / bucketSlots
	nt, err := newTable(oldT.bits - 1)
	if err != nil {
		t.Fatal(err)
	}
	s.maps.add(nt.mem)
	gs := &indexState{t: nt, old: oldT, moved: make([]atomic.Uint64, (1<<oldT.bits+63)/64)}
	// Both of its buckets in the smaller table, full of the old keys.
	n1, n2 := nt.buckets(k.h)
	j := 0
	for _, b := range []uint64{n1, n2} {
		for i := b * bucketSlots; i < (b+1)*bucketSlots; i++ {
			ok := s.x.hash([]byte(olds[j]))
			ok.t = oldT
			ok.b1, ok.b2 = oldT.buckets(ok.h)
			_, e := s.findLocked(ok, []byte(olds[j]))
			if e == 0 {
				t.Fatalf("%s not in the index", olds[j])
			}
			nt.store(i, e)
			j++
		}
	}
	before := s.Stats().SlotEvictions
	s.moveBucket(gs, ob)
	k.t = nt
	k.b1, k.b2 = n1, n2
	if slot, _ := s.findLocked(k, []byte("newest")); slot == noSlot {
		t.Fatal("the newest item, moving into full buckets, was evicted in place of an older one")
	}
	if n := s.Stats().SlotEvictions - before; n != 1 {
		t.Fatalf("%d evictions for a slot, want 1", n)
	}
}

// TestIndexFollowsSizeShifts: the same keys written over with values
// that shrink and grow by turns. Each time the values are large, the
// index halves back to what large items need and the segments hold about
// as many as fit; each time they are small again, it grows back in time
// for every key to be held (they fit), rather than evicting them for
// slots while it judges by the large items still held.
func TestIndexFollowsSizeShifts(t *testing.T) {
	const (
		limit = 64 << 20
		keys  = 300_000 // of 64-byte values: 38 MB
	)
	s := newStore(t, Config{MemoryLimit: limit})
	key := func(i int) []byte { return fmt.Appendf(nil, "key:%028d", i) }
	for pass, size := range []int{64, 1024, 16, 1500, 64} {
		v := make([]byte, size)
		for i := range keys {
			binary.LittleEndian.PutUint32(v, uint32(pass))
			if r, _ := s.Set(key(i), v[:max(size, 4)], ModeSet, 0, 0, 0); r != Stored {
				t.Fatalf("pass %d: set %s: %v", pass, key(i), r)
			}
		}
		s.startResize()
		for s.resizing.Load() {
			time.Sleep(time.Millisecond) // a resize in its goroutine
		}
		found := 0
		for i := range keys {
			if v, _, ok := s.Peek(key(i), nil); ok {
				if got := binary.LittleEndian.Uint32(v); got != uint32(pass) {
					t.Fatalf("pass %d: %s holds the value of pass %d", pass, key(i), got)
				}
				found++
			}
		}
		st := s.Stats()
		t.Logf("pass %d, %d-byte values: %d of %d keys held; index %d KiB (grown %d, halved %d times), %d evicted for a slot",
			pass, size, found, keys, st.IndexBytes>>10, st.IndexGrows, st.IndexShrinks, st.SlotEvictions)
		if st.ArenaBytes+st.IndexBytes > limit {
			t.Fatalf("pass %d: segments %d and index %d bytes over the limit", pass, st.ArenaBytes, st.IndexBytes)
		}
		if itemSize(32, size)*keys < limit*6/10 {
			if found != keys {
				t.Fatalf("pass %d: %d of %d keys of %d-byte values held; they fit", pass, found, keys, size)
			}
			continue
		}
		if fit := (st.ArenaBytes - 2*s.sg.size) / itemSize(32, size); int64(found) < fit*85/100 || st.IndexBytes > limit/40 {
			t.Fatalf("pass %d: %d keys of %d-byte values held, the segments would hold %d; index %d KiB", pass, found, size, fit, st.IndexBytes>>10)
		}
	}
}
