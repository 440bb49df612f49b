package store

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// clock is a settable clock for Config.Now.
type clock struct{ ns atomic.Int64 }

func (c *clock) Now() time.Time      { return time.Unix(0, c.ns.Load()) }
func (c *clock) Add(d time.Duration) { c.ns.Add(int64(d)) }
func (c *clock) Unix() int64         { return c.Now().Unix() }
func newClock() *clock               { c := &clock{}; c.ns.Store(1_700_000_000e9); return c }
func newStore(t testing.TB, cfg Config) *Store {
	t.Helper()
	s := New(cfg)
	t.Cleanup(func() { s.FlushAll(0) })
	return s
}

func get(s *Store, key string) (string, Meta, bool) {
	v, m, ok := s.Get([]byte(key), nil)
	return string(v), m, ok
}

func set(t *testing.T, s *Store, key, value string) uint64 {
	t.Helper()
	r, cas := s.Set([]byte(key), []byte(value), ModeSet, 0, 0, 0)
	if r != Stored || cas == 0 {
		t.Fatalf("set %q: %v %d", key, r, cas)
	}
	return cas
}

func TestModes(t *testing.T) {
	tests := []struct {
		name    string
		present bool
		mode    Mode
		want    Result
		value   string // after
		flags   uint32 // after
	}{
		{"set missing", false, ModeSet, Stored, "new", 7},
		{"set present", true, ModeSet, Stored, "new", 7},
		{"add missing", false, ModeAdd, Stored, "new", 7},
		{"add present", true, ModeAdd, NotStored, "old", 3},
		{"replace missing", false, ModeReplace, NotStored, "", 0},
		{"replace present", true, ModeReplace, Stored, "new", 7},
		{"append missing", false, ModeAppend, NotStored, "", 0},
		{"append present", true, ModeAppend, Stored, "oldnew", 3},
		{"prepend missing", false, ModePrepend, NotStored, "", 0},
		{"prepend present", true, ModePrepend, Stored, "newold", 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClock()
			s := newStore(t, Config{Now: c.Now})
			exp := c.Unix() + 100
			if tt.present {
				if r, _ := s.Set([]byte("k"), []byte("old"), ModeSet, 3, exp, 0); r != Stored {
					t.Fatal(r)
				}
			}
			r, cas := s.Set([]byte("k"), []byte("new"), tt.mode, 7, exp+50, 0)
			if r != tt.want {
				t.Fatalf("got %v, want %v", r, tt.want)
			}
			if (r == Stored) != (cas != 0) {
				t.Fatalf("result %v with cas %d", r, cas)
			}
			v, m, ok := get(s, "k")
			if ok != (tt.value != "") || v != tt.value || m.Flags != tt.flags {
				t.Fatalf("get: %q %+v %v, want %q flags %d", v, m, ok, tt.value, tt.flags)
			}
			if ok && r == Stored && m.CAS != cas {
				t.Fatalf("get cas %d, set returned %d", m.CAS, cas)
			}
			if ok && (tt.mode == ModeAppend || tt.mode == ModePrepend) && m.Exptime != exp {
				t.Fatalf("append changed exptime: %d, want %d", m.Exptime, exp)
			}
		})
	}
}

func TestCAS(t *testing.T) {
	s := newStore(t, Config{})
	if r, _ := s.Set([]byte("k"), []byte("v"), ModeSet, 0, 0, 42); r != NotFound {
		t.Fatalf("cas on missing: %v", r)
	}
	cas := set(t, s, "k", "v1")
	if r, _ := s.Set([]byte("k"), []byte("v2"), ModeSet, 0, 0, cas+1000); r != Exists {
		t.Fatalf("cas mismatch: %v", r)
	}
	r, cas2 := s.Set([]byte("k"), []byte("v2"), ModeSet, 0, 0, cas)
	if r != Stored || cas2 == cas {
		t.Fatalf("cas match: %v %d", r, cas2)
	}
	if r, _ := s.Set([]byte("k"), []byte("v3"), ModeAppend, 0, 0, cas); r != Exists {
		t.Fatalf("append with stale cas: %v", r)
	}
	if r := s.Delete([]byte("k"), cas); r != Exists {
		t.Fatalf("delete stale cas: %v", r)
	}
	if r := s.Delete([]byte("k"), cas2); r != Deleted {
		t.Fatalf("delete cas: %v", r)
	}
	if r := s.Delete([]byte("k"), 0); r != NotFound {
		t.Fatalf("delete missing: %v", r)
	}
}

