package loadgen

import (
	"bytes"
	"fmt"
	"testing"
)

// Replies handed from one queue's socket to another's flow come out whole,
// in order, once; a full inbox refuses (the reply then times out as lost)
// and counts it; handing over allocates nothing.
func TestXDPInbox(t *testing.T) {
	in := newXDPInbox()
	var got [][]byte
	collect := func(b []byte) { got = append(got, bytes.Clone(b)) }
	if n := in.take(collect); n != 0 {
		t.Fatalf("empty inbox gave %d", n)
	}
	for i := 0; i < inboxSize; i++ {
		if !in.put([]byte(fmt.Sprintf("reply-%d", i))) {
			t.Fatalf("put %d refused", i)
		}
	}
	if in.put([]byte("one too many")) || in.dropped != 1 {
		t.Fatalf("a full inbox took a reply (dropped %d)", in.dropped)
	}
	if in.put(make([]byte, inboxMsg+1)) {
		t.Fatal("an oversized reply was taken")
	}
	if n := in.take(collect); n != inboxSize || len(got) != inboxSize {
		t.Fatalf("took %d (%d collected), want %d", n, len(got), inboxSize)
	}
	for i, b := range got {
		if string(b) != fmt.Sprintf("reply-%d", i) {
			t.Fatalf("reply %d: %q", i, b)
		}
	}
	if n := in.take(collect); n != 0 {
		t.Fatalf("taken twice: %d", n)
	}
	msg := make([]byte, 100)
	sink := func([]byte) {}
	if a := testing.AllocsPerRun(100, func() { in.put(msg); in.take(sink) }); a != 0 {
		t.Fatalf("%.1f allocations per hand-over, want 0", a)
	}
}
