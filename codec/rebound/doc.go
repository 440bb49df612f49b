// Package rebound is Rebound's own binary protocol, version 1
// (docs/protocol.md): the 12-byte header, the four operations (PING, GET,
// SET, DEL), the status codes and the rules a server applies to every
// request, on a datagram (ParseDatagram) or a TCP stream (ParseStream).
//
// Like its parent package codec, it is pure functions over byte slices:
// requests decode into views of the caller's buffer and nothing on the
// server's path allocates or builds an error; a request's outcome is a
// Check (Valid, Reject, Drop) with a Status for the error reply and a
// codec.Reason for counters. The Encode functions and DecodeReply are for
// clients and tests, and return errors.
//
// Gotchas:
//   - An error reply is always a bare header, never larger than the request.
//   - Over UDP the amplification bound (codec.ReplyLimit) may leave no room
//     for a value: the reply is then PutTruncated, and the client asks again
//     over TCP or pads its GET.
package rebound
