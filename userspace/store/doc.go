// Package store is the one item store behind every protocol Rebound speaks:
// memcached (text and meta) and Rebound's own binary protocol read and write
// the same items, so a key set over one is read over the other.
//
// # Design
//
// Items live in a table of 256 shards, each a Go map under its own lock,
// bounded by weight (key + value + ItemOverhead bytes). An item is
// immutable once stored: every write (set, append, incr, touch) builds a
// new item under the key's shard lock (compute), which makes CAS,
// add/replace, append/prepend and incr/decr atomic per key without a global
// lock, and lets Get copy a value straight into the caller's buffer after a
// read lock of one map lookup. Only the access fields (last access,
// fetched) change in place, with atomics that write only when the value
// changes.
//
// Eviction follows memcached's LRU: every item is on one list, most
// recently written or read first, and a write that takes the table over its
// limit evicts from the other end before it returns. A read moves an item
// to the front at most once a second (memcached: once a minute). So what
// was written or read longest ago goes first, dead or alive, and a set just
// acknowledged stays while anything older is left. (A frequency-based
// admission, such as the W-TinyLFU of the otter library this store was
// built on before, refuses new keys once the store is full of popular old
// ones: a client whose sets were acknowledged then missed almost all of
// them.)
//
// # Lifecycle
//
// New builds a store; there is nothing to close. The default clock is shared
// by every store of the process: a goroutine started by the first store reads
// time.Now every 10 ms, for the life of the process. Tests pass Config.Now.
//
// # Expiry, flush and memory
//
// Exptimes are absolute unix seconds (0 = never); the caller applies
// memcached's "up to 30 days is relative" rule, never the store. An item is
// dead when its exptime is at or before now, or when a FlushAll covers it.
// Dead items are never returned; a read or write that meets one removes it
// (counted in Stats.Expired). Dead items nobody asks for are not looked for:
// they are cold, so eviction takes them when space is needed, as memcached's
// LRU does. A Set whose exptime is negative or past reports Stored and
// deletes the key.
//
// FlushAll(0) hides every item stored before it, exactly (it compares CAS
// values, not clock ticks). FlushAll(d) hides, from now+d on, every item
// stored up to that moment, at the clock's resolution (10 ms by default).
//
// # Gotchas
//
//   - The bound is on weight, not on the Go heap: a value that was appended to
//     builds a new slice, and a Get into a too-small dst allocates; the old
//     slice is garbage until the GC runs. Size the heap (GOMEMLIMIT) with
//     some room above Config.MemoryLimit.
//   - Eviction runs in the writer, after its write: concurrent writes may
//     take the table briefly over its limit, by at most their own items.
//     The evictor passes over a shard busy with a write and gives up after
//     one round of the list; the next write goes on. A Stored result does
//     not promise the item survives, only that older unread items go first.
//   - Meta.LastAccess and Meta.Fetched describe the item before the call
//     that returns them, as memcached's meta flags l and h do.
//   - Incr keeps memcached's text: a result shorter than the stored number is
//     padded with spaces to the old length ("100" decr 1 reads back as "99 "),
//     and parsing accepts leading spaces and stops at a space.
//   - Values returned by Get are copies; nothing the caller holds aliases the
//     store. Keys are copied on writes only.
package store
