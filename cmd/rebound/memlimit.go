package main

import (
	"log/slog"
	"os"
	"runtime/debug"
)

// heapOverhead is what the Go runtime may hold besides the connections
// under heapLimit: the engine's buffers, the store's locks and segment
// table (the store's items and index are mapped outside the heap), and
// garbage between collections.
const heapOverhead = 64 << 20

// connHeap is what heapLimit allows an open TCP connection: its goroutine
// and starting buffers take about 16 KiB (TestManyConnections measures
// 15-19 KiB of RSS each).
const connHeap = 32 << 10

// heapLimit sets the Go runtime's memory limit, unless GOMEMLIMIT is set
// (the operator's word wins): connHeap for each connection --max-conns
// allows, plus heapOverhead. The store's memory (--kv-memory) is not in
// the Go heap, so the limit does not follow it: without one, a heap of
// connection buffers could grow to twice what is live before the
// collector ran. It is a soft limit: the collector works harder near it,
// and a live heap above it is not refused, only collected often.
func heapLimit(kvMemory int64, conns int, log *slog.Logger) {
	if v := os.Getenv("GOMEMLIMIT"); v != "" {
		log.Info("memory limit of the Go heap from GOMEMLIMIT", "limit", v)
		return
	}
	limit := int64(conns)*connHeap + heapOverhead
	debug.SetMemoryLimit(limit)
	log.Info("memory limit of the Go heap (the store's --kv-memory is mapped apart)", "limit_mib", limit>>20, "kv_memory_mib", kvMemory>>20, "conns", conns)
}
