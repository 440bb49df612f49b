package memcache

// IsRequest reports whether a datagram's payload (after the 8-byte frame
// header) can be a request: every command of memcached's text and meta
// protocols is a lowercase word and a binary request starts with the magic
// 0x80, while every reply line starts with an uppercase word (VALUE, END,
// ERROR, STORED, HD, EN, ...) or a digit (incr), and a binary reply with the
// magic 0x81. A server that answers what is not a request can be made, by
// one spoofed datagram, to exchange replies with another server forever
// (the "loop DoS" class): over UDP such a datagram is never answered.
func IsRequest(payload []byte) bool {
	return len(payload) > 0 && (payload[0] >= 'a' && payload[0] <= 'z' || payload[0] == BinaryRequest)
}
