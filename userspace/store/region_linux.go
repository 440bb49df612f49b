package store

import "syscall"

// mapRegion returns n bytes of zeroed anonymous memory outside the Go
// heap: the collector neither scans nor counts it (GOMEMLIMIT leaves it
// out), and a page takes RSS only once it is written.
func mapRegion(n int) ([]byte, error) {
	return syscall.Mmap(-1, 0, n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANONYMOUS|syscall.MAP_NORESERVE)
}

// unmapRegion returns what mapRegion gave.
func unmapRegion(b []byte) { _ = syscall.Munmap(b) }

// dropPages gives b's memory back to the system: it reads as zeros after,
// and takes RSS again only once written.
func dropPages(b []byte) {
	if len(b) > 0 {
		_ = syscall.Madvise(b, syscall.MADV_DONTNEED)
	}
}
