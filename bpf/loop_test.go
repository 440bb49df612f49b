package bpf_test

import (
	"net"
	"net/netip"
	"testing"

	"github.com/rebound-net/rebound/bpf"
	"github.com/rebound-net/rebound/codec/rebound"
	"github.com/rebound-net/rebound/internal/testutil"
)

// loadLocalAnswers is loadAnswers with the lab server's MAC and local
// addresses set (198.18.0.2 and 2001:2::2, and .10 and ::10 besides), as
// the server sets them, and the item "k" held.
func loadLocalAnswers(t *testing.T, hosts map[uint16]netip.Addr) (*bpf.Program, *bpf.Items) {
	t.Helper()
	testutil.RequirePriv(t)
	local := append(serverAddrs(), netip.MustParseAddr("198.18.0.10"), netip.MustParseAddr("2001:2::10"))
	p, err := bpf.Load(bpf.Options{Ports: []uint16{7000}, MemcachePorts: []uint16{mcPort}, RawPorts: []uint16{rawPort},
		AnswerItems: 10, LocalMAC: testutil.ServerMAC, LocalAddrs: local, PortHosts: hosts})
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	items := p.Items()
	configure(t, items, true, ansAmp, ansMTU)
	put(items, "k", []byte("v"), 0, 1)
	return p, items
}

// TestOwnSourceNotAnswered (issue 18, item 3): a request whose source IP
// is one of ours (the destination itself, another local address,
// loopback) is dropped in XDP, never answered: an answer would go to
// ourselves, or start a loop between two of our sockets. The same request
// from a peer is answered.
func TestOwnSourceNotAnswered(t *testing.T) {
	p, _ := loadLocalAnswers(t, nil)
	reqs := []struct {
		name    string
		port    uint16
		payload []byte
		op      bpf.AnswerOp
		reply   []byte
	}{
		{"ping", 7000, pingReq(5, []byte("abc")), bpf.AnswerPing, reboundReply(rebound.OpPing, 5, []byte("abc"))},
		{"get", 7000, getReq(5, "k", 0), bpf.AnswerGet, reboundReply(rebound.OpGet, 5, []byte("v"))},
		{"memcached get", mcPort, mcDatagram(5, 0, 1, 0, "get k\r\n"), bpf.AnswerMemcacheGet, mcReply(5, "k", 0, []byte("v"))},
		{"memcached mg", mcPort, mcDatagram(5, 0, 1, 0, "mg k v\r\n"), bpf.AnswerMemcacheMetaGet, nil},
		{"raw", rawPort, rawPayload, noAnswer, nil},
	}
	for _, r := range reqs {
		if r.reply != nil {
			hit(t, p, r.name+" from a peer", frame(t, testutil.Packet{}, r.port, r.payload), r.op, r.reply)
		}
		for _, src := range []struct {
			name string
			pk   testutil.Packet
		}{
			{"the destination v4", testutil.Packet{Src: net.IPv4(198, 18, 0, 2)}},
			{"the destination v6", testutil.Packet{IPv6: true, Src: net.ParseIP("2001:2::2")}},
			{"another local address v4", testutil.Packet{Src: net.IPv4(198, 18, 0, 10)}},
			{"another local address v6", testutil.Packet{IPv6: true, Src: net.ParseIP("2001:2::10")}},
			{"loopback v4", testutil.Packet{Src: net.IPv4(127, 0, 0, 1)}},
			{"loopback v6", testutil.Packet{IPv6: true, Src: net.IPv6loopback}},
			{"the destination, vlan", testutil.Packet{VLAN: 10, Src: net.IPv4(198, 18, 0, 2)}},
		} {
			runAnswer(t, p, r.name+" from "+src.name, frame(t, src.pk, r.port, r.payload), xdpDrop, bpf.DropOwnSource, noAnswer, 0)
		}
	}
	// Without local addresses, the destination and loopback still count.
	p2, items := loadAnswers(t, 10)
	put(items, "k", []byte("v"), 0, 1)
	runAnswer(t, p2, "no local addresses, from the destination", frame(t, testutil.Packet{Src: net.IPv4(198, 18, 0, 2)}, 7000, getReq(5, "k", 0)),
		xdpDrop, bpf.DropOwnSource, noAnswer, 0)
	hit(t, p2, "no local addresses, from another address", frame(t, testutil.Packet{Src: net.IPv4(198, 18, 0, 10)}, 7000, getReq(5, "k", 0)),
		bpf.AnswerGet, reboundReply(rebound.OpGet, 5, []byte("v")))
}

