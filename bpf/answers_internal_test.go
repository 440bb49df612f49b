package bpf

import (
	"encoding/binary"
	"math"
	"os"
	"testing"
	"time"

	"github.com/rebound-net/rebound/internal/testenv"
)

// readAnswerConfig reads the flush state the program sees (the moment a
// pending flush takes effect on the program's clock as flushAt).
func readAnswerConfig(t *testing.T, it *Items) (flushCAS, flushPast, flushAt uint64) {
	t.Helper()
	var f [flushSize]byte
	if err := it.flushMap.Lookup(uint32(0), &f); err != nil {
		t.Fatal(err)
	}
	if seq := binary.LittleEndian.Uint32(f[0:]); seq&1 != 0 {
		t.Fatalf("flush state left mid-write: sequence %d", seq)
	}
	return binary.LittleEndian.Uint64(f[8:]), binary.LittleEndian.Uint64(f[16:]), binary.LittleEndian.Uint64(f[32:])
}

func near(a, b uint64) bool {
	d := int64(a - b)
	return d > -int64(time.Millisecond) && d < int64(time.Millisecond)
}

// TestCheckClockRebasesFlush: when the wall clock jumps against the
// program's clock, the moment a pending flush takes effect (given in unix
// ns, kept on the program's clock) is written again on the new offset,
// and the held items (whose deadlines are on the old one) are dropped.
// The flush's past and at stay in unix ns, as items' stored times.
func TestCheckClockRebasesFlush(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Skip(t, "privileged test: needs root (BPF)")
	}
	p, err := Load(Options{Ports: []uint16{7000}, AnswerItems: 10})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	it := p.Items()
	it.Put("k", []byte("v"), 0, 1, 0, time.Now().UnixNano())

	// As if the offset had been taken an hour before the wall clock
	// jumped forward by an hour.
	off := clockOffset(it.clock)
	it.mu.Lock()
	it.offset = off - int64(time.Hour)
	it.mu.Unlock()
	past := time.Now().UnixNano()
	at := time.Now().Add(time.Minute).UnixNano()
	if err := it.Flush(5, past, at); err != nil {
		t.Fatal(err)
	}
	it.checkClock()
	cas, gotPast, gotAt := readAnswerConfig(t, it)
	wantAt := uint64(at-off) - uint64(it.margin)
	if cas != 5 || gotPast != uint64(past) || !near(gotAt, wantAt) {
		t.Errorf("after the jump: flush cas %d past %d at %d, want 5, %d, ~%d", cas, gotPast, gotAt, past, wantAt)
	}
	if st := it.Stats(); st.Items != 0 {
		t.Errorf("items held across a clock jump: %+v", st)
	}

	// The store's "no flush" state stays none on any offset.
	if err := it.Flush(0, math.MinInt64, math.MaxInt64); err != nil {
		t.Fatal(err)
	}
	if cas, gotPast, gotAt := readAnswerConfig(t, it); cas != 0 || gotPast != 0 || gotAt != noFlushAt {
		t.Errorf("no flush: cas %d past %d at %#x", cas, gotPast, gotAt)
	}
}
