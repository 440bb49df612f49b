package userspace

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"

	"github.com/rebound-net/rebound/codec"
	"github.com/rebound-net/rebound/handler"
	"github.com/rebound-net/rebound/internal/udpbatch"
)

// ProtocolListener serves a protocol of your own (handler.Protocol) on an
// address of its own, UDP and TCP, next to the built-in protocols.
type ProtocolListener struct {
	Listen string // ADDR:PORT (port 0: the kernel picks one; Server.ProtocolAddr says which)
	handler.Protocol
}

// defaultMaxRequest bounds one TCP request of a protocol of your own.
const defaultMaxRequest = 64 << 10

// datagramServer answers one protocol-of-your-own datagram in place, for
// the UDP socket and AF_XDP workers alike: the reply room is the
// request's own buffer, bounded by the amplification factor (unless the
// source is trusted) and the path.
type datagramServer struct {
	d     handler.Datagram
	amp   int
	trust *atomic.Pointer[Prefixes]
	stats *WorkerStats
}

// serve answers req, which lies at buf[:len(req)] with room for a reply up
// to cap(buf) and pathMax, and returns the reply's length in buf (0: none).
func (p *datagramServer) serve(buf []byte, n int, src netip.Addr, pathMax int) int {
	limit := min(cap(buf), pathMax)
	if tp := p.trust.Load(); tp == nil || !tp.Contains(src) {
		limit = codec.ReplyLimit(n, p.amp, limit)
	}
	out := buf[:0:limit]
	reply := p.d.ServeDatagram(buf[:n:n], src, out)
	switch {
	case len(reply) == 0:
		return 0 // no reply, as the protocol chose
	case len(reply) > limit:
		p.stats.Rejects[codec.ReasonAmplification].Add(1)
		return 0
	case &reply[0] != &buf[:1][0]:
		// The handler built its reply elsewhere: bring it in.
		return copy(buf[:limit], reply)
	}
	return len(reply)
}

// protoUDPWorker serves a protocol of your own on one UDP socket with
// batched recvmmsg/sendmmsg, answering in place.
type protoUDPWorker struct {
	io    *udpbatch.Conn
	p     datagramServer
	gate  *gate
	mtu   int
	stats *WorkerStats
}

func newProtoUDPWorker(conn *net.UDPConn, p datagramServer, g *gate, batch, mtu int, gro bool) (*protoUDPWorker, error) {
	bio, err := newBatchConn(conn, batch, gro)
	if err != nil {
		return nil, err
	}
	return &protoUDPWorker{io: bio, p: p, gate: g, mtu: mtu, stats: p.stats}, nil
}

func (w *protoUDPWorker) run() error {
	for {
		n, closed := readBatch(w.io, w.stats)
		if closed {
			return nil
		}
		if n == 0 {
			continue
		}
		w.stats.Rx.Add(uint64(n))
		for i := 0; i < n; i++ {
			src := w.io.From(i).Addr()
			if !admitDatagram(w.io, i, src, w.gate, w.stats) {
				continue
			}
			if rl := w.p.serve(w.io.Buf(i), w.io.Len(i), src, codec.UDPPayloadMax(w.mtu, !src.Is4())); rl > 0 {
				w.io.Queue(w.io.Buf(i)[:rl], i) // one reply a slot: never full
			}
		}
		w.stats.batch(n)
		flushBatch(w.io, w.stats)
	}
}

// startProtocols opens the UDP sockets and TCP listeners of the protocols
// of your own. In xdp mode their UDP ports are steered too (xdpPorts).
func (s *Server) startProtocols(ctx context.Context) error {
	for i := range s.cfg.Protocols {
		pl := &s.cfg.Protocols[i]
		if pl.Name == "" {
			return fmt.Errorf("protocol %d: no name", i)
		}
		if pl.Datagram == nil && pl.NewStream == nil {
			return fmt.Errorf("protocol %s: neither Datagram nor NewStream", pl.Name)
		}
		if pl.MaxRequest <= 0 {
			pl.MaxRequest = defaultMaxRequest
		}
		ln, err := net.Listen("tcp", pl.Listen)
		if err != nil {
			return fmt.Errorf("protocol %s: listen %s: %w", pl.Name, pl.Listen, err)
		}
		pl.Listen = resolved(pl.Listen, ln) // the port the kernel chose, for UDP and XDP too
		if pl.NewStream != nil {
			st := &WorkerStats{Transport: pl.Name + "-tcp"}
			s.addStats(st)
			ts := newStreamTCP(ln, pl.NewStream, pl.MaxRequest, st, &s.cfg)
			ts.limit = &s.conns
			ts.gate = &s.gate
			s.extraTCP = append(s.extraTCP, ts)
			s.wg.Add(1)
			go func() { defer s.wg.Done(); ts.serve() }()
		} else {
			// The listener only reserved the port for UDP.
			defer ln.Close()
		}
		if pl.Datagram == nil {
			continue
		}
		stats := s.workerStats(pl.Name + "-udp")
		conns, err := s.openUDP(ctx, pl.Listen, func(conn *net.UDPConn, q int) (func() error, error) {
			ds := datagramServer{d: pl.Datagram, amp: s.cfg.Amplification, trust: &s.trust, stats: stats[q]}
			w, err := newProtoUDPWorker(conn, ds, &s.gate, s.cfg.Batch, s.mtu, s.socketGRO())
			if err != nil {
				return nil, err
			}
			return w.run, nil
		})
		if err != nil {
			return fmt.Errorf("protocol %s: %w", pl.Name, err)
		}
		s.udp = append(s.udp, conns...)
	}
	return nil
}

// ProtocolAddr returns the address a protocol of your own listens on
// (after Start: with the port the kernel chose for port 0), or nil.
func (s *Server) ProtocolAddr(name string) net.Addr {
	for _, pl := range s.cfg.Protocols {
		if pl.Name == name {
			a, err := net.ResolveTCPAddr("tcp", pl.Listen)
			if err != nil {
				return nil
			}
			return a
		}
	}
	return nil
}
