package store

import (
	"testing"
	"time"
)

// The default clock follows time.Now to within a tick while read, stops
// ticking after a second without a reader, and is exact again on the next
// read.
func TestCoarseClock(t *testing.T) {
	for range 3 {
		if d := time.Since(coarseNow()); d < 0 || d > 5*coarseTick {
			t.Fatalf("coarse clock %v behind", d)
		}
		time.Sleep(coarseTick) // reads a tick apart
	}
	deadline := time.Now().Add(5 * time.Second)
	for coarse.live.Load() {
		if time.Now().After(deadline) {
			t.Fatal("the clock still ticks 5 s after its last reader")
		}
		time.Sleep(50 * time.Millisecond) // waiting for the clock to notice it is idle, without reading it
	}
	time.Sleep(100 * time.Millisecond) // stopped: the stored time goes stale
	if d := time.Since(coarseNow()); d < 0 || d > 5*coarseTick {
		t.Fatalf("first read after a stop is %v behind", d)
	}
	if !coarse.live.Load() {
		t.Fatal("a read did not start the clock again")
	}
}
