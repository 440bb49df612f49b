// Package store is the one item store behind every protocol Rebound speaks:
// memcached (text and meta) and Rebound's own binary protocol read and write
// the same items, so a key set over one is read over the other.
//
// # Design
//
// The store's memory is mapped outside the Go heap, Config.MemoryLimit
// bytes in all: an index and segments (of 4 KiB to 1 MiB each, larger only
// to hold Config.MaxItemSize). The collector neither scans nor counts it,
// and it takes RSS as its pages are first written, never more than the
// limit, whatever the items do. The index starts at a slot per KiB of the
// limit and doubles while the store fills as long as the slots, not the
// segments, would bound the items (grow.go): a store of 1 KiB items keeps
// an index of about 2% of the limit, one of 64-byte items about 10%. The
// memory a larger index takes is taken from the segments first (their
// oldest items are evicted), so the two stay within the limit also while
// the entries move; they move bucket by bucket while reads and writes go
// on.
//
// An item (a 30-byte header: CAS, store time, exptime, flags, lengths, meta marks;
// then key and value, padded to 4 bytes) is written once, at the head
// segment's end, and never changed: an overwrite, append, incr or touch
// writes a new copy and the old one is dead space until its segment goes.
// The index is buckets of 8 uint64 entries, a key in one of two buckets
// chosen by its hash, each entry a tag of the hash, the item's offset and
// its segment's generation, beside a uint32 of last access per slot.
//
// A read takes no lock: it loads an entry, compares the key and copies the
// value where the caller asked, then checks that the item's segment was
// not reused meanwhile (its generation), and starts again if it was (after
// 4 tries it takes the key's lock). A write holds the locks of the key's
// two buckets (up to 1024 stripes), which makes CAS, add/replace,
// append/prepend and incr/decr atomic per key; under them an item that an
// entry points to stays where it is.
//
// Eviction: segments are sealed in the order they were written (FIFO).
// When at most one segment is free, a write first evicts the oldest: its
// live items that were read at least twice since written or last moved go
// forward (copied to the head, as long as they take at most half a
// segment), the others are removed (Stats.Evictions; dead ones count as
// Expired). So what was written longest ago and not read since goes first,
// and an acknowledged set survives until everything written before it went
// or moved, as in memcached's LRU where reads bump an item. A new key takes
// a slot in the emptier of its two buckets; when both are full, the item
// in the oldest segment among them is evicted for it (Stats.SlotEvictions). (A frequency-based admission, such as the W-TinyLFU of
// the otter library this store was built on before, refuses new keys once
// the store is full of popular old ones: a client whose sets were
// acknowledged then missed almost all of them.)
//
// # Lifecycle
//
// New builds a store and maps its memory; there is nothing to close: the
// memory is unmapped when the Store is garbage. The default clock is shared
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
//   - The limit covers the index and the segments: a store of small items
//     has up to 1 slot per 112 bytes of the limit, and the index stops
//     growing when a larger one would leave the segments too little room;
//     the oldest item of a full bucket pair is then evicted.
//   - The index grows in the write that finds it should while it is small
//     (up to 8,192 slots: under a millisecond), else in a goroutine;
//     while that one moves the entries, writes go on and move their own
//     keys' buckets first (the new table takes their writes as soon as
//     it is mapped). A write that finds the table 68% full before that
//     goroutine has mapped it yields to it, about a millisecond at most,
//     rather than evict an item for a slot. It halves the same way, down to its first
//     size, when a full store evicts with fewer than a quarter of its
//     slots used; an entry that finds both of its buckets in the smaller
//     table full evicts the item in the oldest segment among them and
//     itself (Stats.SlotEvictions). Whether to grow is judged by the
//     average size of the items written in the last MiB when they are
//     smaller than those held, so that small items coming back after
//     large ones get their slots before they fill the table.
//   - Eviction runs in the writer that finds too few segments free, before
//     it takes its key's locks: one segment's items at a time (about 8,000
//     small items for a 1 MiB segment).
//   - A key is at most 255 bytes (longer is TooLarge); exptimes are held
//     as uint32 unix seconds (past 2106 is never).
//   - Reads copy from memory that a later eviction reuses, and trust the
//     copy only if the segment's generation did not change; the race
//     detector does not see the region (it is not Go memory). The check
//     relies on the copy's loads not being reordered past the generation's
//     atomic load, which x86 guarantees: on other CPUs (arm64, ppc64le)
//     every read takes its key's lock instead (readTries).
//   - Meta.LastAccess and Meta.Fetched describe the item before the call
//     that returns them, as memcached's meta flags l and h do.
//   - Incr keeps memcached's text: a result shorter than the stored number is
//     padded with spaces to the old length ("100" decr 1 reads back as "99 "),
//     and parsing accepts leading spaces and stops at a space.
//   - Values returned by Get are copies; nothing the caller holds aliases the
//     store. A Mirror gets the stored value itself, valid during the call.
package store
