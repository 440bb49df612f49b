package xdp

import (
	"errors"
	"fmt"
	"net"
	"os"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// BindMode chooses how packets move between the NIC and the UMEM.
type BindMode int

const (
	// BindAuto lets the kernel try zero-copy and fall back to copy mode.
	BindAuto BindMode = iota
	// BindCopy forces copy mode (XDP_COPY): works on every driver.
	BindCopy
	// BindZeroCopy forces zero-copy (XDP_ZEROCOPY): fails where the driver
	// has no support.
	BindZeroCopy
)

func (m BindMode) String() string {
	switch m {
	case BindCopy:
		return "copy"
	case BindZeroCopy:
		return "zerocopy"
	}
	return "auto"
}

// DefaultRingSize is the default number of entries of each ring.
const DefaultRingSize = 2048

// Config configures a Socket. The zero value gives 2048-entry rings, the
// kernel's choice of copy or zero-copy, and need_wakeup on.
type Config struct {
	RxSize, TxSize           int // socket rings; powers of two. 0 means DefaultRingSize
	FillSize, CompletionSize int // UMEM rings of this socket; powers of two. 0 means DefaultRingSize
	Bind                     BindMode
	DisableNeedWakeup        bool // poll the kernel on every batch instead of when it asks
	TxBudget                 int  // descriptors sent per kick in copy mode (XDP_MAX_TX_SKB_BUDGET); 0 keeps the kernel's 32
	// BusyPoll, above 0, asks for busy polling: the socket's rx queue is
	// then polled (its NAPI context run) from the thread that calls
	// BusyPoll, Wait or KickTx, for up to this long per call, instead of
	// from interrupts and softirqs (SO_PREFER_BUSY_POLL, SO_BUSY_POLL).
	// It pays off with the interface's napi_defer_hard_irqs and
	// gro_flush_timeout set (see docs/operations.md).
	BusyPoll time.Duration
	// BusyPollBudget is the packets one busy poll may take (default 64).
	BusyPollBudget int
}

func ringSize(name string, v int) (uint32, error) {
	if v == 0 {
		return DefaultRingSize, nil
	}
	if v < 0 || v&(v-1) != 0 || v > 1<<20 {
		return 0, fmt.Errorf("xdp: %s ring size %d: must be a power of two up to 1048576", name, v)
	}
	return uint32(v), nil
}

// Socket is an AF_XDP socket bound to one queue of one interface, with its
// four rings mapped: Fill and Completion for the UMEM, Rx and Tx for
// packets. The rings are driven by one goroutine at a time; Close must not
// run while that goroutine still uses them.
type Socket struct {
	fd       int
	umem     *UMEM
	ifindex  int
	queue    int
	zerocopy bool
	wakeup   bool // need_wakeup in use
	busyPoll bool // SO_PREFER_BUSY_POLL set

	Fill       AddrRing
	Completion AddrRing
	Rx         DescRing
	Tx         DescRing

	maps   [4][]byte // ring mappings, for munmap
	pollfd [1]unix.PollFd
	closed bool
}

// Open creates an AF_XDP socket on u and binds it to queue of the
// interface ifindex. The first socket opened on u registers it; later ones
// share it (XDP_SHARED_UMEM), each with its own fill and completion rings.
func Open(ifindex, queue int, u *UMEM, cfg Config) (s *Socket, err error) {
	if u == nil || u.closed {
		return nil, ErrClosed
	}
	sizes := [4]uint32{}
	for i, c := range []struct {
		name string
		v    int
	}{{"rx", cfg.RxSize}, {"tx", cfg.TxSize}, {"fill", cfg.FillSize}, {"completion", cfg.CompletionSize}} {
		if sizes[i], err = ringSize(c.name, c.v); err != nil {
			return nil, err
		}
	}
	if int(sizes[2]) > u.cfg.FrameCount {
		// Not an error for the kernel, but the ring could never be filled.
		return nil, fmt.Errorf("xdp: fill ring of %d entries is larger than the UMEM's %d frames", sizes[2], u.cfg.FrameCount)
	}
	if queue < 0 {
		return nil, fmt.Errorf("xdp: queue %d: must be 0 or more", queue)
	}
	if u.registered && u.regFD < 0 {
		return nil, errors.New("xdp: the socket that registered this umem is closed: no new socket can share it")
	}
	ifi, ierr := net.InterfaceByIndex(ifindex)
	if ierr != nil {
		return nil, fmt.Errorf("xdp: interface with index %d not found in this network namespace", ifindex)
	}
	ifname := ifi.Name

	fd, err := unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
			return nil, fmt.Errorf("xdp: create AF_XDP socket: %w (needs root or CAP_NET_RAW and CAP_BPF)", err)
		}
		return nil, fmt.Errorf("xdp: create AF_XDP socket: %w", os.NewSyscallError("socket", err))
	}
	sock := &Socket{fd: fd, umem: u, ifindex: ifindex, queue: queue, wakeup: !cfg.DisableNeedWakeup}
	defer func() {
		if err != nil {
			sock.release()
		}
	}()
	s = sock

	shared := u.regFD >= 0
	if !shared {
		reg := unix.XDPUmemReg{
			Addr:     uint64(uintptr(unsafe.Pointer(unsafe.SliceData(u.mem)))), // unsafe: the kernel pins this mapping
			Len:      uint64(len(u.mem)),
			Size:     uint32(u.cfg.FrameSize),
			Headroom: uint32(u.cfg.Headroom),
		}
		if err := setsockopt(fd, unix.XDP_UMEM_REG, unsafe.Pointer(&reg), unsafe.Sizeof(reg)); err != nil {
			return nil, fmt.Errorf("xdp: register umem of %d bytes: %w", len(u.mem), err)
		}
	}
	for i, opt := range []int{unix.XDP_RX_RING, unix.XDP_TX_RING, unix.XDP_UMEM_FILL_RING, unix.XDP_UMEM_COMPLETION_RING} {
		if err := unix.SetsockoptInt(fd, solXDP, opt, int(sizes[i])); err != nil {
			return nil, fmt.Errorf("xdp: set %s ring size %d: %w", [...]string{"rx", "tx", "fill", "completion"}[i], sizes[i], err)
		}
	}
	if cfg.BusyPoll > 0 {
		if err := setBusyPoll(fd, cfg.BusyPoll, cfg.BusyPollBudget); err != nil {
			return nil, err
		}
		sock.busyPoll = true
	}
	if cfg.TxBudget > 0 {
		if err := unix.SetsockoptInt(fd, solXDP, xdpMaxTxSkbBudget, cfg.TxBudget); err != nil {
			return nil, fmt.Errorf("xdp: set tx budget %d (XDP_MAX_TX_SKB_BUDGET needs Linux 6.16): %w", cfg.TxBudget, err)
		}
	}
	var off unix.XDPMmapOffsets
	if err := getsockopt(fd, unix.XDP_MMAP_OFFSETS, unsafe.Pointer(&off), unsafe.Sizeof(off)); err != nil {
		return nil, fmt.Errorf("xdp: read ring offsets: %w", err)
	}
	if err := s.mapRings(off, sizes); err != nil {
		return nil, err
	}

	sa := &unix.SockaddrXDP{Ifindex: uint32(ifindex), QueueID: uint32(queue)}
	if s.wakeup {
		sa.Flags |= unix.XDP_USE_NEED_WAKEUP
	}
	switch cfg.Bind {
	case BindCopy:
		sa.Flags |= unix.XDP_COPY
	case BindZeroCopy:
		sa.Flags |= unix.XDP_ZEROCOPY
	}
	if shared {
		// A sharing socket inherits the mode and need_wakeup of the one
		// that registered the umem; the kernel refuses them here.
		sa.Flags = unix.XDP_SHARED_UMEM
		sa.SharedUmemFD = uint32(u.regFD)
		sock.wakeup = u.wakeup
	}
	// The kernel releases a closed socket's hold on its queue from a work
	// queue, a moment after close returns: a queue that is busy because
	// its last socket just closed frees up within milliseconds, so retry
	// EBUSY briefly before calling it another socket's.
	for deadline := time.Now().Add(time.Second); ; {
		err := unix.Bind(fd, sa)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EBUSY) || time.Now().After(deadline) {
			return nil, bindError(ifname, queue, cfg.Bind, err)
		}
		time.Sleep(5 * time.Millisecond)
	}

	var opts struct{ flags uint32 }
	if err := getsockopt(fd, unix.XDP_OPTIONS, unsafe.Pointer(&opts), unsafe.Sizeof(opts)); err == nil {
		s.zerocopy = opts.flags&unix.XDP_OPTIONS_ZEROCOPY != 0
	}
	if !shared {
		u.regFD, u.registered, u.wakeup = fd, true, sock.wakeup
	}
	u.sockets++
	s.pollfd[0] = unix.PollFd{Fd: int32(fd), Events: unix.POLLIN}
	return s, nil
}

