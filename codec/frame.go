package codec

import (
	"encoding/binary"
	"net/netip"
)

// Layer sizes and field values of the frames the fast path handles.
const (
	ethHeaderLen  = 14
	vlanTagLen    = 4
	ipv4MinHeader = 20
	ipv6HeaderLen = 40
	udpHeaderLen  = 8

	etherTypeIPv4 = 0x0800
	etherTypeIPv6 = 0x86DD
	etherTypeVLAN = 0x8100 // 802.1Q
	protoUDP      = 17

	// replyTTL is the IPv4 TTL and IPv6 hop limit of every reply.
	replyTTL = 64
)

// Frame describes where the layers of a parsed UDP frame start. Offsets are
// from the start of the frame. It is a plain value: parsing allocates nothing.
type Frame struct {
	VLAN       bool // one 802.1Q tag present
	IPv6       bool // IPv6, else IPv4
	L3         int  // offset of the IP header
	L4         int  // offset of the UDP header
	Payload    int  // offset of the UDP payload
	PayloadLen int  // UDP payload length, from the UDP length field
}

// DstPort returns the UDP destination port of the frame b that f describes.
func (f Frame) DstPort(b []byte) uint16 { return binary.BigEndian.Uint16(b[f.L4+2:]) }

// SrcPort returns the UDP source port of the frame b that f describes.
func (f Frame) SrcPort(b []byte) uint16 { return binary.BigEndian.Uint16(b[f.L4:]) }

// SrcAddr returns the IP source address of the frame b that f describes.
func (f Frame) SrcAddr(b []byte) netip.Addr {
	if f.IPv6 {
		return netip.AddrFrom16([16]byte(b[f.L3+8 : f.L3+24]))
	}
	return netip.AddrFrom4([4]byte(b[f.L3+12 : f.L3+16]))
}

// UDPPayload returns a view of the UDP payload of frame b.
func (f Frame) UDPPayload(b []byte) []byte {
	end := f.Payload + f.PayloadLen
	return b[f.Payload:end:end]
}

// ParseFrame parses an Ethernet frame carrying UDP over IPv4 or IPv6, with
// at most one 802.1Q tag. Anything else, and any length that is truncated or
// inconsistent at any layer, yields a non-zero Reason: such a frame is not
// ours. A frame longer than its IP length says (Ethernet padding) is valid.
// It never panics, whatever b holds.
func ParseFrame(b []byte) (Frame, Reason) {
	var f Frame
	if len(b) < ethHeaderLen {
		return f, ReasonTruncated
	}
	off := ethHeaderLen
	et := binary.BigEndian.Uint16(b[12:14])
	if et == etherTypeVLAN {
		if len(b) < ethHeaderLen+vlanTagLen {
			return f, ReasonTruncated
		}
		f.VLAN = true
		et = binary.BigEndian.Uint16(b[16:18])
		off += vlanTagLen
	}
	f.L3 = off
	var ipPayload int // bytes of the IP payload, from the IP length fields
	switch et {
	case etherTypeIPv4:
		if len(b) < off+ipv4MinHeader {
			return f, ReasonTruncated
		}
		ip := b[off:]
		if ip[0]>>4 != 4 {
			return f, ReasonBadIP
		}
		ihl := int(ip[0]&0x0F) * 4
		total := int(binary.BigEndian.Uint16(ip[2:4]))
		if ihl < ipv4MinHeader || total < ihl {
			return f, ReasonBadIP
		}
		if len(ip) < ihl || len(ip) < total {
			return f, ReasonTruncated
		}
		// MF set or a non-zero offset: a fragment, first or later.
		if binary.BigEndian.Uint16(ip[6:8])&0x3FFF != 0 {
			return f, ReasonFragment
		}
		if ip[9] != protoUDP {
			return f, ReasonNotUDP
		}
		f.L4 = off + ihl
		ipPayload = total - ihl
	case etherTypeIPv6:
		if len(b) < off+ipv6HeaderLen {
			return f, ReasonTruncated
		}
		ip := b[off:]
		if ip[0]>>4 != 6 {
			return f, ReasonBadIP
		}
		plen := int(binary.BigEndian.Uint16(ip[4:6]))
		if len(ip) < ipv6HeaderLen+plen {
			return f, ReasonTruncated
		}
		// Extension headers (and jumbograms, whose length is 0) are left to
		// the kernel.
		if ip[6] != protoUDP {
			return f, ReasonNotUDP
		}
		f.IPv6 = true
		f.L4 = off + ipv6HeaderLen
		ipPayload = plen
	default:
		return f, ReasonNotIP
	}
	if ipPayload < udpHeaderLen {
		return f, ReasonTruncated
	}
	ulen := int(binary.BigEndian.Uint16(b[f.L4+4:]))
	// Like the kernel: a UDP length above the IP payload is invalid, a
	// shorter one ends the datagram early.
	if ulen < udpHeaderLen || ulen > ipPayload {
		return f, ReasonBadUDP
	}
	f.Payload = f.L4 + udpHeaderLen
	f.PayloadLen = ulen - udpHeaderLen
	return f, ReasonNone
}

// PathMax returns the largest UDP payload a reply to this frame may carry
// on a link of the given MTU without fragmentation: the reply keeps the
// request's IPv4 options, so they count, as a VLAN tag does (the tag sits
// outside the MTU on most links, but not on every one: counting it is the
// safe side).
func (f Frame) PathMax(mtu int) int {
	n := mtu - (f.L4 - f.L3) - udpHeaderLen
	if f.VLAN {
		n -= vlanTagLen
	}
	return n
}

