// Package codec is the Rebound wire protocol (../shared/PROTOCOL.md) and the
// frame layer under it: Ethernet with at most one 802.1Q tag, IPv4 or IPv6,
// and UDP.
//
// Everything here is a pure function over byte slices. Decoding returns
// views into the caller's buffer, never copies, and the reply rewrite works
// in place: on the AF_XDP fast path the request's UMEM frame becomes its
// reply. Nothing on the decode or rewrite path allocates or builds an error;
// outcomes are small codes (Check, Status, Reason) that callers count.
//
// Lifecycle of a UDP request on the fast path:
//
//	f, why := ParseFrame(frame)          // not ours unless why == ReasonNone
//	req := ParseDatagram(f.UDPPayload(frame))
//	// Valid: the handler writes header + payload at frame[f.Payload:]
//	// Reject: PutErrorReply; Drop: send nothing
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
