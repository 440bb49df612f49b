package xdp

import (
	"testing"
	"unsafe"
)

// testRing builds a ring over Go memory whose indices start at start, the
// way the kernel would see it, so index arithmetic can be tested without a
// socket.
func testRing(size uint32, start uint32) (*[3]uint32, ring) {
	w := new([3]uint32)
	w[0], w[1] = start, start
	r := newRing(unsafe.Pointer(&w[0]), unsafe.Pointer(&w[1]), unsafe.Pointer(&w[2]), size)
	r.local, r.remote = start, start
	return w, r
}

func TestProducerRingWrap(t *testing.T) {
	for _, start := range []uint32{0, 5, 0xFFFFFFF0, 0xFFFFFFFF} {
		w, r := testRing(8, start)
		fill := AddrRing{ring: r, entries: make([]uint64, 8), producer: true}
		total := 0
		for round := 0; round < 50; round++ {
			// Produce as much as fits, possibly in two views at the wrap.
			for {
				v := fill.Reserve(100)
				if len(v) == 0 {
					break
				}
				for i := range v {
					v[i] = uint64(total + i)
				}
				fill.Submit(len(v))
				total += len(v)
			}
			if got := fill.Outstanding(); got != 8 {
				t.Fatalf("start %#x: %d outstanding on a full ring of 8", start, got)
			}
			// The "kernel" consumes 3 in order and checks what it reads.
			for i := 0; i < 3; i++ {
				idx := w[1]
				if want := uint64(total - 8 + i); fill.entries[idx&7] != want {
					t.Fatalf("start %#x: kernel read %d at %d, want %d", start, fill.entries[idx&7], idx, want)
				}
				w[1]++
			}
		}
		if w[0]-w[1] != 5 || w[0] != start+uint32(total) {
			t.Fatalf("start %#x: producer %#x consumer %#x total %d", start, w[0], w[1], total)
		}
	}
}

func TestConsumerRingWrap(t *testing.T) {
	for _, start := range []uint32{0, 0xFFFFFFFA} {
		w, r := testRing(8, start)
		rx := DescRing{ring: r, entries: make([]Desc, 8)}
		next, seen := uint64(0), uint64(0)
		for round := 0; round < 40; round++ {
			// The "kernel" produces 5 descriptors (the ring has room).
			for i := 0; i < 5; i++ {
				rx.entries[w[0]&7] = Desc{Addr: next}
				next++
				w[0]++
			}
			for {
				v := rx.Peek(3) // smaller batches than available
				if len(v) == 0 {
					break
				}
				for _, d := range v {
					if d.Addr != seen {
						t.Fatalf("start %#x: read %d, want %d", start, d.Addr, seen)
					}
					seen++
				}
				rx.Release(len(v))
			}
		}
		if seen != next || rx.Outstanding() != 0 {
			t.Fatalf("consumed %d of %d, %d left", seen, next, rx.Outstanding())
		}
	}
}

func TestRingEmptyFullAndLimits(t *testing.T) {
	w, r := testRing(4, 0)
	rx := DescRing{ring: r, entries: make([]Desc, 4)}
	if v := rx.Peek(64); len(v) != 0 {
		t.Fatalf("empty ring peeked %d", len(v))
	}
	rx.Release(0)
	w[0] = 4 // full
	if v := rx.Peek(64); len(v) != 4 {
		t.Fatalf("full ring peeked %d, want 4", len(v))
	}
	rx.Release(2)
	if v := rx.Peek(0); len(v) != 0 {
		t.Fatal("Peek(0) returned entries")
	}
	rx.Release(0)
	if v := rx.Peek(-3); len(v) != 0 {
		t.Fatal("Peek(-3) returned entries")
	}
	rx.Release(0)

	_, r2 := testRing(4, 0)
	tx := DescRing{ring: r2, entries: make([]Desc, 4), producer: true}
	if v := tx.Reserve(10); len(v) != 4 {
		t.Fatalf("reserve on empty ring gave %d", len(v))
	}
	tx.Submit(4)
	if v := tx.Reserve(1); len(v) != 0 {
		t.Fatal("reserve on full ring gave entries")
	}
	tx.Submit(0)
}

