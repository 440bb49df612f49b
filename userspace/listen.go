package userspace

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"syscall"

	"github.com/rebound-net/rebound/handler"
)

// resolved returns addr with the port the kernel chose for ln (for port 0).
func resolved(addr string, ln net.Listener) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return net.JoinHostPort(host, strconv.Itoa(ln.Addr().(*net.TCPAddr).Port))
}

// pathMTU is the MTU replies must fit: Config.MTU, else the interface's,
// else 1500.
func (s *Server) pathMTU() int {
	if s.cfg.MTU > 0 {
		return s.cfg.MTU
	}
	if s.cfg.Iface != "" {
		if ifi, err := net.InterfaceByName(s.cfg.Iface); err == nil {
			return ifi.MTU
		}
	}
	return 1500
}

// listenReboundTCP opens and serves the Rebound protocol's TCP listener.
// It is opened without SO_REUSEPORT: it doubles as the check that no other
// server holds the port (the UDP sockets share theirs by design).
func (s *Server) listenReboundTCP(addr string, st *WorkerStats) (*tcpServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("listen %s: port taken by another program (is another rebound running?): %w", addr, err)
		}
		return nil, fmt.Errorf("listen tcp %s: %w", addr, err)
	}
	ts := &tcpServer{ln: ln, h: s.cfg.Handler, stats: st, gate: &s.gate, maxConns: s.cfg.MaxConns,
		idleTimeout: s.cfg.IdleTimeout, writeTimeout: s.cfg.WriteTimeout, reqTimeout: s.cfg.RequestTimeout, conns: map[net.Conn]struct{}{}}
	s.wg.Add(1)
	go func() { defer s.wg.Done(); ts.serve() }()
	return ts, nil
}

// listenMemcacheTCP opens and serves memcached's TCP listener.
func (s *Server) listenMemcacheTCP(addr string, st *WorkerStats) (*tcpServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("memcache listen %s: port taken by another program (a memcached?): %w", addr, err)
		}
		return nil, fmt.Errorf("memcache listen tcp %s: %w", addr, err)
	}
	h := s.cfg.Memcache
	ts := newStreamTCP(ln, func() handler.Stream { return mcStream{h.NewConn()} }, s.cfg.MaxItemSize, st, &s.cfg)
	ts.gate = &s.gate
	s.wg.Add(1)
	go func() { defer s.wg.Done(); ts.serve() }()
	return ts, nil
}

// openReboundUDP opens the Rebound protocol's UDP sockets on addr, one a
// worker, and starts their workers; on error it closes what it opened.
func (s *Server) openReboundUDP(ctx context.Context, addr string) (conns []*net.UDPConn, err error) {
	return s.openUDP(ctx, addr, func(conn *net.UDPConn, i int) (func() error, error) {
		w, err := newUDPWorker(conn, s.cfg.Handler, s.rebStats[i], s.cfg.Batch, s.cfg.Amplification, s.mtu)
		if err != nil {
			return nil, err
		}
		w.gate = &s.gate
		return w.run, nil
	})
}

// openMemcacheUDP is openReboundUDP for memcached.
func (s *Server) openMemcacheUDP(ctx context.Context, addr string) ([]*net.UDPConn, error) {
	return s.openUDP(ctx, addr, func(conn *net.UDPConn, i int) (func() error, error) {
		w, err := newMCUDPWorker(conn, s.cfg.Memcache, s.mcStats[i], s.cfg.Batch, s.cfg.Amplification, &s.trust)
		if err != nil {
			return nil, err
		}
		w.gate = &s.gate
		return w.run, nil
	})
}

func (s *Server) openUDP(ctx context.Context, addr string, worker func(*net.UDPConn, int) (func() error, error)) (conns []*net.UDPConn, err error) {
	defer func() {
		if err != nil {
			for _, c := range conns {
				c.Close()
			}
		}
	}()
	runs := make([]func() error, 0, s.cfg.Workers)
	for i := 0; i < s.cfg.Workers; i++ {
		conn, err := listenUDP(ctx, addr)
		if err != nil {
			return conns, udpListenError(addr, err)
		}
		conns = append(conns, conn)
		run, err := worker(conn, i)
		if err != nil {
			return conns, fmt.Errorf("udp %s: %w", addr, err)
		}
		runs = append(runs, run)
	}
	for _, run := range runs {
		s.wg.Add(1)
		go func() { defer s.wg.Done(); _ = run() }()
	}
	return conns, nil
}

// SetListen moves the built-in protocols to new addresses while serving
// (an empty string leaves that protocol where it is; a port must be given,
// not 0). The new sockets are opened, and in xdp mode steered, before the
// old ones stop: requests to the new address are answered from the moment
// SetListen returns, the old UDP sockets close, and the old TCP listeners
// stop accepting while their open connections run to their end. On error
// nothing changes.
func (s *Server) SetListen(listen, memcacheListen string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return errNotRunning
	}
	ctx := context.Background()
	if listen != "" && listen != s.cfg.Listen {
		port, err := listenPort(listen)
		if err != nil {
			return err
		}
		tcp, err := s.listenReboundTCP(listen, s.tcp.stats)
		if err != nil {
			return err
		}
		conns, err := s.openReboundUDP(ctx, listen)
		if err == nil && s.prog != nil {
			if err = s.prog.SetPorts([]uint16{port}); err == nil {
				err = s.steerLocal(listen)
			}
		}
		if err != nil {
			tcp.close()
			for _, c := range conns {
				c.Close()
			}
			return err
		}
		s.retire(s.tcp, s.rebUDP)
		s.tcp, s.rebUDP, s.cfg.Listen = tcp, conns, listen
	}
	if memcacheListen != "" && memcacheListen != s.cfg.MemcacheListen && s.cfg.Memcache != nil {
		port, err := listenPort(memcacheListen)
		if err != nil {
			return err
		}
		tcp, err := s.listenMemcacheTCP(memcacheListen, s.mcTCP.stats)
		if err != nil {
			return err
		}
		conns, err := s.openMemcacheUDP(ctx, memcacheListen)
		if err == nil && s.prog != nil {
			err = s.prog.SetMemcachePorts([]uint16{port})
		}
		if err != nil {
			tcp.close()
			for _, c := range conns {
				c.Close()
			}
			return err
		}
		for _, w := range s.xdpW {
			w.mcPort.Store(uint32(port))
		}
		s.retire(s.mcTCP, s.mcUDP)
		s.mcTCP, s.mcUDP, s.cfg.MemcacheListen = tcp, conns, memcacheListen
	}
	return nil
}

// steerLocal points the XDP program's local-address check at the host of
// listen (every address of the interface when it has none).
func (s *Server) steerLocal(listen string) error {
	ifi, err := net.InterfaceByName(s.cfg.Iface)
	if err != nil {
		return err
	}
	saved := s.cfg.Listen
	s.cfg.Listen = listen
	addrs, err := s.localAddrs(ifi)
	s.cfg.Listen = saved
	if err != nil {
		return err
	}
	return s.prog.SetLocal(ifi.HardwareAddr, addrs)
}

// retire stops a replaced listener accepting (its connections run on
// until they end, or until Stop) and closes replaced UDP sockets (their
// workers end).
func (s *Server) retire(ts *tcpServer, conns []*net.UDPConn) {
	ts.ln.Close()
	s.retired = append(s.retired, ts)
	for _, c := range conns {
		c.Close()
	}
}
