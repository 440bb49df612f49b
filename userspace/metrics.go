package userspace

import (
	"math/bits"
	"sync/atomic"
	"time"

	"github.com/rebound-net/rebound/codec"
)

// WorkerStats are the counters of one worker (one rx queue, one UDP socket
// or all TCP connections). Workers add to them once per batch with atomics;
// readers (metrics, stats) may read at any time.
type WorkerStats struct {
	Transport string // "xdp", "udp" or "tcp"
	Queue     int    // rx queue or worker index

	Rx, Tx   atomic.Uint64 // requests received, replies sent
	Batches  atomic.Uint64
	Drops    [codec.NumReasons]atomic.Uint64 // not answered, by reason
	Rejects  [codec.NumReasons]atomic.Uint64 // answered with an error status, by reason
	TxErrors atomic.Uint64                   // replies the transport failed to send
	RxErrors atomic.Uint64                   // receive calls that failed
	// UDP sockets only: requests that arrived merged by GRO, sends that
	// carried several replies (GSO), and whether GSO was turned off
	// after the kernel refused it.
	Coalesced, GSOSends atomic.Uint64
	GSOOff              atomic.Bool
	// BatchSize counts batches by size: bucket i holds sizes in
	// [2^i, 2^(i+1)), up to the largest batch a server takes (1024).
	BatchSize [11]atomic.Uint64
	// Service is the handler's time per batch.
	Service Histogram
	// Failed is set when the worker stopped on an error (its queue then
	// falls back to the kernel); TxStalled while its tx ring has not
	// drained for txStallAfter (link down, say).
	Failed, TxStalled atomic.Bool
}

func (w *WorkerStats) batch(n int) {
	w.Batches.Add(1)
	w.BatchSize[batchBucket(n)].Add(1)
}

// batchBucket is the BatchSize bucket of a batch of n: bucket i holds
// sizes in [2^i, 2^(i+1)); the last one, [1024, 2048), holds the largest
// batch a server takes.
func batchBucket(n int) int { return min(bits.Len(uint(n))-1, len(WorkerStats{}.BatchSize)-1) }

// Histogram is a fixed-bucket latency histogram with atomic counts: bucket
// i counts durations below 1µs·2^i, the last one everything above.
type Histogram struct {
	Counts [histBuckets]atomic.Uint64
	SumNs  atomic.Uint64
}

const histBuckets = 16 // 1µs .. 16ms, then +Inf

// Observe records one duration.
func (h *Histogram) Observe(d time.Duration) {
	us := uint64(d / time.Microsecond)
	i := min(bits.Len64(us), histBuckets-1)
	h.Counts[i].Add(1)
	h.SumNs.Add(uint64(d))
}

// Bound returns the upper bound of bucket i in seconds (the last is +Inf).
func (h *Histogram) Bound(i int) float64 {
	return float64(uint64(1)<<i) * 1e-6
}

// Snapshot is a point-in-time copy of a worker's counters, for reports.
type Snapshot struct {
	Transport string
	Queue     int
	Rx, Tx    uint64
	Batches   uint64
	Drops     map[string]uint64
	Rejects   map[string]uint64
	TxErrors  uint64
}

// Snapshot copies the counters.
func (w *WorkerStats) Snapshot() Snapshot {
	s := Snapshot{Transport: w.Transport, Queue: w.Queue, Rx: w.Rx.Load(), Tx: w.Tx.Load(),
		Batches: w.Batches.Load(), TxErrors: w.TxErrors.Load(), Drops: map[string]uint64{}, Rejects: map[string]uint64{}}
	for r := range w.Drops {
		if v := w.Drops[r].Load(); v != 0 {
			s.Drops[codec.Reason(r).String()] = v
		}
		if v := w.Rejects[r].Load(); v != 0 {
			s.Rejects[codec.Reason(r).String()] = v
		}
	}
	return s
}