func TestExptime(t *testing.T) {
	c := newClock()
	now := c.Unix()
	tests := []struct {
		name    string
		exptime int64
		advance time.Duration
		hit     bool
	}{
		{"never", 0, 1000 * time.Hour, true},
		{"negative", -1, 0, false},
		{"past", now - 10, 0, false},
		{"now", now, 0, false},
		{"future before", now + 10, 9 * time.Second, true},
		{"future at", now + 10, 10 * time.Second, false},
		{"future after", now + 10, 11 * time.Second, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClock()
			s := newStore(t, Config{Now: c.Now})
			set(t, s, "k", "old") // a dead-on-arrival set must also hide the old value
			if r, _ := s.Set([]byte("k"), []byte("v"), ModeSet, 0, tt.exptime, 0); r != Stored {
				t.Fatal(r)
			}
			c.Add(tt.advance)
			v, _, ok := get(s, "k")
			if ok != tt.hit || (ok && v != "v") {
				t.Fatalf("get %q %v, want hit %v", v, ok, tt.hit)
			}
			if !tt.hit {
				if r, _ := s.Set([]byte("k"), []byte("a"), ModeAdd, 0, 0, 0); r != Stored {
					t.Fatalf("add over an expired item: %v", r)
				}
			}
		})
	}
}

func TestExpiredRemovedOnRead(t *testing.T) {
	c := newClock()
	s := newStore(t, Config{Now: c.Now})
	s.Set([]byte("k"), []byte("v"), ModeSet, 0, c.Unix()+1, 0)
	c.Add(2 * time.Second)
	if _, _, ok := get(s, "k"); ok {
		t.Fatal("hit after expiry")
	}
	st := s.Stats()
	if st.Items != 0 || st.Bytes != 0 || st.Expired != 1 {
		t.Fatalf("expired item still held: %+v", st)
	}
	if r := s.Delete([]byte("k"), 0); r != NotFound {
		t.Fatalf("delete expired: %v", r)
	}
}

func TestTouch(t *testing.T) {
	c := newClock()
	s := newStore(t, Config{Now: c.Now})
	cas := set(t, s, "k", "v")
	if _, ok := s.Touch([]byte("nope"), 0); ok {
		t.Fatal("touch missing")
	}
	m, ok := s.Touch([]byte("k"), c.Unix()+5)
	if !ok || m.CAS != cas || m.Exptime != c.Unix()+5 || m.Fetched {
		t.Fatalf("touch: %+v %v", m, ok)
	}
	v, m, ok := s.GetAndTouch([]byte("k"), c.Unix()+20, nil)
	if !ok || string(v) != "v" || m.Fetched || m.Exptime != c.Unix()+20 {
		t.Fatalf("gat: %q %+v %v", v, m, ok)
	}
	c.Add(10 * time.Second)
	_, m, ok = get(s, "k")
	if !ok || !m.Fetched || m.CAS != cas {
		t.Fatalf("after gat: %+v %v", m, ok)
	}
	if _, ok := s.Touch([]byte("k"), -1); !ok {
		t.Fatal("touch to the past of a live item")
	}
	if _, _, ok := get(s, "k"); ok {
		t.Fatal("hit after touch to the past")
	}
}

func TestMetaAccess(t *testing.T) {
	c := newClock()
	s := newStore(t, Config{Now: c.Now})
	set(t, s, "k", "v")
	t0 := c.Unix()
	_, m, _ := get(s, "k")
	if m.Fetched || m.Size != 1 {
		t.Fatalf("first get: %+v", m)
	}
	c.Add(3 * time.Second)
	if _, m, _ = s.Peek([]byte("k"), nil); !m.Fetched || m.LastAccess != t0 {
		t.Fatalf("peek: %+v", m)
	}
	_, m, _ = get(s, "k")
	if m.LastAccess != t0 {
		t.Fatalf("second get: %+v", m)
	}
	_, m, _ = get(s, "k")
	if m.LastAccess != t0+3 {
		t.Fatalf("third get: %+v", m)
	}
	set(t, s, "k", "w")
	if _, m, _ = get(s, "k"); m.Fetched {
		t.Fatalf("fetched after a new set: %+v", m)
	}
}