func TestRingCorruptIndexIsAnErrorNotAPanic(t *testing.T) {
	w, r := testRing(8, 0)
	rx := DescRing{ring: r, entries: make([]Desc, 8)}
	w[0] = 1000 // the kernel claims 1000 entries in a ring of 8
	if v := rx.Peek(4); len(v) != 0 || !rx.corrupt {
		t.Fatalf("corrupt producer index: got %d entries, corrupt=%v", len(v), rx.corrupt)
	}
	w2, r2 := testRing(8, 10)
	fill := AddrRing{ring: r2, entries: make([]uint64, 8), producer: true}
	for v := fill.Reserve(8); len(v) > 0; v = fill.Reserve(8) {
		fill.Submit(len(v))
	}
	w2[1] = 30 // consumed more than produced
	if v := fill.Reserve(4); len(v) != 0 || !fill.corrupt {
		t.Fatalf("corrupt consumer index: got %d, corrupt=%v", len(v), fill.corrupt)
	}
}

func TestRingMisusePanics(t *testing.T) {
	_, r := testRing(8, 0)
	tx := DescRing{ring: r, entries: make([]Desc, 8), producer: true}
	tx.Reserve(2)
	mustPanic(t, "submit more than reserved", func() { tx.Submit(3) })
	_, r2 := testRing(8, 0)
	tx2 := DescRing{ring: r2, entries: make([]Desc, 8), producer: true}
	tx2.Reserve(2)
	mustPanic(t, "reserve twice", func() { tx2.Reserve(2) })
}

func mustPanic(t *testing.T, what string, f func()) {
	t.Helper()
	defer func() {
		if recover() == nil {
			t.Fatalf("%s: no panic", what)
		}
	}()
	f()
}

func TestPool(t *testing.T) {
	p := &Pool{free: make([]uint64, 0, 4), frameSize: 2048, mask: ^uint64(2047), first: 4096, inPool: make([]bool, 4)}
	for i := 3; i >= 0; i-- {
		p.free = append(p.free, 4096+uint64(i)*2048)
		p.inPool[i] = true
	}
	dst := make([]uint64, 3)
	if n := p.Get(dst); n != 3 || p.Free() != 1 {
		t.Fatalf("Get = %d, free %d", n, p.Free())
	}
	p.Put(dst[0] + 256 + 14) // an address inside the frame
	if p.Free() != 2 {
		t.Fatal("Put did not return the frame")
	}
	mustPanic(t, "double put", func() { p.Put(dst[0]) })
	mustPanic(t, "foreign frame", func() { p.Put(0) })
	mustPanic(t, "frame past the pool", func() { p.Put(4096 + 4*2048) })
	allocs := testing.AllocsPerRun(100, func() {
		n := p.Get(dst[:2])
		for _, a := range dst[:n] {
			p.Put(a)
		}
	})
	if allocs != 0 || p.Free() != 2 {
		t.Fatalf("allocs %v, free %d", allocs, p.Free())
	}
}

func TestConfigErrors(t *testing.T) {
	for _, c := range []UMEMConfig{{FrameSize: 1000}, {FrameCount: 1}, {Headroom: 4000}} {
		if _, err := NewUMEM(c); err == nil {
			t.Errorf("NewUMEM(%+v) accepted", c)
		}
	}
	for _, v := range []int{3, -8, 1000, 1 << 21} {
		if _, err := ringSize("rx", v); err == nil {
			t.Errorf("ring size %d accepted", v)
		}
	}
	u, err := NewUMEM(UMEMConfig{FrameCount: 16})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	if _, err := Open(1, 0, u, Config{RxSize: 48}); err == nil {
		t.Error("Open with ring size 48 accepted")
	}
	if _, err := Open(1, 0, u, Config{FillSize: 64}); err == nil {
		t.Error("Open with a fill ring larger than the umem accepted")
	}
	if _, err := u.NewPool(17); err == nil {
		t.Error("pool larger than the umem accepted")
	}
	if pkt := u.Packet(uint64(15*4096+4000), 200); pkt != nil {
		t.Error("a packet crossing the end of a frame was accepted")
	}
	if pkt := u.Packet(uint64(16*4096), 10); pkt != nil {
		t.Error("a packet past the umem was accepted")
	}
	if pkt := u.Packet(4096+256, 60); len(pkt) != 60 || cap(pkt) != 4096-256 {
		t.Errorf("packet view len %d cap %d", len(pkt), cap(pkt))
	}
}