// TestRepliesNotAnswered (issue 18, item 3): a datagram that is itself a
// reply (Rebound's response flag; memcached's reply lines: ERROR, VALUE,
// END, STORED, a number, the meta replies) is never answered in XDP. It
// goes on unchanged to the AF_XDP socket (here: none, so to the kernel),
// where userspace's admission refuses it: one rule, in one place, with
// its counters. Nothing is answered from a peer's port 11211 either.
func TestRepliesNotAnswered(t *testing.T) {
	p, _ := loadLocalAnswers(t, nil)
	// The answered form of each, to show the program would answer it.
	hit(t, p, "ping", frame(t, testutil.Packet{}, 7000, pingReq(5, []byte("k"))), bpf.AnswerPing, reboundReply(rebound.OpPing, 5, []byte("k")))
	hit(t, p, "get", frame(t, testutil.Packet{}, 7000, getReq(5, "k", 0)), bpf.AnswerGet, reboundReply(rebound.OpGet, 5, []byte("v")))

	withFlag := func(b []byte) []byte {
		b = append([]byte(nil), b...)
		b[3] |= byte(rebound.FlagResponse)
		return b
	}
	for _, s := range shapes {
		for _, c := range []struct {
			name    string
			port    uint16
			payload []byte
		}{
			{"ping with the response flag", 7000, withFlag(pingReq(5, []byte("k")))},
			{"get with the response flag", 7000, withFlag(getReq(5, "k", 0))},
			{"ping reply", 7000, reboundReply(rebound.OpPing, 5, []byte("k"))},
			{"get reply", 7000, reboundReply(rebound.OpGet, 5, []byte("v"))},
			{"memcached ERROR", mcPort, mcDatagram(5, 0, 1, 0, "ERROR\r\n")},
			{"memcached VALUE", mcPort, mcReply(5, "k", 0, []byte("v"))},
			{"memcached END", mcPort, mcDatagram(5, 0, 1, 0, "END\r\n")},
			{"memcached STORED", mcPort, mcDatagram(5, 0, 1, 0, "STORED\r\n")},
			{"memcached number", mcPort, mcDatagram(5, 0, 1, 0, "42\r\n")},
			{"memcached CLIENT_ERROR", mcPort, mcDatagram(5, 0, 1, 0, "CLIENT_ERROR bad command line format\r\n")},
			{"memcached SERVER_ERROR", mcPort, mcDatagram(5, 0, 1, 0, "SERVER_ERROR out of memory\r\n")},
			{"memcached VA", mcPort, mcDatagram(5, 0, 1, 0, "VA 1\r\nv\r\n")},
			{"memcached HD", mcPort, mcDatagram(5, 0, 1, 0, "HD\r\n")},
			{"memcached EN", mcPort, mcDatagram(5, 0, 1, 0, "EN\r\n")},
			{"memcached VERSION", mcPort, mcDatagram(5, 0, 1, 0, "VERSION 1.6.21\r\n")},
		} {
			name := s.name + " " + c.name
			runAnswer(t, p, name, frame(t, s.pk, c.port, c.payload), xdpPass, bpf.PassNoSocket, noAnswer, 0)
			// The spoofed datagram of the Loop DoS: from a memcached
			// peer's port 11211.
			pk := s.pk
			pk.SrcPort = mcPort
			runAnswer(t, p, name+" from port 11211", frame(t, pk, c.port, c.payload), xdpPass, bpf.PassNoSocket, noAnswer, 0)
		}
	}
}

