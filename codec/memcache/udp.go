package memcache

import "encoding/binary"

// UDP framing: every datagram starts with an 8-byte header, all fields big
// endian: request id, sequence number, total datagrams, reserved (0).
const (
	UDPHeaderLen = 8
	// UDPMaxDatagram is the largest reply datagram memcached sends,
	// header included (measured on 1.6: a 5023-byte reply comes as
	// 1400+1400+1400+855 bytes).
	UDPMaxDatagram = 1400
	// UDPMaxPayload is the reply bytes one datagram carries.
	UDPMaxPayload = UDPMaxDatagram - UDPHeaderLen
)

// UDPHeader is the frame header of a memcached datagram.
type UDPHeader struct {
	RequestID uint16
	Seq       uint16
	Total     uint16
	Reserved  uint16
}

// ParseUDPHeader reads the header at the start of b; false if b is
// shorter than UDPHeaderLen.
func ParseUDPHeader(b []byte) (UDPHeader, bool) {
	if len(b) < UDPHeaderLen {
		return UDPHeader{}, false
	}
	return UDPHeader{
		RequestID: binary.BigEndian.Uint16(b),
		Seq:       binary.BigEndian.Uint16(b[2:]),
		Total:     binary.BigEndian.Uint16(b[4:]),
		Reserved:  binary.BigEndian.Uint16(b[6:]),
	}, true
}

// PutUDPHeader writes h into b[:UDPHeaderLen]; it panics if b is shorter.
func PutUDPHeader(b []byte, h UDPHeader) {
	_ = b[UDPHeaderLen-1]
	binary.BigEndian.PutUint16(b, h.RequestID)
	binary.BigEndian.PutUint16(b[2:], h.Seq)
	binary.BigEndian.PutUint16(b[4:], h.Total)
	binary.BigEndian.PutUint16(b[6:], h.Reserved)
}

// AppendUDPHeader appends h.
func AppendUDPHeader(dst []byte, h UDPHeader) []byte {
	return append(dst, byte(h.RequestID>>8), byte(h.RequestID), byte(h.Seq>>8), byte(h.Seq),
		byte(h.Total>>8), byte(h.Total), byte(h.Reserved>>8), byte(h.Reserved))
}

// UDPDatagrams is how many datagrams a reply of n bytes takes: its pieces
// of UDPMaxPayload bytes, the last one shorter. An empty reply takes none.
// A count above 65535 cannot be framed (Total is 16 bits).
func UDPDatagrams(n int) int {
	if n <= 0 {
		return 0
	}
	return (n + UDPMaxPayload - 1) / UDPMaxPayload
}

// UDPChunk gives the bounds within a reply of n bytes of datagram i
// (0 <= i < UDPDatagrams(n)): reply[start:end] follows a header with
// Seq i and Total UDPDatagrams(n).
func UDPChunk(n, i int) (start, end int) {
	start = i * UDPMaxPayload
	end = min(start+UDPMaxPayload, n)
	return start, end
}