func TestFlushAll(t *testing.T) {
	c := newClock()
	s := newStore(t, Config{Now: c.Now})
	set(t, s, "a", "1")
	s.FlushAll(0)
	set(t, s, "b", "2") // same clock tick as the flush: stays
	if _, _, ok := get(s, "a"); ok {
		t.Fatal("a survived flush")
	}
	if _, _, ok := get(s, "b"); !ok {
		t.Fatal("b stored after the flush is gone")
	}

	s.FlushAll(10 * time.Second)
	c.Add(5 * time.Second)
	set(t, s, "c", "3") // before the flush moment: goes at it
	if _, _, ok := get(s, "b"); !ok {
		t.Fatal("b gone before the flush moment")
	}
	c.Add(5 * time.Second)
	for _, k := range []string{"a", "b", "c"} {
		if _, _, ok := get(s, k); ok {
			t.Fatalf("%s survived the delayed flush", k)
		}
	}
	c.Add(time.Second)
	set(t, s, "d", "4")
	s.FlushAll(time.Hour) // a later flush does not revive what one flushed
	set(t, s, "c", "5")
	if _, _, ok := get(s, "d"); !ok {
		t.Fatal("d stored after the flush is gone")
	}
	if v, _, ok := get(s, "c"); !ok || v != "5" {
		t.Fatal("c stored after the flush is gone")
	}
	if st := s.Stats(); st.Flushed != 3 {
		t.Fatalf("flushed %d", st.Flushed)
	}
}

func TestIncr(t *testing.T) {
	tests := []struct {
		name   string
		stored string
		delta  uint64
		decr   bool
		want   uint64
		text   string
		res    Result
	}{
		{"incr", "10", 5, false, 15, "15", Stored},
		{"incr grows", "99", 1, false, 100, "100", Stored},
		{"incr wraps", "18446744073709551615", 2, false, 1, "1                   ", Stored},
		{"decr", "10", 3, true, 7, "7 ", Stored},
		{"decr shrinks padded", "100", 1, true, 99, "99 ", Stored},
		{"decr floors", "5", 9, true, 0, "0", Stored},
		{"padded input", " 12  ", 1, false, 13, "13   ", Stored},
		{"non-numeric", "12a", 1, false, 0, "12a", NonNumeric},
		{"negative", "-1", 1, true, 0, "-1", NonNumeric},
		{"empty", "", 1, false, 0, "", NonNumeric},
		{"overflow", "18446744073709551616", 1, false, 0, "18446744073709551616", NonNumeric},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t, Config{})
			s.Set([]byte("k"), []byte(tt.stored), ModeSet, 9, 0, 0)
			n, cas, r := s.Incr([]byte("k"), tt.delta, tt.decr, nil)
			if r != tt.res || n != tt.want {
				t.Fatalf("got %d %v, want %d %v", n, r, tt.want, tt.res)
			}
			v, m, _ := get(s, "k")
			if v != tt.text || m.Flags != 9 {
				t.Fatalf("stored %q flags %d, want %q", v, m.Flags, tt.text)
			}
			if r == Stored && m.CAS != cas {
				t.Fatalf("cas %d, incr returned %d", m.CAS, cas)
			}
		})
	}
}

func TestIncrMissing(t *testing.T) {
	c := newClock()
	s := newStore(t, Config{Now: c.Now})
	if _, _, r := s.Incr([]byte("k"), 1, false, nil); r != NotFound {
		t.Fatalf("incr missing: %v", r)
	}
	n, cas, r := s.Incr([]byte("k"), 1, false, &Vivify{Initial: 40, Exptime: c.Unix() + 5})
	if r != Stored || n != 40 || cas == 0 {
		t.Fatalf("vivify: %d %d %v", n, cas, r)
	}
	if n, _, _ := s.Incr([]byte("k"), 2, false, &Vivify{Initial: 7}); n != 42 {
		t.Fatalf("incr after vivify: %d", n)
	}
	if _, _, r := s.IncrCAS([]byte("k"), 2, false, nil, cas); r != Exists {
		t.Fatalf("incr stale cas: %v", r)
	}
	c.Add(5 * time.Second)
	if _, _, r := s.Incr([]byte("k"), 1, false, nil); r != NotFound {
		t.Fatalf("incr expired: %v", r)
	}
}

func TestTooLarge(t *testing.T) {
	s := newStore(t, Config{MaxItemSize: 10})
	if r, _ := s.Set([]byte("k"), make([]byte, 11), ModeSet, 0, 0, 0); r != TooLarge {
		t.Fatalf("set: %v", r)
	}
	set(t, s, "k", "123456")
	if r, _ := s.Set([]byte("k"), []byte("12345"), ModeAppend, 0, 0, 0); r != TooLarge {
		t.Fatalf("append: %v", r)
	}
}

func TestBigItem(t *testing.T) {
	for _, limit := range []int64{64 << 20, 256 << 20} {
		t.Run(fmt.Sprint(limit>>20, "MiB"), func(t *testing.T) {
			s := newStore(t, Config{MemoryLimit: limit})
			val := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
			if r, _ := s.Set([]byte("big"), val, ModeSet, 0, 0, 0); r != Stored {
				t.Fatal(r)
			}
			got, _, ok := s.Get([]byte("big"), nil)
			if !ok || !bytes.Equal(got, val) {
				t.Fatalf("round trip: ok %v len %d", ok, len(got))
			}
		})
	}
}

