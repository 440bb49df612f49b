package codec

// Reason says why a frame or message was not answered normally. It is a
// small integer so hot paths can count it in an array without building an
// error. The XDP program's malformed-frame counter and the Go counters use
// the frame reasons (ReasonTruncated .. ReasonNotUDP) with the same meaning.
type Reason uint8

const (
	ReasonNone Reason = iota
	// Frame level: the frame is not a Rebound datagram for us.
	ReasonTruncated // a layer's header or length runs past the frame
	ReasonNotIP     // EtherType neither IPv4 nor IPv6 (after one VLAN tag)
	ReasonFragment  // an IPv4 fragment (first or later)
	ReasonNotUDP    // IP protocol / IPv6 next header is not UDP
	ReasonBadIP     // IP version/IHL/length fields inconsistent
	ReasonBadUDP    // UDP length field inconsistent with the IP length
	// Message level.
	ReasonShortMessage // UDP payload shorter than the 12-byte header
	ReasonNotRebound   // magic or version differs
	ReasonResponse     // RESPONSE flag set: never answered
	ReasonBadLength    // payload size is not 12+len
	ReasonBadFlags     // unknown flag bits in a request
	ReasonBadStatus    // non-zero status in a request
	ReasonUnknownOp    // op not in the table
	ReasonBadPayload   // op payload breaks the page (keylen, lengths)
	ReasonTooLarge     // value over the server's limit
	ReasonBusy         // shed under overload
	// memcached over UDP.
	ReasonBadFrameHeader // memcached datagram without a usable 8-byte frame header (short, or total != 1)
	ReasonAmplification  // reply over the amplification bound to an untrusted source: SERVER_ERROR sent instead
	ReasonNoFrame        // AF_XDP: no free UMEM frame for a reply's extra datagram
	// Every protocol.
	ReasonNotAllowed  // source outside the allow-list (--allow-src)
	ReasonNotUnicast  // broadcast or multicast source or destination: never answered
	ReasonBadChecksum // AF_XDP: IPv4 header or UDP checksum wrong (the kernel would drop it)
	// No reply loops.
	ReasonNotRequest // memcached over UDP: the datagram is not a request (a reply, or noise): never answered
	ReasonOwnSource  // the source is one of our own service sockets (a spoofed self-loop): never answered
	NumReasons       // number of reasons, for counter arrays
)

var reasonNames = [NumReasons]string{
	ReasonNone:         "none",
	ReasonTruncated:    "truncated",
	ReasonNotIP:        "not_ip",
	ReasonFragment:     "fragment",
	ReasonNotUDP:       "not_udp",
	ReasonBadIP:        "bad_ip",
	ReasonBadUDP:       "bad_udp",
	ReasonShortMessage: "short_message",
	ReasonNotRebound:   "not_rebound",
	ReasonResponse:     "response_flag",
	ReasonBadLength:    "bad_length",
	ReasonBadFlags:     "bad_flags",
	ReasonBadStatus:    "bad_status",
	ReasonUnknownOp:    "unknown_op",
	ReasonBadPayload:   "bad_payload",
	ReasonTooLarge:     "too_large",
	ReasonBusy:         "busy",

	ReasonBadFrameHeader: "bad_frame_header",
	ReasonAmplification:  "amplification",
	ReasonNoFrame:        "no_frame",

	ReasonNotAllowed:  "not_allowed",
	ReasonNotUnicast:  "not_unicast",
	ReasonBadChecksum: "bad_checksum",

	ReasonNotRequest: "not_request",
	ReasonOwnSource:  "own_source",
}

// String returns the reason's metric label.
func (r Reason) String() string {
	if r < NumReasons {
		return reasonNames[r]
	}
	return "unknown"
}
