package xdp

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// UMEM defaults and bounds.
const (
	DefaultFrameSize  = 4096
	DefaultFrameCount = 4096
	// PacketHeadroom is XDP_PACKET_HEADROOM: the kernel puts a received
	// packet this far into its frame, after the UMEM's own headroom.
	PacketHeadroom = unix.XDP_PACKET_HEADROOM
)

// UMEMConfig sizes a UMEM. The zero value means 4096 frames of 4096 bytes
// (16 MiB) with no extra headroom.
type UMEMConfig struct {
	FrameSize  int // 2048 or 4096
	FrameCount int // number of frames; at least 2
	Headroom   int // bytes the kernel leaves free before each packet, beyond XDP_PACKET_HEADROOM
}

func (c *UMEMConfig) defaults() error {
	if c.FrameSize == 0 {
		c.FrameSize = DefaultFrameSize
	}
	if c.FrameCount == 0 {
		c.FrameCount = DefaultFrameCount
	}
	if c.FrameSize != 2048 && c.FrameSize != 4096 {
		return fmt.Errorf("umem: frame size %d: must be 2048 or 4096", c.FrameSize)
	}
	if c.FrameCount < 2 {
		return fmt.Errorf("umem: %d frames is too small: need at least 2", c.FrameCount)
	}
	if c.Headroom < 0 || c.Headroom+PacketHeadroom+128 > c.FrameSize {
		return fmt.Errorf("umem: headroom %d leaves no room for a packet in a %d-byte frame", c.Headroom, c.FrameSize)
	}
	return nil
}

// UMEM is the packet buffer area shared with the kernel: one anonymous
// mapping cut into equal frames. It is registered with the kernel by the
// first Socket opened on it; later sockets share it (XDP_SHARED_UMEM).
// Frames are handed out by Pools carved from it.
type UMEM struct {
	mem        []byte
	cfg        UMEMConfig
	frameMask  uint64
	carved     int  // frames handed to pools so far
	regFD      int  // fd of the open socket that registered it, or -1
	registered bool // registered with the kernel once
	wakeup     bool // need_wakeup of the registering socket, which sharers inherit
	sockets    int  // open sockets using it
	closed     bool
}

// NewUMEM maps a UMEM. It is registered with the kernel when the first
// socket opens on it.
func NewUMEM(cfg UMEMConfig) (*UMEM, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	size := cfg.FrameSize * cfg.FrameCount
	mem, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_POPULATE)
	if err != nil {
		return nil, fmt.Errorf("umem: map %d bytes: %w", size, os.NewSyscallError("mmap", err))
	}
	return &UMEM{mem: mem, cfg: cfg, frameMask: ^uint64(cfg.FrameSize - 1), regFD: -1}, nil
}

// Config returns the UMEM's configuration with defaults filled in.
func (u *UMEM) Config() UMEMConfig { return u.cfg }

// FrameSize is the size of one frame.
func (u *UMEM) FrameSize() int { return u.cfg.FrameSize }

// Frames is the number of frames.
func (u *UMEM) Frames() int { return u.cfg.FrameCount }

// FrameBase returns the address of the frame that holds addr.
func (u *UMEM) FrameBase(addr uint64) uint64 { return addr & u.frameMask }

// Packet returns a view of n bytes at addr, as given by an rx descriptor, or
// nil when they do not lie inside one frame of the UMEM (a descriptor is
// never trusted). The view's capacity ends at the end of the frame, so a
// reply may grow into the rest of the frame with b[:cap(b)].
func (u *UMEM) Packet(addr uint64, n uint32) []byte {
	base := addr & u.frameMask
	end := base + uint64(u.cfg.FrameSize)
	if u.closed || base >= uint64(len(u.mem)) || addr+uint64(n) > end {
		return nil
	}
	return u.mem[addr : addr+uint64(n) : end]
}

// NewPool carves n frames out of the UMEM into a new pool. Pools never
// overlap; a UMEM shared by several sockets gives each its own pool.
func (u *UMEM) NewPool(n int) (*Pool, error) {
	if u.closed {
		return nil, ErrClosed
	}
	if n <= 0 || n > u.cfg.FrameCount-u.carved {
		return nil, fmt.Errorf("umem: pool of %d frames: only %d of %d frames left", n, u.cfg.FrameCount-u.carved, u.cfg.FrameCount)
	}
	p := &Pool{
		free:      make([]uint64, 0, n),
		frameSize: uint64(u.cfg.FrameSize),
		mask:      u.frameMask,
		first:     uint64(u.carved) * uint64(u.cfg.FrameSize),
		inPool:    make([]bool, n),
	}
	for i := n - 1; i >= 0; i-- {
		p.free = append(p.free, p.first+uint64(i)*p.frameSize)
		p.inPool[i] = true
	}
	u.carved += n
	return p, nil
}

// Close unmaps the UMEM. It fails while a socket still uses it: close the
// sockets first. Close is idempotent.
func (u *UMEM) Close() error {
	if u.closed {
		return nil
	}
	if u.sockets > 0 {
		return fmt.Errorf("umem: %d sockets still open", u.sockets)
	}
	u.closed = true
	mem := u.mem
	u.mem = nil
	return os.NewSyscallError("munmap", unix.Munmap(mem))
}

// ErrClosed is returned by every method of a closed Socket, UMEM or Pool.
var ErrClosed = errors.New("xdp: use of closed socket or umem")

// Pool is a buffer pool of UMEM frames: a stack of free frame addresses. A
// frame taken from a pool belongs to the taker (the fill ring, the tx ring,
// a worker) until it is put back. Pool is not safe for concurrent use: it
// belongs to the one goroutine that drives its socket.
type Pool struct {
	free      []uint64
	frameSize uint64
	mask      uint64
	first     uint64 // address of the pool's first frame
	inPool    []bool // per frame: in the free stack (catches double puts)
}

// Get moves up to len(dst) free frame addresses into dst and returns how
// many. It allocates nothing.
func (p *Pool) Get(dst []uint64) int {
	n := min(len(dst), len(p.free))
	top := len(p.free) - n
	copy(dst, p.free[top:])
	for _, a := range dst[:n] {
		p.inPool[(a-p.first)/p.frameSize] = false
	}
	p.free = p.free[:top]
	return n
}

// Put returns a frame to the pool; addr may point anywhere inside the
// frame. Putting a frame that is already free, or that is not this pool's,
// is a bug in the caller and panics: a frame must have exactly one owner.
func (p *Pool) Put(addr uint64) {
	base := addr & p.mask
	i := (base - p.first) / p.frameSize
	if base < p.first || i >= uint64(len(p.inPool)) {
		panic(fmt.Sprintf("xdp: frame %#x is not in this pool", addr))
	}
	if p.inPool[i] {
		panic(fmt.Sprintf("xdp: frame %#x put back twice", addr))
	}
	p.inPool[i] = true
	p.free = append(p.free, base) // never grows: capacity is the pool's size
}

// Free is the number of frames in the pool now.
func (p *Pool) Free() int { return len(p.free) }

// Total is the number of frames the pool was made with.
func (p *Pool) Total() int { return len(p.inPool) }