func bindError(ifname string, queue int, mode BindMode, err error) error {
	switch {
	case errors.Is(err, unix.EINVAL):
		return fmt.Errorf("xdp: bind to %s queue %d: %w (is the queue below the interface's rx queue count? see 'ethtool -l %s')", ifname, queue, err, ifname)
	case errors.Is(err, unix.EOPNOTSUPP) && mode == BindZeroCopy:
		return fmt.Errorf("xdp: bind to %s queue %d: %w (the driver has no zero-copy support; use copy or auto)", ifname, queue, err)
	case errors.Is(err, unix.EBUSY):
		return fmt.Errorf("xdp: bind to %s queue %d: %w (another AF_XDP socket is bound to this queue)", ifname, queue, err)
	case errors.Is(err, unix.ENODEV):
		return fmt.Errorf("xdp: bind to %s queue %d: %w (interface gone or down)", ifname, queue, err)
	}
	return fmt.Errorf("xdp: bind to %s queue %d: %w", ifname, queue, err)
}

func (s *Socket) mapRings(off unix.XDPMmapOffsets, sizes [4]uint32) error {
	type spec struct {
		pgoff int64
		off   unix.XDPRingOffset
		entry uintptr
		name  string
	}
	specs := [4]spec{
		{unix.XDP_PGOFF_RX_RING, off.Rx, unsafe.Sizeof(Desc{}), "rx"},
		{unix.XDP_PGOFF_TX_RING, off.Tx, unsafe.Sizeof(Desc{}), "tx"},
		{unix.XDP_UMEM_PGOFF_FILL_RING, off.Fr, 8, "fill"},
		{unix.XDP_UMEM_PGOFF_COMPLETION_RING, off.Cr, 8, "completion"},
	}
	for i, sp := range specs {
		mem, prod, cons, flags, desc, err := mapRing(s.fd, sp.pgoff, sp.off, sizes[i], sp.entry)
		if err != nil {
			return fmt.Errorf("xdp: map %s ring: %w", sp.name, err)
		}
		s.maps[i] = mem
		r := newRing(prod, cons, flags, sizes[i])
		switch i {
		case 0:
			s.Rx = DescRing{ring: r, entries: unsafe.Slice((*Desc)(desc), sizes[i])} // unsafe: inside the mapping
		case 1:
			s.Tx = DescRing{ring: r, entries: unsafe.Slice((*Desc)(desc), sizes[i]), producer: true}
		case 2:
			s.Fill = AddrRing{ring: r, entries: unsafe.Slice((*uint64)(desc), sizes[i]), producer: true}
		case 3:
			s.Completion = AddrRing{ring: r, entries: unsafe.Slice((*uint64)(desc), sizes[i])}
		}
	}
	// The kernel may already have a producer index for a ring (it starts
	// at 0 today); pick up both indices so our views begin where it is.
	for _, r := range []*ring{&s.Rx.ring, &s.Completion.ring} {
		r.local = r.consumer.Load()
		r.remote = r.local
	}
	for _, r := range []*ring{&s.Tx.ring, &s.Fill.ring} {
		r.local = r.producer.Load()
		r.remote = r.consumer.Load()
	}
	return nil
}

