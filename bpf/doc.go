// Package bpf holds Rebound's XDP steering program (c/rebound.bpf.c), its
// bpf2go-generated loader (rebound_bpfel.go and .o, committed, DO NOT EDIT)
// and a small API to load, configure, attach and read it.
//
// Lifecycle:
//
//	p, _ := bpf.Load(bpf.Options{Ports: []uint16{7000}, MemcachePorts: []uint16{11211}})
//	p.RegisterSocket(queue, sock.FD())        // one AF_XDP socket per rx queue
//	p.Attach("eth0", bpf.ModeAuto, false)     // bpf_link: gone when the process dies
//	c, _ := p.Counters()                      // per-CPU counters, summed
//	p.Close()                                 // detach and release
//
// Two kinds of steered UDP port, each speaking one protocol (a port cannot
// be both; SetPorts and SetMemcachePorts change them while running):
//   - a Rebound port (Options.Ports) takes Rebound requests: a payload of
//     at least 12 bytes starting with magic 0xB5 and version 1;
//   - a memcached port (Options.MemcachePorts) takes single-datagram
//     memcached requests: the 8-byte frame header (request id, sequence
//     number, total datagrams, reserved; big endian) with total 1 and
//     reserved 0, and at least one byte of command after it. Requests
//     spanning several datagrams go to the kernel (socket path).
//
// Verdicts: a request (UDP to a port of its protocol, over IPv4 without
// fragmentation or IPv6 with UDP as next header, with at most one VLAN tag)
// is redirected to the socket of its rx queue, or passed to the kernel when
// the queue has none. With an allow-list, requests from other sources are
// dropped, whatever their protocol. Everything else, including the other
// protocol's datagrams sent to a port, is passed to the kernel untouched;
// each outcome has a counter (Counter), shared by both protocols.
//
// Gotchas:
//   - Attach never replaces a program that is already there unless asked,
//     and even then only one attached through netlink: a bpf_link held by
//     another process is released only by that process.
//   - To move a port from one protocol to the other, take it out of its set
//     first (SetPorts or SetMemcachePorts without it), then add it to the
//     other: an update giving a port both protocols is refused whole.
//   - Regenerate with `make generate` (clang, llvm and libbpf-dev from
//     Debian); CI regenerates and fails when the result differs.
//   - The program re-checks nothing for userspace: userspace validates every
//     frame again (codec), as it may come from a program that is not ours.
package bpf
