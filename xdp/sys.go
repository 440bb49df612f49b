package xdp

import (
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Kernel constants that x/sys/unix names; kept here under short names with
// the kernel's name beside each.
const (
	solXDP            = unix.SOL_XDP              // SOL_XDP
	xdpRingNeedWakeup = unix.XDP_RING_NEED_WAKEUP // XDP_RING_NEED_WAKEUP
	// xdpMaxTxSkbBudget is XDP_MAX_TX_SKB_BUDGET (Linux 6.16): how many tx
	// descriptors one sendto kick sends in copy mode (32 before it).
	xdpMaxTxSkbBudget = unix.XDP_MAX_TX_SKB_BUDGET
)

// getsockopt reads a struct-valued socket option of SOL_XDP into v.
func getsockopt(fd, opt int, v unsafe.Pointer, size uintptr) error {
	l := uint32(size)
	// unsafe: the kernel writes at most l bytes into *v, which is size bytes.
	_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), solXDP, uintptr(opt), uintptr(v), uintptr(unsafe.Pointer(&l)), 0)
	if e != 0 {
		return os.NewSyscallError("getsockopt", e)
	}
	return nil
}

// setsockopt writes a struct-valued socket option of SOL_XDP from v.
func setsockopt(fd, opt int, v unsafe.Pointer, size uintptr) error {
	// unsafe: the kernel reads size bytes from *v.
	_, _, e := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(fd), solXDP, uintptr(opt), uintptr(v), size, 0)
	if e != 0 {
		return os.NewSyscallError("setsockopt", e)
	}
	return nil
}

// kick is sendto(fd, NULL, 0, MSG_DONTWAIT, NULL, 0): it tells the kernel
// to process the tx ring. It returns the raw errno so that the hot path
// builds no error value.
//
// It is a raw syscall: it never blocks (MSG_DONTWAIT), but in copy mode it
// does the sending itself and can take tens of microseconds. Through the
// scheduler-aware Syscall6, the Go runtime would hand the worker's P to
// another thread during that time and make the worker wait to get one back
// on every kick, which costs more than the kick.
func kick(fd int) unix.Errno {
	_, _, e := unix.RawSyscall6(unix.SYS_SENDTO, uintptr(fd), 0, 0, unix.MSG_DONTWAIT, 0, 0)
	return e
}

// wakeRx is recvfrom(fd, NULL, 0, MSG_DONTWAIT, NULL, NULL): it tells the
// kernel to process the fill ring when it asked for it. Raw, as kick.
func wakeRx(fd int) unix.Errno {
	_, _, e := unix.RawSyscall6(unix.SYS_RECVFROM, uintptr(fd), 0, 0, unix.MSG_DONTWAIT, 0, 0)
	return e
}

// mapRing maps one ring of a socket and returns the mapping and views of its
// producer, consumer and flags words and its entries.
func mapRing(fd int, pgoff int64, off unix.XDPRingOffset, entries uint32, entrySize uintptr) ([]byte, unsafe.Pointer, unsafe.Pointer, unsafe.Pointer, unsafe.Pointer, error) {
	length := int(off.Desc) + int(entries)*int(entrySize)
	mem, err := unix.Mmap(fd, pgoff, length, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return nil, nil, nil, nil, nil, os.NewSyscallError("mmap", err)
	}
	// unsafe: offsets come from XDP_MMAP_OFFSETS and lie inside the mapping,
	// whose length covers the descriptor array that follows them.
	base := unsafe.Pointer(unsafe.SliceData(mem))
	return mem, unsafe.Add(base, off.Producer), unsafe.Add(base, off.Consumer),
		unsafe.Add(base, off.Flags), unsafe.Add(base, off.Desc), nil
}