// Refill moves free frames from pool onto the fill ring, as many as both
// have room for, and returns how many. It allocates nothing.
func (s *Socket) Refill(pool *Pool) int {
	total := 0
	for pool.Free() > 0 {
		v := s.Fill.Reserve(pool.Free())
		if len(v) == 0 {
			s.Fill.Submit(0)
			break
		}
		n := pool.Get(v)
		s.Fill.Submit(n)
		total += n
	}
	return total
}

// Reclaim takes every sent frame off the completion ring back into pool
// and returns how many. It allocates nothing.
func (s *Socket) Reclaim(pool *Pool) int {
	total := 0
	for {
		c := s.Completion.Peek(s.Completion.Size())
		if len(c) == 0 {
			s.Completion.Release(0)
			return total
		}
		for _, a := range c {
			pool.Put(a)
		}
		s.Completion.Release(len(c))
		total += len(c)
	}
}

// FD is the socket's file descriptor, for the XSKMAP of the XDP program.
func (s *Socket) FD() int { return s.fd }

// Queue is the queue the socket is bound to.
func (s *Socket) Queue() int { return s.queue }

// Ifindex is the index of the interface the socket is bound to.
func (s *Socket) Ifindex() int { return s.ifindex }

// ZeroCopy reports whether the kernel bound the socket in zero-copy mode.
func (s *Socket) ZeroCopy() bool { return s.zerocopy }