// MaxReply returns the largest UDP payload a reply can have inside a buffer of
// size capacity holding this frame.
func (f Frame) MaxReply(capacity int) int { return capacity - f.Payload }

// Reply rewrites the request frame b, as parsed into f, into its reply, in
// place. The reply's UDP payload, n bytes, must already be written at
// b[f.Payload:]; b's length is the buffer's capacity. Reply swaps the MAC
// addresses, IP addresses and ports, sets the IP and UDP lengths, TTL or hop
// limit, and computes the IPv4 header checksum and the UDP checksum in full
// (the request's checksum fields are never trusted: with offload they may be
// partial). IPv4 options are kept. It returns the reply frame's length, or 0
// when n does not fit b (nothing is written then).
func (f Frame) Reply(b []byte, n int) int {
	ulen := udpHeaderLen + n
	ipLen := ulen // IPv6 payload length, or IPv4 total length below
	if !f.IPv6 {
		ipLen += f.L4 - f.L3
	}
	if n < 0 || f.Payload+n > len(b) || ipLen > 0xFFFF {
		return 0
	}
	// Ethernet: swap destination and source MACs, 6 bytes each.
	var mac [6]byte
	copy(mac[:], b[0:6])
	copy(b[0:6], b[6:12])
	copy(b[6:12], mac[:])

	udp := b[f.L4 : f.Payload+n]
	sp, dp := binary.BigEndian.Uint16(udp[0:2]), binary.BigEndian.Uint16(udp[2:4])
	binary.BigEndian.PutUint16(udp[0:2], dp)
	binary.BigEndian.PutUint16(udp[2:4], sp)
	binary.BigEndian.PutUint16(udp[4:6], uint16(ulen))
	udp[6], udp[7] = 0, 0

	var acc uint64
	ip := b[f.L3:f.L4]
	if f.IPv6 {
		binary.BigEndian.PutUint16(ip[4:6], uint16(ipLen))
		ip[7] = replyTTL
		swap16(ip[8:24], ip[24:40])
		acc = sum(ip[8:40], 0) // source and destination addresses
	} else {
		ihl := f.L4 - f.L3
		binary.BigEndian.PutUint16(ip[2:4], uint16(ipLen))
		ip[8] = replyTTL
		var a [4]byte
		copy(a[:], ip[12:16])
		copy(ip[12:16], ip[16:20])
		copy(ip[16:20], a[:])
		ip[10], ip[11] = 0, 0
		binary.BigEndian.PutUint16(ip[10:12], ^fold(sum(ip[:ihl], 0)))
		acc = sum(ip[12:20], 0)
	}
	// Pseudo-header: addresses (above), protocol and UDP length.
	acc += protoUDP + uint64(ulen)
	c := ^fold(sum(udp, acc))
	if c == 0 {
		c = 0xFFFF // 0 means "no checksum" in IPv4 and is forbidden in IPv6
	}
	binary.BigEndian.PutUint16(udp[6:8], c)
	return f.Payload + n
}

// swap16 exchanges two 16-byte IPv6 addresses.
func swap16(a, b []byte) {
	var t [16]byte
	copy(t[:], a)
	copy(a, b)
	copy(b, t[:])
}

// DstAddr returns the IP destination address of the frame b that f
// describes.
func (f Frame) DstAddr(b []byte) netip.Addr {
	if f.IPv6 {
		return netip.AddrFrom16([16]byte(b[f.L3+24 : f.L3+40]))
	}
	return netip.AddrFrom4([4]byte(b[f.L3+16 : f.L3+20]))
}

// Unicast reports whether the frame b that f describes is unicast at both
// layers: a destination MAC without the group bit, and neither address
// multicast, broadcast (IPv4 255.255.255.255) or unspecified. A server
// never answers anything else: a reply would go to a group, or carry a
// group address as its source.
func (f Frame) Unicast(b []byte) bool {
	if b[0]&1 != 0 || b[6]&1 != 0 { // group bit of the destination, or of the source
		return false
	}
	for _, a := range [2]netip.Addr{f.SrcAddr(b), f.DstAddr(b)} {
		if a.IsMulticast() || a.IsUnspecified() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
			return false
		}
	}
	return true
}

// ChecksumsOK verifies what the kernel's stack would verify before a
// socket sees the datagram: the IPv4 header checksum, and the UDP
// checksum over the pseudo-header, header and payload (0 means none over
// IPv4, and is invalid over IPv6). A frame that the sending host's own
// stack left with a partial checksum (checksum offload between two
// namespaces over veth, where the field holds only the pseudo-header sum
// and the data is never on a wire) is accepted too: the kernel accepts it
// for the same reason (CHECKSUM_PARTIAL). It allocates nothing.
func (f Frame) ChecksumsOK(b []byte) bool {
	var pseudo uint64
	if f.IPv6 {
		pseudo = sum(b[f.L3+8:f.L3+40], 0)
	} else {
		if fold(sum(b[f.L3:f.L4], 0)) != 0xFFFF {
			return false
		}
		pseudo = sum(b[f.L3+12:f.L3+20], 0)
	}
	udp := b[f.L4 : f.Payload+f.PayloadLen]
	field := binary.BigEndian.Uint16(udp[6:8])
	if field == 0 {
		return !f.IPv6
	}
	pseudo += protoUDP + uint64(len(udp))
	if fold(sum(udp, pseudo)) == 0xFFFF {
		return true
	}
	// Partial: the field is the folded pseudo-header sum, not complemented.
	return field == fold(pseudo)
}
