// Package mcserve executes memcached commands (text and meta protocol, as
// memcached 1.6 answers them) against a userspace/store.Store. It does no
// I/O: transports hand it the bytes they read and write back the bytes it
// appends.
//
// A Handler is shared by all connections and holds the counters "stats"
// reports. Each TCP connection gets a Conn (NewConn) and calls Serve with
// its buffered input after every read: Serve runs every complete command,
// says how much input it consumed, how much more the next command needs
// and whether to close. A UDP worker keeps one Conn and calls ServeDatagram
// per datagram; the reply comes back as messages to frame with
// codec/memcache's UDP helpers.
//
// Allocation: a get or mg appends the value straight from the store into
// the output buffer and slides its header in front, so a GET allocates
// nothing once the output buffer has grown to size.
//
// DIFFERENCES from memcached 1.6.18, deliberate (each has a test):
//   - A get whose key is too long answers CLIENT_ERROR for that command
//     only. memcached also throws away the replies still queued for earlier
//     commands of the same read (a side effect of its response objects),
//     which depends on network timing.
//   - UDP: every datagram stands alone. memcached keeps a UDP "connection"
//     state across datagrams: an incomplete storage command waits for its
//     data in the next datagram (from any client), and a value too large
//     makes it swallow the following datagrams. Here an incomplete command
//     at the end of a datagram is dropped, and a value too large is
//     answered "SERVER_ERROR object too large for cache" (memcached sends
//     nothing).
//   - UDP: after a text get, memcached sometimes drops the rest of the
//     datagram ("get v\r\nmn\r\n" answers only the get; after a set it
//     goes on), an artefact of its read buffer; mcserve runs every command.
//   - me (meta debug) is an unknown command (ERROR): its fields are slab
//     internals.
//   - The stats family (stats.go) answers in the shape of memcached run
//     with -o no_lru_maintainer,no_lru_crawler -X, less the fields with no
//     true value here; the store is reported as one slab class.
//   - The size limit is on the value alone (Config.MaxItemSize, 1 MiB by
//     default); memcached's is on the whole item (header, key, value), so
//     values within ~100 bytes under 1 MiB are refused by memcached only.
//   - Meta flags not implemented are refused with "CLIENT_ERROR invalid
//     flag" rather than ignored: mg N (vivify on miss) and R (recache), md
//     I (invalidate), ma T; E everywhere (memcached 1.6.18 refuses it too).
//     ms I and md T are accepted: without stale items they change nothing.
//     The meta protocol's W, X, Z return flags never appear.
//   - The version string is Config.Version (DefaultVersion).
package mcserve
