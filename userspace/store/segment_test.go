package store

import (
	"bytes"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// stressValue is the value version ver of key: its length varies with
// ver, and every byte says which key and version it belongs to, so a
// value torn between two writes, or read from another key's item, shows.
func stressValue(key []byte, ver uint64) []byte {
	n := 8 + int(ver*7919%600)
	v := make([]byte, 0, n+24)
	v = strconv.AppendUint(v, ver, 10)
	v = append(v, '|')
	sum := byte(0)
	for _, c := range key {
		sum += c
	}
	for len(v) < n {
		v = append(v, 'a'+(sum+byte(ver)+byte(len(v)))%26)
	}
	return v
}

// checkStress reports what is wrong with v as a value of key.
func checkStress(key, v []byte) string {
	i := bytes.IndexByte(v, '|')
	if i <= 0 {
		return "no version"
	}
	ver, err := strconv.ParseUint(string(v[:i]), 10, 64)
	if err != nil {
		return "bad version"
	}
	if want := stressValue(key, ver); !bytes.Equal(v, want) {
		return fmt.Sprintf("version %d: got %q, want %q", ver, v, want)
	}
	return ""
}

// TestReadsDuringOverwritesAndEvictions: readers without locks, while
// writers overwrite, append to and evict from a small store, never see a
// value torn between two writes, another key's value, or one of a length
// it does not have.
func TestReadsDuringOverwritesAndEvictions(t *testing.T) {
	s := newStore(t, Config{MemoryLimit: 256 << 10})
	keys := make([][]byte, 2000)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "stress-%d", i)
	}
	var ver atomic.Uint64
	deadline := time.Now().Add(2 * time.Second)
	var stop atomic.Bool
	var wg sync.WaitGroup
	var reads, hits atomic.Int64
	fail := func(format string, args ...any) {
		if !stop.Swap(true) {
			t.Errorf(format, args...)
		}
	}
	for w := range 2 {
		wg.Go(func() {
			for i := w; !stop.Load(); i++ {
				k := keys[(i*7919)%len(keys)]
				v := ver.Add(1)
				if r, _ := s.Set(k, stressValue(k, v), ModeSet, uint32(v), 0, 0); r != Stored {
					fail("set %s: %v", k, r)
				}
				if i%1000 == 0 && time.Now().After(deadline) {
					stop.Store(true)
				}
			}
		})
	}
	for r := range 3 {
		wg.Go(func() {
			dst := make([]byte, 0, 64) // too small at times: Get grows it
			into := make([]byte, 700)
			for i := r; !stop.Load(); i++ {
				k := keys[(i*104729)%len(keys)]
				reads.Add(1)
				var v []byte
				var m Meta
				var ok bool
				if i%2 == 0 {
					v, m, ok = s.Get(k, dst[:0])
				} else {
					var n int
					n, m, ok = s.GetInto(k, into)
					v = into[:min(n, len(into))]
				}
				if !ok {
					continue
				}
				hits.Add(1)
				if msg := checkStress(k, v); msg != "" {
					fail("read %s: %s", k, msg)
					continue
				}
				if m.Size != len(v) {
					fail("read %s: meta size %d, value %d bytes", k, m.Size, len(v))
				}
				if ver, _ := strconv.ParseUint(string(v[:bytes.IndexByte(v, '|')]), 10, 64); uint32(ver) != m.Flags {
					fail("read %s: flags %d of another version than the value (%d)", k, m.Flags, ver)
				}
			}
		})
	}
	wg.Wait()
	st := s.Stats()
	if st.Evictions == 0 || hits.Load() == 0 {
		t.Fatalf("did not exercise evictions and hits: %d reads, %d hits, %+v", reads.Load(), hits.Load(), st)
	}
	t.Logf("%d reads, %d hits, %d sets; %+v", reads.Load(), hits.Load(), ver.Load(), st)
}

