package store

import (
	"encoding/binary"
	"runtime"
	"sync"
	"sync/atomic"
)

// An item in a segment, written once and never changed:
//
//	0  CAS       uint64
//	8  storedNs  int64  when it was stored, unix ns (for FlushAll)
//	16 exptime   uint32 unix seconds, 0 = never
//	20 flags     uint32
//	24 value len uint32
//	28 key len   uint8
//	29 marks     uint8  markStale, markWon, markKeyBinary
//	30 key, then value, then padding to itemAlign
const (
	hdrSize   = 30
	itemAlign = 4
	// maxKeyLen is the longest key the store holds (memcached's is 250).
	maxKeyLen = 255
)

func itemSize(klen, vlen int) int64 {
	return int64(hdrSize+klen+vlen+itemAlign-1) &^ (itemAlign - 1)
}

// Marks of an item (memcached's meta protocol): stale (md I, or ms I
// with an older CAS: mg flags it X), won (a client has been told to
// recache it, W; the others are told Z), and a key sent in base64 (echoed
// in base64).
const (
	markStale     = 1 << 0
	markWon       = 1 << 1
	markKeyBinary = 1 << 2
)

// header is an item's header, read out of its segment.
type header struct {
	cas      uint64
	storedNs int64
	exptime  uint32
	flags    uint32
	vlen     uint32
	klen     uint8
	marks    uint8
}

func readHeader(b []byte) header {
	_ = b[hdrSize-1]
	return header{
		cas:      binary.LittleEndian.Uint64(b[0:]),
		storedNs: int64(binary.LittleEndian.Uint64(b[8:])),
		exptime:  binary.LittleEndian.Uint32(b[16:]),
		flags:    binary.LittleEndian.Uint32(b[20:]),
		vlen:     binary.LittleEndian.Uint32(b[24:]),
		klen:     b[28],
		marks:    b[29],
	}
}

func writeHeader(b []byte, h header) {
	_ = b[hdrSize-1]
	binary.LittleEndian.PutUint64(b[0:], h.cas)
	binary.LittleEndian.PutUint64(b[8:], uint64(h.storedNs))
	binary.LittleEndian.PutUint32(b[16:], h.exptime)
	binary.LittleEndian.PutUint32(b[20:], h.flags)
	binary.LittleEndian.PutUint32(b[24:], h.vlen)
	b[28] = h.klen
	b[29] = h.marks
}

func (h header) size() int64 { return itemSize(int(h.klen), int(h.vlen)) }

// segments is the arena: n segments of size bytes each, of which at most
// limit hold memory at a time (the rest of the limit is the index's).
// Items are appended to the head segment; a full head is sealed onto the
// FIFO and a free segment becomes the head. When too few are free, the
// oldest sealed segment is evicted: its live items that were read twice
// since written move forward (copied to the head), the rest go, and its
// generation changes, which tells readers that copied from it while it
// changed to try again.
type segments struct {
	mem  []byte
	size int64 // bytes a segment
	n    int
	gen  []atomic.Uint64 // per segment: changes when it is reused
	// pending counts writes reserved in a segment and not yet done; a
	// segment is evicted only once its writes are done.
	pending []atomic.Int32
	used    []int64 // per sealed segment: bytes written
	// born numbers segments in the order they became the head.
	born  []atomic.Uint64
	nBorn uint64
	// nFree is how many more segments writes may take: the free ones,
	// and spare ones while fewer than limit hold memory.
	nFree atomic.Int32

	mu    sync.Mutex // head, off, free, spare, held, limit, fifo
	head  int        // the segment written, -1 before the first
	off   int64      // the head's next free byte
	free  []int32    // free segments that hold memory, the lowest last
	spare []int32    // segments whose memory went back to the system
	held  int        // segments holding memory: head, sealed and free
	limit int        // segments that may hold memory
	fifo  []int32    // sealed segments, oldest first: fifo[fifoHead:]
	fh    int

	evictMu sync.Mutex // one eviction at a time
}

func (sg *segments) init(mem []byte, size int64, n int) {
	sg.mem, sg.size, sg.n = mem, size, n
	sg.gen = make([]atomic.Uint64, n)
	sg.pending = make([]atomic.Int32, n)
	sg.used = make([]int64, n)
	sg.born = make([]atomic.Uint64, n)
	sg.free = make([]int32, 0, n)
	sg.spare = make([]int32, 0, n)
	for i := n - 1; i >= 0; i-- {
		sg.spare = append(sg.spare, int32(i))
	}
	sg.limit = n
	sg.fifo = make([]int32, 0, n)
	sg.head = -1
	sg.countFree()
}