func TestMemoryBound(t *testing.T) {
	const limit = 4 << 20
	s := newStore(t, Config{MemoryLimit: limit})
	val := make([]byte, 1000)
	var stored int64
	for i := 0; stored < 10*limit; i++ {
		k := fmt.Appendf(nil, "key-%d", i)
		s.Set(k, val, ModeSet, 0, 0, 0)
		stored += int64(len(k) + len(val) + ItemOverhead)
		if i%1000 == 0 {
			if st := s.Stats(); st.Bytes > limit {
				t.Fatalf("at %d bytes stored: %+v", stored, st)
			}
		}
	}
	st := s.Stats()
	if st.Bytes > limit || st.Evictions == 0 || st.LimitBytes != limit {
		t.Fatalf("after a fill of 10x the limit: %+v", st)
	}
	if st.Bytes < limit/2 {
		t.Fatalf("store mostly empty: %+v", st)
	}
}

func TestConcurrentIncr(t *testing.T) {
	s := newStore(t, Config{})
	set(t, s, "n", "0")
	const g, k = 8, 500
	var wg sync.WaitGroup
	for range g {
		wg.Go(func() {
			for range k {
				s.Incr([]byte("n"), 1, false, nil)
			}
		})
	}
	wg.Wait()
	if v, _, _ := get(s, "n"); v != strconv.Itoa(g*k) {
		t.Fatalf("got %s, want %d", v, g*k)
	}
}

func TestConcurrentAppend(t *testing.T) {
	s := newStore(t, Config{})
	set(t, s, "l", "")
	const g, k = 8, 200
	var wg sync.WaitGroup
	for i := range g {
		wg.Go(func() {
			for j := range k {
				mode := ModeAppend
				if j%2 == 1 {
					mode = ModePrepend
				}
				if r, _ := s.Set([]byte("l"), fmt.Appendf(nil, "<%d.%d>", i, j), mode, 0, 0, 0); r != Stored {
					t.Errorf("append: %v", r)
				}
			}
		})
	}
	wg.Wait()
	v, _, _ := get(s, "l")
	for i := range g {
		for j := range k {
			if n := strings.Count(v, fmt.Sprintf("<%d.%d>", i, j)); n != 1 {
				t.Fatalf("token %d.%d present %d times", i, j, n)
			}
		}
	}
}

func TestConcurrentCAS(t *testing.T) {
	s := newStore(t, Config{})
	set(t, s, "c", "start")
	const g, rounds = 8, 100
	for round := range rounds {
		_, m, _ := get(s, "c")
		var wins atomic.Int32
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range g {
			wg.Go(func() {
				<-start
				r, _ := s.Set([]byte("c"), fmt.Appendf(nil, "%d.%d", round, i), ModeSet, 0, 0, m.CAS)
				switch r {
				case Stored:
					wins.Add(1)
				case Exists:
				default:
					t.Errorf("cas: %v", r)
				}
			})
		}
		close(start)
		wg.Wait()
		if n := wins.Load(); n != 1 {
			t.Fatalf("round %d: %d winners", round, n)
		}
	}
}

func TestGetAllocatesNothing(t *testing.T) {
	s := newStore(t, Config{})
	key := []byte("key-0000000000000000000000000001")
	s.Set(key, make([]byte, 64), ModeSet, 0, 0, 0)
	dst := make([]byte, 0, 128)
	allocs := testing.AllocsPerRun(1000, func() {
		if _, _, ok := s.Get(key, dst[:0]); !ok {
			t.Fatal("miss")
		}
		s.Get([]byte("missing-key"), dst[:0])
	})
	if allocs != 0 {
		t.Fatalf("Get allocates %v times", allocs)
	}
}

// Writes allocate nothing either: items are written into the segments,
// outside the Go heap, also when a write evicts a segment to make room
// (the store here is small, so the sets below evict many times over).
func TestWritesAllocateNothing(t *testing.T) {
	s := newStore(t, Config{MemoryLimit: 1 << 20})
	keys := make([][]byte, 20_000)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "key-%028d", i)
	}
	val, one := make([]byte, 100), []byte("1")
	i := 0
	allocs := testing.AllocsPerRun(len(keys)-1, func() {
		k := keys[i]
		i++
		s.Set(k, val, ModeSet, 0, 0, 0)
		s.Set(k, val, ModeAppend, 0, 0, 0)
		s.Touch(k, 100)
		s.Delete(k, 0)
		s.Set(k, one, ModeSet, 0, 0, 0)
		s.Incr(k, 1, false, nil)
	})
	if allocs != 0 {
		t.Fatalf("a round of set, append, touch, delete, set and incr allocates %v times", allocs)
	}
	if st := s.Stats(); st.Evictions == 0 {
		t.Fatalf("no eviction during the writes (%+v): the test did not measure one", st)
	}
}

