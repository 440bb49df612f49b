// Package userspace is Rebound's engine: the Handler contract, the built-in
// service (PING and a kv store), the AF_XDP workers, the UDP socket and TCP
// fallbacks, and the Server that picks a mode and ties them together.
//
// Data flow on the fast path (one worker per rx queue, one goroutine locked
// to its OS thread, owner of its socket's rings and frame pool):
//
//	Rx.Peek(batch) -> codec.ParseFrame + ParseDatagram (views into frames)
//	-> Handler.Serve(batch) writes replies into the frames
//	-> codec Frame.Reply rewrites each frame in place -> Tx.Submit, kick
//	Completion.Peek -> pool -> Fill.Submit
//
// The UDP socket path answers in place in its read buffers with the same
// batcher, so the protocol rules and the amplification bound (rule 6) are
// one piece of code for both. TCP reads into a per-connection buffer, serves
// every complete message as one batch and writes the replies with writev.
//
// Lifecycle: NewServer(cfg) -> Start(ctx) -> ... -> Stop(). Stop steers XDP
// traffic away from the sockets, lets workers drain (every frame back in
// its pool: Frames()), detaches the program, then closes sockets. The XDP
// program is attached through a bpf_link, so a crashed process leaves
// nothing attached either.
//
// Gotchas:
//   - A Handler sees Message.Out overlapping Message.Payload on the AF_XDP
//     and UDP paths: read the request before writing the reply.
//   - Waiting: an idle XDP worker keeps polling its rings for 500µs, then
//     sleeps in poll(2) with need_wakeup; it never sleeps while tx
//     descriptors wait for a kick.
package userspace
