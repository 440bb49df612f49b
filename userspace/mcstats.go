package userspace

import (
	"sort"
	"syscall"

	"github.com/rebound-net/rebound/codec"
	"github.com/rebound-net/rebound/userspace/mcserve"
)

// memcacheInfo is what memcached's "stats" and "stats settings" report of
// the transport: the memcached TCP connections (those of listeners
// SetListen retired included), the ones refused over MaxConns, the bounds
// and the listen address.
func (s *Server) memcacheInfo() mcserve.ServerInfo {
	si := mcserve.ServerInfo{MaxConns: s.cfg.MaxConns, IdleTimeout: s.cfg.IdleTimeout, Conns: s.memcacheConnList}
	si.CurrConns, si.TotalConns = s.MemcacheConns()
	s.pub.RLock()
	defer s.pub.RUnlock()
	si.Addr = s.cfg.MemcacheListen
	si.UDP = len(s.mcUDP) > 0
	si.TLS = s.cfg.TLS != nil
	if s.mcTCP != nil {
		si.RejectedConns = s.mcTCP.stats.Drops[codec.ReasonBusy].Load()
	}
	return si
}

// memcacheConnList lists the memcached sockets for "stats conns", as
// memcached does: the TCP listener, the UDP sockets, then every TCP
// connection, each by its file descriptor.
func (s *Server) memcacheConnList() []mcserve.ConnInfo {
	s.pub.RLock()
	defer s.pub.RUnlock()
	if s.mcTCP == nil {
		return nil
	}
	var list []mcserve.ConnInfo
	listen := "tcp:" + s.mcTCP.ln.Addr().String()
	list = append(list, mcserve.ConnInfo{ID: fdOf(s.mcTCP.ln), Addr: listen, State: "conn_listening"})
	for _, u := range s.mcUDP {
		list = append(list, mcserve.ConnInfo{ID: fdOf(u), Addr: "udp:" + u.LocalAddr().String(), State: "conn_read", UDP: true})
	}
	var conns []mcserve.ConnInfo
	for _, ts := range append([]*tcpServer{s.mcTCP}, s.retired...) {
		if ts.stats != s.mcTCP.stats {
			continue
		}
		ts.mu.Lock()
		for c := range ts.conns {
			conns = append(conns, mcserve.ConnInfo{ID: fdOf(c), Addr: "tcp:" + c.RemoteAddr().String(),
				ListenAddr: "tcp:" + c.LocalAddr().String()})
		}
		ts.mu.Unlock()
	}
	sort.Slice(conns, func(i, j int) bool { return conns[i].ID < conns[j].ID })
	return append(list, conns...)
}

// fdOf returns a socket's file descriptor, or -1.
func fdOf(x any) int {
	sc, ok := x.(syscall.Conn)
	if !ok {
		return -1
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1
	}
	fd := -1
	_ = rc.Control(func(f uintptr) { fd = int(f) })
	return fd
}