func TestGetInto(t *testing.T) {
	s := newStore(t, Config{})
	set(t, s, "k", "hello")
	small := make([]byte, 3)
	if n, m, ok := s.GetInto([]byte("k"), small); !ok || n != 5 || string(small) != "\x00\x00\x00" {
		t.Fatalf("too small: %d %v %q", n, ok, small)
	} else if _, m2, _ := get(s, "k"); m2.Fetched || m.Size != 5 {
		t.Fatal("a GetInto that did not fit marked the item fetched")
	}
	buf := make([]byte, 0, 8)
	n, _, ok := s.GetInto([]byte("k"), buf)
	if !ok || n != 5 || string(buf[:n]) != "hello" {
		t.Fatalf("fits: %d %v %q", n, ok, buf[:n])
	}
	if _, _, ok := s.GetInto([]byte("nope"), buf); ok {
		t.Fatal("missing key found")
	}
	allocs := testing.AllocsPerRun(100, func() { s.GetInto([]byte("k"), buf) })
	if allocs != 0 {
		t.Fatalf("GetInto allocates %v times", allocs)
	}
}

func TestResultString(t *testing.T) {
	for r := Stored; r <= NonNumeric; r++ {
		if strings.HasPrefix(r.String(), "Result(") {
			t.Errorf("%d has no name", r)
		}
	}
	if got := Result(200).String(); got != "Result(200)" {
		t.Errorf("got %q", got)
	}
}

func TestWriteAllocs(t *testing.T) {
	s := newStore(t, Config{})
	key, val := []byte("key:hot"), make([]byte, 32)
	s.Set(key, val, ModeSet, 0, 0, 0)
	tests := []struct {
		name string
		max  float64
		fn   func()
	}{
		{"delete missing", 0, func() { s.Delete([]byte("key:cold"), 0) }},
		{"touch missing", 0, func() { s.Touch([]byte("key:cold"), 0) }},
		{"overwrite", 2, func() { s.Set(key, val, ModeSet, 0, 0, 0) }}, // item + value
	}
	for _, tt := range tests {
		if a := testing.AllocsPerRun(100, tt.fn); a > tt.max {
			t.Errorf("%s: %v allocations, want at most %v", tt.name, a, tt.max)
		}
	}
}

// TestItemLargerThanDefault: with a larger MaxItemSize (serve
// --max-item-size) a 4 MiB value is stored and read back whole, beside
// small items; the largest item a limit allows is a sixteenth of it
// (MaxItemSizeFor), and a larger MaxItemSize is lowered to that.
func TestItemLargerThanDefault(t *testing.T) {
	s := newStore(t, Config{MemoryLimit: 256 << 20, MaxItemSize: 4 << 20})
	if s.MaxItemSize() != 4<<20 {
		t.Fatalf("MaxItemSize %d, want 4 MiB", s.MaxItemSize())
	}
	val := bytes.Repeat([]byte("0123456789abcdef"), 4<<16) // 4 MiB
	set(t, s, "small", "v")
	if r, _ := s.Set([]byte("big"), val, ModeSet, 0, 0, 0); r != Stored {
		t.Fatal(r)
	}
	if got, _, ok := s.Get([]byte("big"), nil); !ok || !bytes.Equal(got, val) {
		t.Fatalf("round trip: ok %v len %d", ok, len(got))
	}
	if v, _, ok := get(s, "small"); !ok || v != "v" {
		t.Fatalf("small: %q %v", v, ok)
	}
	if r, _ := s.Set([]byte("bigger"), append(val, 'x'), ModeSet, 0, 0, 0); r != TooLarge {
		t.Fatalf("4 MiB + 1: %v, want TooLarge", r)
	}
	most := MaxItemSizeFor(16 << 20)
	if most >= 1<<20 || most < 512<<10 {
		t.Fatalf("MaxItemSizeFor(16 MiB) = %d: want a sixteenth of it, less a header and a key", most)
	}
	if got := newStore(t, Config{MemoryLimit: 16 << 20, MaxItemSize: 4 << 20}).MaxItemSize(); got != most {
		t.Fatalf("a 4 MiB MaxItemSize in 16 MiB: %d, want it lowered to %d", got, most)
	}
}