// NeedWakeup reports whether the socket uses need_wakeup.
func (s *Socket) NeedWakeup() bool { return s.wakeup }

// UMEM is the UMEM the socket uses.
func (s *Socket) UMEM() *UMEM { return s.umem }

// Err reports ErrClosed after Close, or ErrRingCorrupt when the kernel's
// index of a ring moved further than the ring is long.
func (s *Socket) Err() error {
	if s.closed {
		return ErrClosed
	}
	if s.Rx.corrupt || s.Tx.corrupt || s.Fill.corrupt || s.Completion.corrupt {
		return ErrRingCorrupt
	}
	return nil
}

// ErrRingCorrupt means a ring's shared index is impossible: the socket
// cannot be used any more.
var ErrRingCorrupt = errors.New("xdp: ring index out of range: ring corrupt")

// KickTx tells the kernel to send what the tx ring holds, when it asked for
// it (need_wakeup) or always without need_wakeup. Transient conditions
// (EAGAIN, EBUSY, ENOBUFS: the kernel is still sending) are not errors: call
// again after the next batch. It allocates nothing.
func (s *Socket) KickTx() error {
	if s.closed {
		return ErrClosed
	}
	return s.wake(s.Tx.NeedsWakeup(), kick)
}

// WakeRx tells the kernel to look at the fill ring when it asked for it
// (need_wakeup): needed by drivers that refill only when woken.
func (s *Socket) WakeRx() error {
	if s.closed {
		return ErrClosed
	}
	return s.wake(s.Fill.NeedsWakeup(), wakeRx)
}

// wake calls the wake-up syscall when the ring asked for it, or always
// without need_wakeup. The kernel still being busy is not an error.
func (s *Socket) wake(asked bool, call func(fd int) unix.Errno) error {
	if s.wakeup && !asked {
		return nil
	}
	switch e := call(s.fd); e {
	case 0, unix.EAGAIN, unix.EBUSY, unix.ENOBUFS:
		return nil
	default:
		return e
	}
}

// setBusyPoll turns busy polling on for fd: d per call, budget packets
// per poll (0: 64).
func setBusyPoll(fd int, d time.Duration, budget int) error {
	if budget <= 0 {
		budget = 64
	}
	us := max(int(d/time.Microsecond), 1)
	for _, o := range []struct {
		name string
		opt  int
		v    int
	}{{"SO_PREFER_BUSY_POLL", unix.SO_PREFER_BUSY_POLL, 1}, {"SO_BUSY_POLL", unix.SO_BUSY_POLL, us}, {"SO_BUSY_POLL_BUDGET", unix.SO_BUSY_POLL_BUDGET, budget}} {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, o.opt, o.v); err != nil {
			if errors.Is(err, unix.EPERM) {
				return fmt.Errorf("xdp: busy poll: set %s to %d: %w (needs CAP_NET_ADMIN)", o.name, o.v, err)
			}
			return fmt.Errorf("xdp: busy poll: set %s to %d: %w", o.name, o.v, err)
		}
	}
	return nil
}

// BusyPolling reports whether the socket was opened with Config.BusyPoll.
func (s *Socket) BusyPolling() bool { return s.busyPoll }

// BusyPoll runs the rx queue's NAPI context once from this thread, for at
// most Config.BusyPoll, without blocking (a recvmsg with MSG_DONTWAIT,
// which busy-polls an AF_XDP socket before it looks at its ring). A no-op
// without Config.BusyPoll. It allocates nothing.
func (s *Socket) BusyPoll() error {
	if s.closed {
		return ErrClosed
	}
	if !s.busyPoll {
		return nil
	}
	_, _, e := unix.Syscall6(unix.SYS_RECVFROM, uintptr(s.fd), 0, 0, unix.MSG_DONTWAIT, 0, 0)
	switch e {
	case 0, unix.EAGAIN, unix.EBUSY, unix.ENOBUFS, unix.EINTR:
		return nil
	default:
		return os.NewSyscallError("recvfrom", e)
	}
}

