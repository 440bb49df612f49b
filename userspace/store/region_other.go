//go:build !linux

package store

// mapRegion falls back on the Go heap where there is no mmap of
// anonymous memory to rely on.
func mapRegion(n int) ([]byte, error) { return make([]byte, n), nil }

func unmapRegion([]byte) {}

// dropPages zeroes b, as madvise(MADV_DONTNEED) leaves it.
func dropPages(b []byte) { clear(b) }
