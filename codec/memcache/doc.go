// Package memcache is the memcached wire protocol as memcached 1.6 speaks
// it: the text protocol (get, set, incr, ...), the meta protocol (mg, ms,
// md, ma, mn) and the 8-byte frame header of its UDP transport.
//
// Like package codec it holds pure functions over byte slices: no I/O, no
// goroutines, no allocation on the parse and reply paths. Parse fills a
// caller-owned Command whose byte slices are views into the input buffer;
// the Append functions write replies into a caller-owned buffer. What a
// command does to data is the business of the executor (userspace/mcserve).
//
// Lifecycle on a stream (TCP):
//
//	switch Parse(buf, maxValue, &cmd) {
//	case Complete: execute cmd; drop cmd.Consumed bytes; parse again
//	case NeedMore: read more; cmd.Need, when not 0, is the total size to buffer
//	case Invalid:  answer cmd.Err.Reply() unless cmd.NoReply; drop
//	               cmd.Consumed, then cmd.Swallow more bytes as they come;
//	               close when cmd.Err.Closes()
//	}
//
// On UDP every datagram starts with a UDPHeader; a reply is cut into
// pieces of UDPMaxPayload bytes (UDPDatagrams, UDPChunk), each behind a
// header carrying the request id, its index and the count.
//
// Gotchas, all checked against memcached 1.6.18:
//   - Numbers are read as memcached reads them: flags wrap to 32 bits,
//     exptime and data lengths are truncated to a signed 32-bit integer
//     (so an exptime of 4000000000 is negative: already expired), and a
//     minus sign is refused only where the value would come out negative.
//   - Tokens are separated by spaces only; a line ends at \n with an
//     optional \r before it.
//   - A line without a newline is buffered up to MaxLineNoNewline bytes;
//     past that memcached closes the connection without a word, unless the
//     line is a get/gets (long multi-gets are legal).
//   - A data block that does not end in \r\n is "bad data chunk": its
//     length is consumed anyway and parsing resumes right after it, so the
//     rest of a client's bytes usually reads as an unknown command.
//   - A value over the size limit is refused before it arrives: the line is
//     consumed and the data block (length + 2) must be swallowed as it
//     streams in, never buffered.
//   - noreply is taken from the last token, so even an error on a noreply
//     line is silent (memcached's out_string behaves so); unknown commands
//     are always answered.
//   - Meta flags are one letter followed by an optional argument. Every
//     meta command accepts the flags known to any of them (unknown letters
//     are "invalid flag", repeats "duplicate flag") and ignores those it
//     has no use for. Return flags are written back in the order given.
//   - Command.Key of a meta command sent with the b flag is the decoded
//     key and lives in the Command itself: copy it out before Parse reuses
//     the Command.
package memcache