// TestPortHosts (issue 18, item 4): a port with a listen host is steered
// (and answered) only at that address; SetPortHosts changes that while
// running; ports without one are steered at every local address.
func TestPortHosts(t *testing.T) {
	lo := netip.MustParseAddr("127.0.0.1")
	ten := netip.MustParseAddr("198.18.0.10")
	p, _ := loadLocalAnswers(t, map[uint16]netip.Addr{mcPort: lo, rawPort: ten})
	at := func(port uint16, dst string, payload []byte) []byte {
		ip := net.ParseIP(dst)
		return frame(t, testutil.Packet{Dst: ip, IPv6: ip.To4() == nil}, port, payload)
	}
	ping, get := pingReq(5, []byte("k")), mcDatagram(5, 0, 1, 0, "get k\r\n")
	// The Rebound port has no host: answered at both local addresses.
	hit(t, p, "rebound at .2", at(7000, "198.18.0.2", ping), bpf.AnswerPing, reboundReply(rebound.OpPing, 5, []byte("k")))
	hit(t, p, "rebound at .10", at(7000, "198.18.0.10", ping), bpf.AnswerPing, reboundReply(rebound.OpPing, 5, []byte("k")))
	// memcached listens on 127.0.0.1: neither answered nor steered here.
	runAnswer(t, p, "memcached at .2", at(mcPort, "198.18.0.2", get), xdpPass, bpf.PassNotLocal, noAnswer, 0)
	runAnswer(t, p, "memcached at 2001:2::2", at(mcPort, "2001:2::2", get), xdpPass, bpf.PassNotLocal, noAnswer, 0)
	withSocket(t, p, func() {
		run(t, p, "raw at its host", at(rawPort, "198.18.0.10", rawPayload), xdpRedirect, bpf.Redirected)
		run(t, p, "raw at another local address", at(rawPort, "198.18.0.2", rawPayload), xdpPass, bpf.PassNotLocal)
		run(t, p, "raw at a local v6 address", at(rawPort, "2001:2::2", rawPayload), xdpPass, bpf.PassNotLocal)
	})

	// Moved: memcached to .2, Rebound to 2001:2::2; raw to every address.
	if err := p.SetPortHosts(map[uint16]netip.Addr{mcPort: netip.MustParseAddr("198.18.0.2"), 7000: netip.MustParseAddr("2001:2::2")}); err != nil {
		t.Fatal(err)
	}
	hit(t, p, "memcached at its new host", at(mcPort, "198.18.0.2", get), bpf.AnswerMemcacheGet, mcReply(5, "k", 0, []byte("v")))
	runAnswer(t, p, "memcached at .10", at(mcPort, "198.18.0.10", get), xdpPass, bpf.PassNotLocal, noAnswer, 0)
	hit(t, p, "rebound at its new host", at(7000, "2001:2::2", ping), bpf.AnswerPing, reboundReply(rebound.OpPing, 5, []byte("k")))
	runAnswer(t, p, "rebound at .2", at(7000, "198.18.0.2", ping), xdpPass, bpf.PassNotLocal, noAnswer, 0)
	withSocket(t, p, func() {
		run(t, p, "raw at .2 with no host", at(rawPort, "198.18.0.2", rawPayload), xdpRedirect, bpf.Redirected)
		run(t, p, "raw at .10 with no host", at(rawPort, "198.18.0.10", rawPayload), xdpRedirect, bpf.Redirected)
	})

	// Bad input changes nothing.
	for name, hosts := range map[string]map[uint16]netip.Addr{
		"port 0":      {0: ten},
		"unspecified": {mcPort: netip.IPv4Unspecified()},
		"multicast":   {mcPort: netip.MustParseAddr("239.1.1.1")},
		"invalid":     {mcPort: {}},
	} {
		if err := p.SetPortHosts(hosts); err == nil {
			t.Errorf("SetPortHosts with %s succeeded", name)
		}
	}
	hit(t, p, "memcached after refused updates", at(mcPort, "198.18.0.2", get), bpf.AnswerMemcacheGet, mcReply(5, "k", 0, []byte("v")))
	if err := p.SetPortHosts(nil); err != nil {
		t.Fatal(err)
	}
	hit(t, p, "rebound at .2 with no hosts", at(7000, "198.18.0.2", ping), bpf.AnswerPing, reboundReply(rebound.OpPing, 5, []byte("k")))
	p.Close()
	if err := p.SetPortHosts(nil); err == nil {
		t.Error("SetPortHosts after Close succeeded")
	}
}