// TestEvictionOrder: a full store evicts what was written first and not
// read since; items read twice since written move forward and stay; a
// set is readable right after it is acknowledged.
func TestEvictionOrder(t *testing.T) {
	s := newStore(t, Config{MemoryLimit: 1 << 20})
	val := make([]byte, 200)
	per := itemSize(12, len(val))
	n := int(s.Stats().ArenaBytes / per / 2) // half the segments
	key := func(p string, i int) []byte { return fmt.Appendf(nil, "%s-%08d", p, i) }
	for i := range n {
		s.Set(key("old", i), val, ModeSet, 0, 0, 0)
	}
	for i := 0; i < n; i += 10 { // a tenth of the old ones is hot
		s.Get(key("old", i), nil)
		s.Get(key("old", i), nil)
	}
	// As much again as the store holds: every cold old item must go.
	for i := range 2 * n {
		k := key("new", i)
		if r, _ := s.Set(k, val, ModeSet, 0, 0, 0); r != Stored {
			t.Fatalf("set %s: %v", k, r)
		}
		if _, _, ok := s.Peek(k, nil); !ok {
			t.Fatalf("%s missed right after its set; %+v", k, s.Stats())
		}
	}
	var hot, cold int
	for i := range n {
		if _, _, ok := s.Peek(key("old", i), nil); ok {
			if i%10 == 0 {
				hot++
			} else {
				cold++
			}
		}
	}
	if cold != 0 || hot < n/10*9/10 {
		t.Fatalf("of the old items: %d cold ones stayed (want 0), %d of %d hot ones (want nearly all); %+v", cold, hot, n/10, s.Stats())
	}
	// The newest sets are all there: eviction took the oldest first.
	for i := n; i < 2*n; i++ {
		if _, _, ok := s.Peek(key("new", i), nil); !ok {
			t.Fatalf("new-%d evicted while newer ones stayed; %+v", i, s.Stats())
		}
	}
}

// TestItemsOutsideTheHeap: the items take the store's mapped segments,
// not the Go heap, and the segments and the index together no more than
// the limit.
func TestItemsOutsideTheHeap(t *testing.T) {
	const limit = 16 << 20
	s := newStore(t, Config{MemoryLimit: limit})
	if got := len(s.sg.mem); int64(got) > limit {
		t.Fatalf("segments of %d bytes over the limit %d", got, limit)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	val := make([]byte, 64)
	key := make([]byte, 0, 32)
	for i := range 250_000 {
		key = fmt.Appendf(key[:0], "key-%027d", i)
		s.Set(key, val, ModeSet, 0, 0, 0)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	st := s.Stats()
	if grown := int64(after.HeapAlloc) - int64(before.HeapAlloc); grown > 1<<20 {
		t.Fatalf("the heap grew by %d bytes holding %d items", grown, st.Items)
	}
	if st.Bytes > st.ArenaBytes || st.ArenaBytes+st.IndexBytes > limit || st.Items < 80_000 || st.IndexGrows == 0 {
		t.Fatalf("stats: %+v", st)
	}
	t.Logf("%+v: %.1f bytes of the limit an item", st, float64(limit)/float64(st.Items))
}

// TestLockedRead: a read that keeps meeting reused segments takes the
// key's lock and answers the same.
func TestLockedRead(t *testing.T) {
	defer func(n int) { readTries = n }(readTries)
	readTries = 0
	c := newClock()
	s := newStore(t, Config{Now: c.Now})
	set(t, s, "k", "hello")
	if v, m, ok := get(s, "k"); !ok || v != "hello" || m.Fetched || m.Size != 5 {
		t.Fatalf("get: %q %+v %v", v, m, ok)
	}
	if _, m, ok := s.Peek([]byte("k"), nil); !ok || !m.Fetched {
		t.Fatalf("peek after get: %+v %v", m, ok)
	}
	buf := make([]byte, 8)
	if n, _, ok := s.GetInto([]byte("k"), buf); !ok || string(buf[:n]) != "hello" {
		t.Fatalf("into: %q %v", buf[:n], ok)
	}
	if _, _, ok := get(s, "nope"); ok {
		t.Fatal("missing key found")
	}
	s.Set([]byte("e"), []byte("x"), ModeSet, 0, c.Unix()+1, 0)
	c.Add(2 * time.Second)
	if _, _, ok := get(s, "e"); ok || s.Stats().Expired != 1 {
		t.Fatalf("expired item read: %v %+v", ok, s.Stats())
	}
}

// TestFetch marks an item fetched, as a get does, without its value.
func TestFetch(t *testing.T) {
	s := newStore(t, Config{})
	set(t, s, "k", "v")
	if m, ok := s.Fetch([]byte("k")); !ok || m.Fetched || m.Size != 1 {
		t.Fatalf("fetch: %+v %v", m, ok)
	}
	if _, m, _ := s.Peek([]byte("k"), nil); !m.Fetched {
		t.Fatalf("not fetched after Fetch: %+v", m)
	}
	if _, ok := s.Fetch([]byte("nope")); ok {
		t.Fatal("fetch of a missing key")
	}
}
