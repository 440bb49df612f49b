package bpf

import (
	"sync/atomic"
	"time"
	"unsafe"
)

// RunTimed runs the steering program once on frame and returns its
// verdict and how long the kernel measured the run to take.
func (p *Program) RunTimed(frame []byte) (uint32, time.Duration, error) {
	return p.objs.ReboundSteer.Benchmark(frame, 1, nil)
}

// HoldFlushWrite runs f while the flush state's sequence count is odd, as
// in the middle of a write of it.
func (it *Items) HoldFlushWrite(f func()) {
	it.mu.Lock()
	defer it.mu.Unlock()
	seq := (*uint32)(unsafe.Pointer(&it.flush[0]))
	n := atomic.LoadUint32(seq)
	atomic.StoreUint32(seq, n+1)
	f()
	atomic.StoreUint32(seq, n+2)
}
