package userspace

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/rebound-net/rebound/codec"
	"github.com/rebound-net/rebound/internal/udpbatch"
)

const (
	// udpBufSize holds any UDP datagram (65507 bytes of payload at most),
	// so a request is never cut short by the buffer.
	udpBufSize = 64 << 10
	// udpRcvBuf is the receive buffer asked for each socket: enough for
	// hundreds of requests in flight per socket without drops. As root it
	// is forced past net.core.rmem_max (SO_RCVBUFFORCE).
	udpRcvBuf = 8 << 20
)

// listenUDP opens one SO_REUSEPORT UDP socket on addr: the kernel spreads
// datagrams over all sockets of the group by flow.
func listenUDP(ctx context.Context, addr string) (*net.UDPConn, error) {
	lc := net.ListenConfig{Control: func(network, address string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); serr != nil {
				return
			}
			if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, udpRcvBuf) != nil {
				_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, udpRcvBuf)
			}
			if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, udpRcvBuf) != nil {
				_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF, udpRcvBuf)
			}
		})
		if err != nil {
			return err
		}
		return serr
	}}
	pc, err := lc.ListenPacket(ctx, "udp", addr)
	if err != nil {
		return nil, err
	}
	return pc.(*net.UDPConn), nil
}

// udpWorker serves one UDP socket with batched recvmmsg/sendmmsg
// (internal/udpbatch: nothing allocated per datagram). Requests are
// answered in place in the buffer they were read into, exactly as on the
// AF_XDP path.
type udpWorker struct {
	io    *udpbatch.Conn
	h     Handler
	gate  *gate // sources served; nil: all
	stats *WorkerStats
	mtu   int
	b     batcher
}

func newUDPWorker(conn *net.UDPConn, h Handler, stats *WorkerStats, batch, amp, mtu int, gro bool) (*udpWorker, error) {
	bio, err := newBatchConn(conn, batch, gro)
	if err != nil {
		return nil, err
	}
	return &udpWorker{io: bio, h: h, stats: stats, mtu: mtu, b: newBatcher(batch, amp, stats)}, nil
}

// run serves until the socket is closed.
func (w *udpWorker) run() error {
	for {
		n, closed := readBatch(w.io, w.stats)
		if closed {
			return nil
		}
		if n == 0 {
			continue
		}
		for i := 0; i < n; i++ {
			src := w.io.From(i).Addr()
			if !admitDatagram(w.io, i, src, w.gate, w.stats) {
				w.b.skip()
				continue
			}
			w.b.add(w.io.Data(i), codec.UDPPayloadMax(w.mtu, !src.Is4()))
		}
		w.b.run(w.h)
		for i := 0; i < n; i++ {
			if rl := w.b.items[i].replyLen; rl > 0 {
				w.io.Queue(w.io.Buf(i)[:rl], i) // at most one reply a slot: never full
			}
		}
		w.b.reset()
		flushBatch(w.io, w.stats)
	}
}

// flushBatch sends the replies queued on io and counts what happened. A
// reply that cannot be sent (unreachable client, full buffer) is lost
// like any UDP datagram, counted.
func flushBatch(io *udpbatch.Conn, stats *WorkerStats) {
	sent, err := io.Flush()
	stats.Tx.Add(uint64(sent))
	if err != nil && !errors.Is(err, net.ErrClosed) {
		stats.TxErrors.Add(1)
	}
	st := io.Stats()
	stats.Coalesced.Store(st.Coalesced)
	stats.GSOSends.Store(st.GSOSends)
	stats.GSOOff.Store(st.GSOOff)
}

// admitDatagram reports whether datagram i of the last read, from src,
// may be answered: addressed to a unicast address of ours (never to a
// broadcast or multicast one), from a source the gate admits (nil: any)
// and not from one of our own service sockets; a refusal is counted.
func admitDatagram(io *udpbatch.Conn, i int, src netip.Addr, g *gate, stats *WorkerStats) bool {
	why := codec.ReasonNone
	if dst, unicast := io.Dst(i); !unicast {
		why = codec.ReasonNotUnicast
	} else if g != nil {
		why = g.admit(src)
		if why == codec.ReasonNone && g.ownSource(io.From(i), dst) {
			why = codec.ReasonOwnSource
		}
	}
	if why != codec.ReasonNone {
		stats.Drops[why].Add(1)
		return false
	}
	return true
}

// socketGRO reports whether the UDP sockets ask for GRO: in udp mode
// only. Asking for it makes the device's GRO merge the port's datagrams
// before generic XDP runs, and the XDP program would then see one merged
// frame instead of the requests.
func (s *Server) socketGRO() bool { return s.cfg.Mode == ModeUDP }

// newBatchConn wraps a UDP socket for batched I/O with slots of
// udpBufSize, GSO on sends (udpbatch's default) and, with gro, GRO on
// receives: a burst from one client then crosses the socket layer as one
// buffer each way. A kernel without UDP_GRO (before 5.0) just never
// coalesces.
func newBatchConn(conn *net.UDPConn, batch int, gro bool) (*udpbatch.Conn, error) {
	bio, err := udpbatch.New(conn, batch, udpBufSize)
	if err != nil {
		return nil, err
	}
	if gro {
		_ = bio.SetGRO(true)
	}
	return bio, nil
}

// readBatch reads the next batch of datagrams: n of them (0 after an
// error, counted), or closed once the socket is.
func readBatch(io *udpbatch.Conn, stats *WorkerStats) (n int, closed bool) {
	n, err := io.Read()
	if err != nil {
		if errors.Is(err, net.ErrClosed) {
			return 0, true
		}
		stats.RxErrors.Add(1)
		return 0, false
	}
	return n, false
}

func udpListenError(addr string, err error) error {
	if errors.Is(err, unix.EADDRINUSE) {
		return fmt.Errorf("udp %s: port taken by another program: %w", addr, err)
	}
	return fmt.Errorf("udp %s: %w", addr, err)
}
