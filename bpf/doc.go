// Package bpf holds Rebound's XDP steering program (c/rebound.bpf.c), its
// bpf2go-generated loader (rebound_bpfel.go and .o, committed, DO NOT EDIT)
// and a small API to load, configure, attach and read it.
//
// Lifecycle:
//
//	p, _ := bpf.Load(bpf.Options{Ports: []uint16{7000}})
//	p.RegisterSocket(queue, sock.FD())        // one AF_XDP socket per rx queue
//	p.Attach("eth0", bpf.ModeAuto, false)     // bpf_link: gone when the process dies
//	c, _ := p.Counters()                      // per-CPU counters, summed
//	p.Close()                                 // detach and release
//
// Verdicts: a Rebound request (UDP to a steered port, payload of at least
// 12 bytes starting with magic 0xB5 and version 1, over IPv4 without
// fragmentation or IPv6 with UDP as next header, with at most one VLAN tag)
// is redirected to the socket of its rx queue, or passed to the kernel when
// the queue has none. With an allow-list, requests from other sources are
// dropped. Everything else is passed to the kernel untouched; each outcome
// has a counter (Counter).
//
// Gotchas:
//   - Attach never replaces a program that is already there unless asked,
//     and even then only one attached through netlink: a bpf_link held by
//     another process is released only by that process.
//   - Regenerate with `make generate` (clang, llvm and libbpf-dev from
//     Debian); CI regenerates and fails when the result differs.
//   - The program re-checks nothing for userspace: userspace validates every
//     frame again (codec), as it may come from a program that is not ours.
package bpf
