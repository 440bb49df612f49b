package userspace

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"

	"github.com/rebound-net/rebound/codec"
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
// (golang.org/x/net ReadBatch/WriteBatch). Requests are answered in place
// in the buffer they were read into, exactly as on the AF_XDP path.
type udpWorker struct {
	conn  *net.UDPConn
	pc    *ipv4.PacketConn // batch I/O; works for IPv6 sockets too
	h     Handler
	gate  *gate // sources served; nil: all
	stats *WorkerStats
	mtu   int
	b     batcher
	in    []ipv4.Message
	out   []ipv4.Message
	bufs  [][]byte
}

func newUDPWorker(conn *net.UDPConn, h Handler, stats *WorkerStats, batch, amp, mtu int) *udpWorker {
	w := &udpWorker{conn: conn, pc: ipv4.NewPacketConn(conn), h: h, stats: stats, mtu: mtu,
		b: newBatcher(batch, amp, stats), in: make([]ipv4.Message, batch), out: make([]ipv4.Message, batch),
		bufs: make([][]byte, batch)}
	for i := range w.in {
		w.bufs[i] = make([]byte, udpBufSize)
		w.in[i].Buffers = [][]byte{w.bufs[i]}
		w.out[i].Buffers = make([][]byte, 1)
	}
	return w
}

// run serves until the socket is closed.
func (w *udpWorker) run() error {
	for {
		n, err := w.pc.ReadBatch(w.in, 0)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			w.stats.RxErrors.Add(1)
			continue
		}
		for i := 0; i < n; i++ {
			m := &w.in[i]
			a, ok := m.Addr.(*net.UDPAddr)
			ipv6 := ok && a.IP.To4() == nil
			if w.gate != nil && ok {
				if why := w.gate.admit(a.AddrPort().Addr()); why != codec.ReasonNone {
					w.stats.Drops[why].Add(1)
					w.b.skip()
					continue
				}
			}
			w.b.add(w.bufs[i][:m.N], codec.UDPPayloadMax(w.mtu, ipv6))
		}
		w.b.run(w.h)
		j := 0
		for i := 0; i < n; i++ {
			if rl := w.b.items[i].replyLen; rl > 0 {
				w.out[j].Buffers[0] = w.bufs[i][:rl]
				w.out[j].Addr = w.in[i].Addr
				j++
			}
		}
		w.b.reset()
		w.send(j)
		for i := 0; i < n; i++ {
			w.in[i].Addr = nil
		}
	}
}

// send writes out[:n], retrying the part a partial sendmmsg left.
func (w *udpWorker) send(n int) {
	for sent := 0; sent < n; {
		k, err := w.pc.WriteBatch(w.out[sent:n], 0)
		if err != nil {
			// A reply that cannot be sent (unreachable client, full
			// buffer) is lost like any UDP datagram; skip it.
			w.stats.TxErrors.Add(1)
			k = max(k, 1)
		} else {
			w.stats.Tx.Add(uint64(k))
		}
		sent += k
	}
	for i := 0; i < n; i++ {
		w.out[i].Addr, w.out[i].Buffers[0] = nil, nil
	}
}

func udpListenError(addr string, err error) error {
	if errors.Is(err, unix.EADDRINUSE) {
		return fmt.Errorf("udp %s: port taken by another program: %w", addr, err)
	}
	return fmt.Errorf("udp %s: %w", addr, err)
}
