// Package codec is the frame layer that every protocol Rebound speaks shares:
// Ethernet with at most one 802.1Q tag, IPv4 or IPv6, and UDP; the in-place
// reply rewrite with full checksums; the path-MTU and amplification bounds;
// and the Reason codes that counters use. The protocols themselves live in a
// package each beneath it: codec/rebound (Rebound's own binary protocol,
// docs/protocol.md) and codec/memcache (memcached's text and meta protocols
// and its UDP frame header).
//
// Everything here is a pure function over byte slices. Decoding returns
// views into the caller's buffer, never copies, and the reply rewrite works
// in place: on the AF_XDP fast path the request's UMEM frame becomes its
// reply. Nothing on the decode or rewrite path allocates or builds an error;
// outcomes are small codes (Reason, and the protocols' own) that callers
// count.
//
// Lifecycle of a UDP request on the fast path:
//
//	f, why := codec.ParseFrame(frame)    // not ours unless why == ReasonNone
//	payload := f.UDPPayload(frame)       // handed to the protocol package
//	// the protocol writes its reply at frame[f.Payload:]
//	n := f.Reply(frame[:capacity], replyLen) // swap, lengths, checksums
//
// Gotchas:
//   - Frames shorter than 60 bytes arrive padded; the IP and UDP lengths say
//     where the datagram ends, never len(frame).
//   - Checksums of replies are computed in full. A request's checksum field
//     may be partial (veth, checksum offload) and is never used.
//   - Userspace re-validates every frame even though the XDP program checked
//     it: a frame can come from a program that is not ours.
package codec
