// Package udpbatch does batched UDP socket I/O without allocating: its own
// recvmmsg(2) and sendmmsg(2) on preallocated mmsghdrs, iovecs and sockaddr
// storage, waiting in Go's netpoller through the socket's syscall.RawConn.
// It replaces golang.org/x/net/ipv4 ReadBatch/WriteBatch, which allocate
// a net.UDPAddr (and its IP) per datagram and a closure per call.
//
// Use, from one goroutine per socket:
//
//	c, _ := udpbatch.New(conn, 64, 64<<10) // 64 slots of 64 KiB, owned by c
//	for {
//		n, err := c.Read() // blocks for >= 1 datagram, fills up to 64
//		if errors.Is(err, net.ErrClosed) {
//			return
//		} else if err != nil {
//			continue // transient (a unix.Errno): count it
//		}
//		for i := range n {
//			req := c.Data(i) // c.Buf(i)[:c.Len(i)]; c.From(i) is its source
//			reply := answer(c.Buf(i), req) // in place, or any other buffer
//			if !c.Queue(reply, i) { // to the source of slot i
//				c.Flush()
//				c.Queue(reply, i)
//			}
//		}
//		sent, err := c.Flush() // err: first refused datagram, or net.ErrClosed
//	}
//
// Ownership: slot i (Buf, Data, Len, From, Truncated) is valid from the
// Read that filled it until the next Read. Queue and QueueTo keep a
// reference to b, not a copy, until Flush returns; the destination is
// copied at once. Read flushes anything still queued before it reuses the
// buffers, so a reply queued from a receive buffer is never overwritten
// before it is sent, but its result then only shows in Stats.
//
// Errors: once the *net.UDPConn is closed (from any goroutine, also while
// Read or Flush wait) they return net.ErrClosed itself. Deadlines set on
// the conn apply and end a wait with os.ErrDeadlineExceeded. Other errors
// are the bare unix.Errno (no allocation) and are transient.
//
// Gotchas:
//   - A Conn is driven by one goroutine: Read, Queue, QueueTo, Flush and
//     the slot accessors share state without locks. Stats too.
//   - ICMP errors: a socket that holds an error from an ICMP message (only
//     connected sockets or with IP_RECVERR/IPV6_RECVERR set) reports it
//     once to the next recvmmsg or sendmmsg. Read absorbs such errors
//     (ECONNREFUSED, EHOSTUNREACH, ...) and reads on (Stats.RxErrors);
//     Flush tries a refused datagram once more, since the error may belong
//     to an earlier datagram, then skips it (Stats.Dropped) and carries on:
//     a refusal never stalls or ends the loop.
//   - Truncation: a datagram longer than bufSize is cut to it; Len is the
//     part kept and Truncated(i) reports it. 65507 bytes hold any UDP/IPv4
//     payload.
//   - From unmaps IPv4-mapped sources of a dual-stack (IPv6) socket and
//     drops the zone of link-local IPv6 sources (making the zone string
//     would allocate); Queue(b, i) replies to the raw source, zone and all.
//     QueueTo maps IPv4 addresses for an IPv6 socket; an IPv6 address on an
//     IPv4 socket is refused at Flush and counted as dropped.
//   - Queue holds at most Batch() datagrams: false means Flush, then queue
//     again. A zero-length datagram is valid both ways.
//   - The system calls go through unix.Syscall6, not the raw form: a
//     sendmmsg of 64 large datagrams can take long enough that the
//     scheduler should be told.
//
// Segmentation offload, both ways:
//   - GSO (on from New where the kernel has UDP_SEGMENT; SetGSO): Flush
//     sends consecutive queued datagrams of one size to one destination
//     as one message that the kernel cuts up (up to 64 datagrams of at
//     most 1400 bytes): one trip through the stack instead of one each.
//     A refused run is sent one by one; a refusal that is GSO's own
//     (EINVAL, EIO) turns it off for good (Stats.GSOOff).
//   - GRO (off until SetGRO(true); slots of at least 64 KiB): the kernel
//     hands over a burst of one flow that the device's GRO merged as one
//     buffer, and Read cuts it into its datagrams again, each copied into
//     a spill buffer of its own so that replies in place stay independent
//     (Stats.Coalesced). Read returns at most Batch() datagrams; the rest
//     of a merged buffer waits for the next Read, which then does no
//     system call.
//
// Why unsafe is here: the house rule keeps unsafe in xdp/, behind a safe
// API, because that is where the kernel ABI is. This package is the one
// other place, for the same reason: mmsghdr, msghdr, iovec and sockaddr
// are kernel structures that hold pointers into our buffers, and reading a
// port in network byte order or a sockaddr_in out of sockaddr_in6 storage
// takes a view of kernel-written bytes. Every unsafe use carries a comment
// saying why it is sound; nothing unsafe crosses the API.
package udpbatch
