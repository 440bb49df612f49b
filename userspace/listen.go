package userspace

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
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
	ts := newStreamTCP(ln, func() handler.Stream { return newRBStream(s.cfg.Handler, st) }, tcpMaxReq, st, &s.cfg)
	ts.gate, ts.limit = &s.gate, &s.conns
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
	ts.gate, ts.limit, ts.tooLarge, ts.busy = &s.gate, &s.conns, mcOutOfMemory, tooManyConns
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
	if s.udpOff() != "" {
		return nil, nil
	}
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
	newMC := oldMC
	if moveReb {
		if _, err = listenPort(listen); err != nil {
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
			if e := s.steer(s.cfg.Listen, s.cfg.MemcacheListen); e != nil {
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
		nextReb, nextMC := s.cfg.Listen, s.cfg.MemcacheListen
		if moveReb {
			nextReb = listen
		}
		if moveMC {
			nextMC = memcacheListen
		}
		if err = s.steer(nextReb, nextMC); err != nil {
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
	// open on a retired listener go on counting against MaxConns, the
	// process's one bound, until they close.
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

// steer points the XDP program at the ports of the listen addresses
// given (Rebound's, memcached's; the protocols of your own do not move),
// each for its own listen host only (portHosts). s.cfg holds the
// addresses in force: their hosts stay in force until the ports switch,
// so that no port is ever steered at an address it does not listen on,
// and are dropped after.
func (s *Server) steer(listen, memcacheListen string) error {
	reb, err := listenPort(listen)
	if err != nil {
		return err
	}
	next, err := s.portHosts(listen, memcacheListen)
	if err != nil {
		return err
	}
	both, err := s.portHosts(s.cfg.Listen, s.cfg.MemcacheListen)
	if err != nil {
		both = map[uint16]netip.Addr{}
	}
	maps.Copy(both, next)
	if err := s.prog.SetPortHosts(both); err != nil {
		return err
	}
	if err := s.prog.SetPorts([]uint16{reb}); err != nil {
		return err
	}
	if s.cfg.Memcache != nil {
		mc, err := listenPort(memcacheListen)
		if err != nil {
			return err
		}
		if err := s.prog.SetMemcachePorts([]uint16{mc}); err != nil {
			return err
		}
	}
	return s.prog.SetPortHosts(next)
}

// portHosts returns the listen host of each UDP port XDP steers, given
// Rebound's and memcached's listen addresses (the protocols of your own
// come from s.cfg): the address a host names (a name resolved as the
// socket resolved it). A port listening on every address (no host,
// 0.0.0.0, ::) has none: it is steered at every local address.
func (s *Server) portHosts(listen, memcacheListen string) (map[uint16]netip.Addr, error) {
	addrs := []string{listen}
	if s.cfg.Memcache != nil {
		addrs = append(addrs, memcacheListen)
	}
	for _, pl := range s.cfg.Protocols {
		if pl.Datagram != nil {
			addrs = append(addrs, pl.Listen)
		}
	}
	hosts := make(map[uint16]netip.Addr, len(addrs))
	for _, addr := range addrs {
		port, err := listenPort(addr)
		if err != nil {
			return nil, err
		}
		host, _, _ := net.SplitHostPort(addr)
		if host == "" {
			continue
		}
		a, err := netip.ParseAddr(host)
		if err != nil {
			ua, rerr := net.ResolveUDPAddr("udp", addr)
			if rerr != nil {
				return nil, fmt.Errorf("listen address %q: %w", addr, rerr)
			}
			a = ua.AddrPort().Addr()
		}
		if a = a.Unmap(); !a.IsUnspecified() {
			hosts[port] = a.WithZone("")
		}
	}
	return hosts, nil
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
