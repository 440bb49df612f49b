// Package userspace is Rebound's engine: the AF_XDP workers, the UDP socket
// and TCP transports, the built-in Rebound-protocol service, memcached's
// transports (its executor is userspace/mcserve, its store userspace/store,
// shared with the Rebound service), protocols of your own (package
// handler), the allow-list, metrics, and the Server that picks a mode and
// ties them together.
//
// Data flow on the fast path (one worker per rx queue, one goroutine locked
// to its OS thread, owner of its socket's rings and frame pool):
//
//	Rx.Peek(batch) -> codec.ParseFrame, unicast/allow-list/checksum checks
//	-> by destination port: Rebound datagrams in one Handler.Serve batch;
//	   memcached datagrams through mcserve (extra reply datagrams take
//	   frames from the pool); protocols of your own through their Datagram
//	-> codec Frame.Reply rewrites each frame in place -> Tx.Submit, kick
//	Completion.Peek -> pool -> Fill.Submit
//
// The UDP socket path (internal/udpbatch: recvmmsg/sendmmsg without
// allocating) answers in place in its read buffers with the same code, so
// the protocol rules and the amplification bound are one piece of code for
// both. TCP reads into a per-connection buffer that starts small and grows
// to a bound, serves every complete request of a read and writes the
// replies together.
//
// Lifecycle: NewServer(cfg) -> Start(ctx) -> ... (SetAllow, SetTrust,
// SetListen while serving; DropCapabilities once set up) -> Stop(). Stop
// steers XDP traffic away from the sockets, lets workers drain (every frame
// back in its pool: Frames()), detaches the program, then closes sockets.
// The XDP program is attached through a bpf_link, so a crashed process
// leaves nothing attached either. A worker that fails hands its queue back
// to the kernel; a deleted interface is reported on Fatal().
//
// Gotchas:
//   - Replies are written over the request on the AF_XDP and UDP paths: a
//     handler reads the request before writing the reply.
//   - Waiting: an idle XDP worker keeps polling its rings for 500µs, then
//     sleeps in poll(2) with need_wakeup; it never sleeps while tx
//     descriptors wait for a kick (a ring stalled for a second is kicked
//     every 10 ms and reported).
//   - Every path checks the source against one allow-list, swapped whole by
//     SetAllow; the XDP program holds its own copy, swapped the same way.
package userspace