// countFree sets nFree; the caller holds mu (or is init).
func (sg *segments) countFree() {
	sg.nFree.Store(int32(len(sg.free) + min(len(sg.spare), max(sg.limit-sg.held, 0))))
}

// setLimit lets at most limit segments hold memory: free ones beyond it
// give theirs back at once. over reports how many more hold memory than
// that, which evictions must give back.
func (sg *segments) setLimit(limit int) (over int) {
	sg.mu.Lock()
	defer sg.mu.Unlock()
	sg.limit = limit
	for sg.held > sg.limit && len(sg.free) > 0 {
		seg := sg.free[len(sg.free)-1]
		sg.free = sg.free[:len(sg.free)-1]
		sg.giveBack(seg)
	}
	sg.countFree()
	return sg.held - sg.limit
}

// over is how many more segments hold memory than the limit allows.
func (sg *segments) over() int {
	sg.mu.Lock()
	defer sg.mu.Unlock()
	return sg.held - sg.limit
}

// giveBack returns seg's memory to the system and makes it spare; the
// caller holds mu.
func (sg *segments) giveBack(seg int32) {
	dropPages(sg.mem[int64(seg)*sg.size : int64(seg+1)*sg.size])
	sg.spare = append(sg.spare, seg)
	sg.held--
}

// limitBytes is the memory the segments may hold.
func (sg *segments) limitBytes() int64 {
	sg.mu.Lock()
	defer sg.mu.Unlock()
	return int64(sg.limit) * sg.size
}

// reserve is how many free segments writes leave for the evictor's
// copies.
const reserve = 1

// alloc reserves size bytes in the head segment and returns their offset
// in the arena; the caller writes the item and calls done. A write that
// needs a new head and finds no more than the reserve free fails (ok
// false): the caller evicts and tries again; the evictor's own copies
// (evicting true) may take the reserve.
func (sg *segments) alloc(size int64, evicting bool) (off int64, ok bool) {
	sg.mu.Lock()
	defer sg.mu.Unlock()
	if sg.head < 0 || sg.off+size > sg.size {
		// The evictor's copies may take a spare segment even past the
		// limit: they free more than they take, and release gives the
		// excess back.
		if avail := sg.nFree.Load(); !evicting && avail <= reserve || avail == 0 && !(evicting && len(sg.spare) > 0) {
			return 0, false
		}
		if sg.head >= 0 {
			sg.used[sg.head] = sg.off
			sg.fifo = append(sg.fifo, int32(sg.head))
		}
		if len(sg.free) > 0 {
			sg.head = int(sg.free[len(sg.free)-1])
			sg.free = sg.free[:len(sg.free)-1]
		} else {
			sg.head = int(sg.spare[len(sg.spare)-1])
			sg.spare = sg.spare[:len(sg.spare)-1]
			sg.held++
		}
		sg.countFree()
		sg.off = 0
		sg.nBorn++
		sg.born[sg.head].Store(sg.nBorn)
	}
	off = int64(sg.head)*sg.size + sg.off
	sg.off += size
	sg.pending[sg.head].Add(1)
	return off, true
}

// done ends the write alloc reserved at off.
func (sg *segments) done(off int64) { sg.pending[off/sg.size].Add(-1) }

// oldest takes the oldest sealed segment off the FIFO (-1 if none).
func (sg *segments) oldest() int {
	sg.mu.Lock()
	defer sg.mu.Unlock()
	if sg.fh == len(sg.fifo) {
		return -1
	}
	seg := sg.fifo[sg.fh]
	sg.fh++
	if sg.fh == len(sg.fifo) {
		sg.fifo, sg.fh = sg.fifo[:0], 0
	} else if sg.fh > sg.n/2 {
		sg.fifo = sg.fifo[:copy(sg.fifo, sg.fifo[sg.fh:])]
		sg.fh = 0
	}
	return int(seg)
}

// release makes an evicted segment free (spare, its memory given back,
// when more hold memory than the limit): its generation changes first,
// so that a reader that copied from it meanwhile throws the copy away.
func (sg *segments) release(seg int) {
	sg.gen[seg].Add(1)
	sg.mu.Lock()
	if sg.held > sg.limit {
		sg.giveBack(int32(seg))
	} else {
		sg.free = append(sg.free, int32(seg))
	}
	sg.countFree()
	sg.mu.Unlock()
}

// waitWrites waits for the writes reserved in seg to be done: they are
// short (a copy under a key's lock) and never wait for the evictor.
func (sg *segments) waitWrites(seg int) {
	for sg.pending[seg].Load() != 0 {
		runtime.Gosched()
	}
}
