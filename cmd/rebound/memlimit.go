package main

import (
	"log/slog"
	"os"
	"runtime/debug"
)

// heapOverhead is what the Go runtime may hold besides the store's items
// and the connections under heapLimit: the engine's buffers, garbage
// between collections.
const heapOverhead = 32 << 20

// connHeap is what heapLimit allows an open TCP connection: its goroutine
// and starting buffers take about 16 KiB (TestManyConnections measures
// 15-19 KiB of RSS each).
const connHeap = 32 << 10

// heapLimit sets the Go runtime's memory limit from --kv-memory, unless
// GOMEMLIMIT is set (the operator's word wins): twice the store's bound
// (the store counts an item as its key, its value and 128 bytes, and the
// heap holds more than that for small items: about 1.75x for 16-80 byte
// values), plus connHeap for each connection --max-conns allows
// (connections, not items, fill the heap of a server with many
// of them), plus heapOverhead. Without it the collector lets the heap grow
// to twice what is live, and RSS under TTL churn reached 3.7x --kv-memory
// (TestRSSUnderTTLChurn). It is a soft limit: the collector works harder
// near it, and a live heap above it is not refused, only collected often.
func heapLimit(kvMemory int64, conns int, log *slog.Logger) {
	if v := os.Getenv("GOMEMLIMIT"); v != "" {
		log.Info("memory limit of the Go heap from GOMEMLIMIT", "limit", v)
		return
	}
	limit := 2*kvMemory + int64(conns)*connHeap + heapOverhead
	debug.SetMemoryLimit(limit)
	log.Info("memory limit of the Go heap", "limit_mib", limit>>20, "kv_memory_mib", kvMemory>>20, "conns", conns)
}
