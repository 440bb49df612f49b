package store

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeMirror keeps what a Mirror is told, and answers GETs from it with
// the rules the XDP program applies (expiry, flush_all).
type fakeMirror struct {
	mu    sync.Mutex
	items map[string]mirrored
	cas   uint64
	past  int64
	at    int64
	puts  int
}

type mirrored struct {
	value    string
	flags    uint32
	cas      uint64
	exptime  int64
	storedNs int64
}

func newFakeMirror() *fakeMirror {
	return &fakeMirror{items: map[string]mirrored{}, past: math.MinInt64, at: math.MaxInt64}
}

func (m *fakeMirror) Put(key string, value []byte, flags uint32, cas uint64, exptime, storedNs int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.items[key] = mirrored{string(value), flags, cas, exptime, storedNs}
	m.puts++
}

func (m *fakeMirror) Delete(key string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.items, key)
}

func (m *fakeMirror) Flush(cas uint64, past, at int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cas, m.past, m.at = cas, past, at
	return nil
}

// get answers as the XDP program does, at the time now.
func (m *fakeMirror) get(key string, now time.Time) (mirrored, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	it, ok := m.items[key]
	if !ok {
		return mirrored{}, false
	}
	if it.exptime != 0 && now.UnixNano() >= it.exptime*1e9 {
		return mirrored{}, false
	}
	if it.cas <= m.cas || it.storedNs <= m.past || (now.UnixNano() >= m.at && it.storedNs <= m.at) {
		return mirrored{}, false
	}
	return it, true
}

// TestMirrorFollowsEveryChange runs random operations of every kind,
// with expiry, delayed flushes and evictions, and after each one checks
// that what the mirror would answer is exactly what the store holds: never
// a value the store no longer has (the coherence the XDP answers rest on),
// and nothing missing (every write is told).
func TestMirrorFollowsEveryChange(t *testing.T) {
	c := newClock()
	// A small store (the smallest there is) and values of 1.5 KiB, so that
	// about 30 of the 40 keys fit: items get evicted along the way.
	s := newStore(t, Config{Now: c.Now, MemoryLimit: 64 << 10})
	pad := strings.Repeat(" ", 1500) // incr takes a number followed by spaces
	m := newFakeMirror()
	if err := s.SetMirror(m); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	keys := make([]string, 40)
	for i := range keys {
		keys[i] = fmt.Sprintf("k%02d", i)
	}
	ops := map[string]int{}
	for step := range 20000 {
		k := []byte(keys[rng.IntN(len(keys))])
		exp := int64(0)
		if rng.IntN(4) == 0 {
			exp = c.Unix() + int64(rng.IntN(3)) // 0 to 2 s ahead: some die at once
		}
		val := []byte(fmt.Sprint(rng.IntN(1000), pad))
		var op string
		switch rng.IntN(14) {
		case 0, 1, 2:
			op = "set"
			s.Set(k, val, ModeSet, uint32(rng.IntN(3)), exp, 0)
		case 3:
			op = "add"
			s.Set(k, val, ModeAdd, 0, exp, 0)
		case 4:
			op = "replace"
			s.Set(k, val, ModeReplace, 0, exp, 0)
		case 5:
			op = "append"
			s.Set(k, []byte("1"), ModeAppend, 0, 0, 0)
		case 6:
			op = "prepend"
			s.Set(k, []byte("2"), ModePrepend, 0, 0, 0)
		case 7:
			op = "cas"
			_, meta, _ := s.Peek(k, nil)
			s.Set(k, val, ModeSet, 0, exp, meta.CAS+uint64(rng.IntN(2)))
		case 8:
			op = "incr"
			s.Incr(k, uint64(rng.IntN(5)), rng.IntN(2) == 0, &Vivify{Initial: 7})
		case 9:
			op = "touch"
			s.Touch(k, exp)
		case 10:
			op = "gat"
			s.GetAndTouch(k, exp, nil)
		case 11:
			op = "delete"
			s.Delete(k, 0)
		case 12:
			op = "flush"
			if rng.IntN(3) == 0 {
				s.FlushAll(0)
			} else {
				s.FlushAll(time.Duration(rng.IntN(2000)) * time.Millisecond)
			}
		case 13:
			op = "tick"
			c.Add(time.Duration(rng.IntN(700)) * time.Millisecond)
		}
		ops[op]++
		s.Stats() // run pending evictions
		for _, key := range keys {
			mv, mok := m.get(key, c.Now())
			v, meta, ok := s.Peek([]byte(key), nil)
			if mok && (!ok || mv.value != string(v) || mv.flags != meta.Flags || mv.cas != meta.CAS) {
				t.Fatalf("step %d (%s): mirror answers %q=%q (cas %d), store has %q ok=%v (cas %d)",
					step, op, key, mv.value, mv.cas, v, ok, meta.CAS)
			}
			if ok && !mok {
				t.Fatalf("step %d (%s): store has %q=%q, the mirror does not", step, op, key, v)
			}
		}
	}
	if st := s.Stats(); st.Evictions == 0 || m.puts == 0 {
		t.Fatalf("the run did not exercise evictions (%d) or puts (%d)", st.Evictions, m.puts)
	}
	t.Logf("ops: %v, puts %d", ops, m.puts)
}

// TestSetMirrorTellsFlush: a mirror attached after a flush_all learns it.
func TestSetMirrorTellsFlush(t *testing.T) {
	c := newClock()
	s := newStore(t, Config{Now: c.Now})
	set(t, s, "a", "1")
	s.FlushAll(0)
	m := newFakeMirror()
	if err := s.SetMirror(m); err != nil {
		t.Fatal(err)
	}
	if m.cas == 0 {
		t.Fatal("the flush in force was not told")
	}
	s.SetMirror(nil)
	set(t, s, "b", "2")
	if _, ok := m.items["b"]; ok {
		t.Fatal("a detached mirror was told of a write")
	}
}
