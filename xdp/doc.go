// Package xdp is Rebound's own AF_XDP socket layer, in pure Go on
// golang.org/x/sys/unix. All unsafe code and every mmap of the project lives
// here, behind a safe API.
//
// Lifecycle:
//
//	u, _ := xdp.NewUMEM(xdp.UMEMConfig{})        // frames, mapped
//	s, _ := xdp.Open(ifindex, queue, u, xdp.Config{}) // registers u, maps 4 rings, binds
//	pool, _ := u.NewPool(u.Frames())             // the buffer pool
//	// put s.FD() into the XDP program's XSKMAP (package bpf)
//	// loop: Fill.Reserve/Submit frames from pool; Rx.Peek/Release;
//	//       Tx.Reserve/Submit; KickTx; Completion.Peek/Release back to pool
//	s.Close(); u.Close()
//
// Rings follow libxdp's verbs: producers (Fill, Tx) Reserve then Submit,
// consumers (Rx, Completion) Peek then Release. Each call returns a view into
// the ring's shared memory, never a copy, and never wraps: at the end of
// the ring a batch is shorter and the next call returns the rest. The
// kernel's index is read at most once per call, and an impossible index
// marks the ring corrupt (Socket.Err) instead of panicking.
//
// Ownership: every UMEM frame has exactly one owner at a time: the pool, the
// fill ring, the kernel, the rx ring, the caller, the tx ring or the
// completion ring. Pool.Put panics on a frame put back twice, which is a bug
// in the caller. With Pool.Free() + Fill.Outstanding() == Pool.Total() once
// tx is drained, no frame is lost.
//
// Gotchas:
//   - In copy mode each tx kick (sendto) sends at most 32 descriptors unless
//     Config.TxBudget raises it (Linux 6.16+): kick while Tx.Outstanding() > 0.
//   - A socket sharing a UMEM (XDP_SHARED_UMEM) inherits the bind mode and
//     need_wakeup of the socket that registered it, and needs its own fill
//     and completion rings, which Open always makes.
//   - A socket is driven by one goroutine: rings are single-producer,
//     single-consumer without locks. Close it only after that goroutine has
//     stopped; after Close the rings are empty and methods return ErrClosed.
package xdp
