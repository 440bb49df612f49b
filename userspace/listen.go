package userspace

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
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

// workerStats makes and publishes the counters of one UDP socket worker
// per Config.Workers, for transport.
func (s *Server) workerStats(transport string) []*WorkerStats {
	stats := make([]*WorkerStats, s.cfg.Workers)
	for i := range stats {
		stats[i] = &WorkerStats{Transport: transport, Queue: i}
		s.addStats(stats[i])
	}
	return stats
}

// openReboundUDP opens the Rebound protocol's UDP sockets on addr, one a
// worker, and starts their workers; on error it closes what it opened.
func (s *Server) openReboundUDP(ctx context.Context, addr string) (conns []*net.UDPConn, err error) {
	return s.openUDP(ctx, addr, func(conn *net.UDPConn, i int) (func() error, error) {
		w, err := newUDPWorker(conn, s.cfg.Handler, s.rebStats[i], s.cfg.Batch, s.cfg.Amplification, s.mtu, s.socketGRO())
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
		w, err := newMCUDPWorker(conn, s.cfg.Memcache, s.mcStats[i], s.cfg.Batch, s.cfg.Amplification, &s.trust, s.socketGRO())
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
// not 0). Every new socket is opened first, for both protocols; then XDP
// steers the new ports (the AF_XDP workers answer the old and the new
// memcached port during the move); then the old UDP sockets close and the
// old TCP listeners stop accepting while their open connections run on.
// On any error nothing changes: sockets opened are closed, and steering is
// put back as it was.
func (s *Server) SetListen(listen, memcacheListen string) (err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped || s.tcp == nil {
		return errNotRunning
	}
	moveReb := listen != "" && listen != s.cfg.Listen
	moveMC := memcacheListen != "" && memcacheListen != s.cfg.MemcacheListen && s.cfg.Memcache != nil
	if !moveReb && !moveMC {
		return nil
	}
	oldReb, _ := listenPort(s.cfg.Listen)
	oldMC, _ := listenPort(s.cfg.MemcacheListen)
	newReb, newMC := oldReb, oldMC
	if moveReb {
		if newReb, err = listenPort(listen); err != nil {
			return err
		}
	}
	if moveMC {
		if newMC, err = listenPort(memcacheListen); err != nil {
			return err
		}
	}

	// Open everything new; on error, close it all.
	ctx := context.Background()
	var rebTCP, mcTCP *tcpServer
	var rebUDP, mcUDP []*net.UDPConn
	steered := false
	defer func() {
		if err == nil {
			return
		}
		for _, ts := range []*tcpServer{rebTCP, mcTCP} {
			if ts != nil {
				ts.close()
			}
		}
		for _, c := range slices.Concat(rebUDP, mcUDP) {
			c.Close()
		}
		if steered {
			// Put steering back; what cannot be put back is logged.
			if e := s.steer(oldReb, oldMC, s.cfg.Listen); e != nil {
				s.log.Error("SetListen failed and steering could not be put back as it was", "err", e)
			}
		}
	}()
	if moveReb {
		if rebTCP, err = s.listenReboundTCP(listen, s.tcp.stats); err != nil {
			return err
		}
		if rebUDP, err = s.openReboundUDP(ctx, listen); err != nil {
			return err
		}
	}
	if moveMC {
		if mcTCP, err = s.listenMemcacheTCP(memcacheListen, s.mcTCP.stats); err != nil {
			return err
		}
		if mcUDP, err = s.openMemcacheUDP(ctx, memcacheListen); err != nil {
			return err
		}
	}
	if s.prog != nil {
		for _, w := range s.xdpW {
			w.mcNext.Store(uint32(newMC)) // answered from the moment it is steered
		}
		steered = true
		host := s.cfg.Listen
		if moveReb {
			host = listen
		}
		if err = s.steer(newReb, newMC, host); err != nil {
			return err
		}
		for _, w := range s.xdpW {
			// The old port stays answered for what is already in the
			// rings; nothing new is steered to it.
			w.mcPort.Store(uint32(newMC))
			w.mcNext.Store(uint32(oldMC))
		}
	}

	// Commit: the new sockets serve; the old ones stop. Connections still
	// open on a retired listener count against MaxConns no more: each
	// listener has its own bound.
	s.pub.Lock()
	if moveReb {
		s.retire(s.tcp, s.rebUDP)
		s.tcp, s.rebUDP, s.cfg.Listen = rebTCP, rebUDP, listen
	}
	if moveMC {
		s.retire(s.mcTCP, s.mcUDP)
		s.mcTCP, s.mcUDP, s.cfg.MemcacheListen = mcTCP, mcUDP, memcacheListen
	}
	s.pub.Unlock()
	s.setOwnPorts(oldReb, oldMC) // what is in flight to the old ports too
	return nil
}

// setOwnPorts tells the gate the ports our services listen on (and extra,
// ports just left), for its own-source check: a datagram from one of them
// at our address is ourselves, spoofed.
func (s *Server) setOwnPorts(extra ...uint16) {
	addrs := []string{s.cfg.Listen}
	if s.cfg.Memcache != nil {
		addrs = append(addrs, s.cfg.MemcacheListen)
	}
	for _, pl := range s.cfg.Protocols {
		addrs = append(addrs, pl.Listen)
	}
	ports := slices.Clone(extra)
	for _, addr := range addrs {
		if p, err := listenPort(addr); err == nil {
			ports = append(ports, p)
		}
	}
	s.gate.setPorts(ports)
}

// steer points the XDP program at the given ports and at the host of
// listen for the local-address check.
func (s *Server) steer(reb, mc uint16, listen string) error {
	if err := s.prog.SetPorts([]uint16{reb}); err != nil {
		return err
	}
	if s.cfg.Memcache != nil {
		if err := s.prog.SetMemcachePorts([]uint16{mc}); err != nil {
			return err
		}
	}
	return s.steerLocal(listen)
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
// workers end). Retired listeners with no connection left are dropped.
// Called with s.pub held.
func (s *Server) retire(ts *tcpServer, conns []*net.UDPConn) {
	ts.ln.Close()
	s.retired = slices.DeleteFunc(append(s.retired, ts), func(r *tcpServer) bool {
		curr, _ := r.counts()
		return curr == 0 && r != ts
	})
	for _, c := range conns {
		c.Close()
	}
}
