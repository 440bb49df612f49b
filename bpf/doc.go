// Package bpf holds Rebound's XDP steering program (c/rebound.bpf.c), its
// bpf2go-generated loader (rebound_bpfel.go and .o, committed, DO NOT EDIT)
// and a small API to load, configure, attach and read it.
//
// Lifecycle:
//
//	p, _ := bpf.Load(bpf.Options{Ports: []uint16{7000}, MemcachePorts: []uint16{11211},
//		RawPorts: []uint16{9000}, LocalMAC: ifaceMAC, LocalAddrs: hostAddrs})
//	p.RegisterSocket(queue, sock.FD())        // one AF_XDP socket per rx queue
//	p.Attach("eth0", bpf.ModeAuto, false)     // bpf_link: gone when the process dies
//	p.SetLocal(ifaceMAC, hostAddrs)           // when the host's addresses change
//	p.SetAllow(prefixes)                      // atomic: old list or new, never none
//	p.Items().Put(key, value, flags, cas, exp, storedNs) // with AnswerItems: what XDP answers from
//	c, _ := p.Counters()                      // per-CPU counters, summed
//	p.Close()                                 // detach and release
//
// Three kinds of steered UDP port, each speaking one protocol (a port is of
// one kind at most; SetPorts, SetMemcachePorts and SetRawPorts change them
// while running):
//   - a Rebound port (Options.Ports) takes Rebound requests: a payload of
//     at least 12 bytes starting with magic 0xB5 and version 1;
//   - a memcached port (Options.MemcachePorts) takes single-datagram
//     memcached requests: the 8-byte frame header (request id, sequence
//     number, total datagrams, reserved; big endian) with total 1 (reserved
//     is ignored, as memcached ignores it), and at least one byte of command
//     after it. Requests spanning several datagrams go to the kernel
//     (socket path);
//   - a raw port (Options.RawPorts) speaks a protocol of the user's own,
//     which the program cannot parse: every datagram with a payload of at
//     least one byte is a request, whatever it holds (a Rebound or
//     memcached request sent there is a raw one). An empty one is not.
//     The program checks nothing in it: that is left to userspace.
//
// Verdicts: a request (UDP to a port of its kind, over IPv4 without
// fragmentation or IPv6 with UDP as next header, with at most one VLAN tag)
// must be addressed to this host and answerable, or it is passed to the
// kernel (PassNotLocal):
//   - always: unicast destination and source MACs, and a source IP that is
//     not 0.0.0.0, 255.255.255.255, 224.0.0.0/4, :: or ff00::/8;
//   - when Options.LocalMAC is set: the destination MAC is that one;
//   - when Options.LocalAddrs is set: the destination IP is one of them
//     (so routed traffic passing through, or a request to a broadcast or
//     multicast IP, is left to the kernel);
//   - when Options.PortHosts has the port: the destination IP is its
//     listen host (SetPortHosts updates them live).
//
// The server always sets both (SetLocal updates them live); leaving them
// empty, as tests do, keeps only the always-on checks. A request whose
// source IP is one of ours (the destination, one of LocalAddrs, loopback)
// is then dropped (DropOwnSource): answered, it could loop between our
// own sockets. Then, with an allow-list, requests from other sources are
// dropped, whatever their protocol. The rest is redirected to the socket of its rx queue, or passed
// to the kernel when the queue has none. Everything else, including the
// other protocols' datagrams sent to a Rebound or memcached port, is passed
// to the kernel untouched; each outcome has a counter (Counter), shared by
// every kind of port.
//
// Answers (Options.AnswerItems > 0, then Items().Configure(true, ...)):
// before redirecting a request, the program answers with XDP_TX what it
// can answer exactly: a Rebound PING, a Rebound GET or a memcached
// "get <key>" of an item it holds. Items holds those items (keys up to
// AnswerKeyMax, values up to AnswerValueMax); the server's store keeps it
// coherent through store.Mirror. The reply is byte for byte the userspace
// path's (the same bounds, checksums and rewrite); everything it cannot
// answer goes on unchanged, replies (the response flag, memcached's
// reply lines) included: userspace's admission refuses those. SetTrust is the trusted list of the memcached
// amplification bound, swapped like the allow-list. AnswerCounters counts
// each attempt by request and outcome.
//
// SetAllow is atomic and fails closed: the prefixes are checked first (an
// error leaves the list in force), the new list is built in a trie that is
// not live, then swapped in with one map update (an inner map of an
// ARRAY_OF_MAPS). The kernel returns from that update only once no running
// program can still use the old trie, then frees it; so a swap takes an RCU
// grace period (about 15 ms here): fine for configuration, not per request.
//
// Gotchas:
//   - Attach never replaces a program that is already there unless asked,
//     and even then only one attached through netlink: a bpf_link held by
//     another process is released only by that process.
//   - To move a port from one kind to another, take it out of its set
//     first (SetPorts, SetMemcachePorts or SetRawPorts without it), then
//     add it to the other: an update giving a port two kinds is refused
//     whole, changing nothing.
//   - LocalAddrs must hold every address the server is reached at (all
//     of the host's, secondary and VLAN ones included): a request to
//     another goes to the kernel, and so to the socket path. With only
//     IPv4 addresses, every IPv6 request goes there.
//   - Regenerate with `make generate` (clang, llvm and libbpf-dev from
//     Debian); CI regenerates and fails when the result differs.
//   - The program re-checks nothing for userspace: userspace validates every
//     frame again (codec), as it may come from a program that is not ours.
package bpf
