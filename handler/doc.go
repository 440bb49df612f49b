// Package handler is the contract between Rebound's engine (package
// userspace) and the code that answers requests, kept apart so that a
// handler depends on nothing but the standard library and the codec.
//
// Two kinds of handler:
//
//   - Handler serves Rebound's own protocol (codec/rebound): the engine
//     parses and checks every header and hands over batches of Messages,
//     each with the room for its reply. The built-in kv service is one.
//   - Protocol serves a protocol of your own on a port of its own: a
//     Datagram for UDP and a Stream per TCP connection. The engine owns the
//     sockets, the AF_XDP rings, the batching, the allow-list and the
//     amplification bound; the protocol owns the bytes.
//
// Lifecycle: the engine calls handlers from its workers, one call per
// worker at a time, from the moment it starts until it stops; a handler
// keeps nothing of request or reply memory after a call returns (on the
// AF_XDP path that memory is a UMEM frame that goes back to the kernel).
//
// Gotchas:
//   - Replies are written in place: Out (Message) and out (Datagram)
//     overlap the request on the UDP and AF_XDP paths. Read first.
//   - Nothing allocates per request on the engine's hot paths; a handler
//     that allocates makes the whole path allocate.
//   - Over UDP a reply is bounded by the amplification factor times the
//     request (unless the source is trusted) and by the path MTU: cap(out)
//     says how much that leaves.
package handler