// Wait blocks until the rx ring has packets or timeout passes, in poll(2);
// it reports whether there is something to read. With need_wakeup, poll is
// also what wakes a driver that waits for the fill ring. The calling
// goroutine keeps its OS thread while it waits. It allocates nothing.
func (s *Socket) Wait(timeout time.Duration) (bool, error) {
	if s.closed {
		return false, ErrClosed
	}
	ms := int(timeout / time.Millisecond)
	if timeout > 0 && ms == 0 {
		ms = 1
	}
	s.pollfd[0].Revents = 0
	n, err := unix.Poll(s.pollfd[:], ms)
	if err != nil {
		if err == unix.EINTR {
			return false, nil
		}
		return false, os.NewSyscallError("poll", err)
	}
	if n > 0 && s.pollfd[0].Revents&(unix.POLLERR|unix.POLLNVAL) != 0 {
		return false, fmt.Errorf("xdp: poll: socket error (revents %#x)", s.pollfd[0].Revents)
	}
	return n > 0 && s.pollfd[0].Revents&unix.POLLIN != 0, nil
}

// Statistics are the kernel's counters of one socket (struct xdp_statistics).
type Statistics struct {
	RxDropped            uint64 // dropped for reasons other than invalid descriptors
	RxInvalidDescs       uint64 // dropped because of invalid fill descriptors
	TxInvalidDescs       uint64 // tx descriptors the kernel refused
	RxRingFull           uint64 // dropped because the rx ring was full
	RxFillRingEmptyDescs uint64 // times the fill ring was empty when a packet came
	TxRingEmptyDescs     uint64 // times the kernel found the tx ring empty
}

// Statistics reads the kernel's counters for the socket.
func (s *Socket) Statistics() (Statistics, error) {
	if s.closed {
		return Statistics{}, ErrClosed
	}
	var st unix.XDPStatistics
	if err := getsockopt(s.fd, unix.XDP_STATISTICS, unsafe.Pointer(&st), unsafe.Sizeof(st)); err != nil {
		return Statistics{}, fmt.Errorf("xdp: read statistics: %w", err)
	}
	return Statistics{
		RxDropped: st.Rx_dropped, RxInvalidDescs: st.Rx_invalid_descs, TxInvalidDescs: st.Tx_invalid_descs,
		RxRingFull: st.Rx_ring_full, RxFillRingEmptyDescs: st.Rx_fill_ring_empty_descs, TxRingEmptyDescs: st.Tx_ring_empty_descs,
	}, nil
}

// Close unbinds the socket, unmaps its rings and closes its fd. Frames the
// kernel held are then free again, whatever the rings said. Close is
// idempotent; every other method returns ErrClosed afterwards.
func (s *Socket) Close() error {
	if s.closed {
		return nil
	}
	s.umem.sockets--
	if s.umem.regFD == s.fd {
		// The registration lives on in the kernel while sharers are open;
		// new sockets can no longer share through this fd.
		s.umem.regFD = -1
	}
	return s.release()
}

// release unmaps and closes whatever Open had set up, and leaves the rings
// empty so that a use after Close finds nothing instead of faulting.
func (s *Socket) release() error {
	s.closed = true
	var errs []error
	for i, m := range s.maps {
		if m != nil {
			errs = append(errs, unix.Munmap(m))
			s.maps[i] = nil
		}
	}
	s.Rx, s.Tx, s.Fill, s.Completion = DescRing{ring: closedRing()}, DescRing{ring: closedRing()}, AddrRing{ring: closedRing()}, AddrRing{ring: closedRing()}
	errs = append(errs, unix.Close(s.fd))
	return errors.Join(errs...)
}

// closedRing is a ring of no entries over private memory: Reserve and Peek
// on it return nothing.
func closedRing() ring {
	words := new([3]uint32)
	return newRing(unsafe.Pointer(&words[0]), unsafe.Pointer(&words[1]), unsafe.Pointer(&words[2]), 0)
}
