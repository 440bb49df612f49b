// Package loadgen is the load generator behind 'rebound bench': it drives a
// server with many requests in flight and records every reply's latency in
// an HDR histogram.
//
// Bench runs a load test: closed loop (a window of requests in flight per
// flow) or open loop (a rate, with latency counted from each request's
// intended send time, so a stalled server shows in the tail instead of
// slowing the load), over UDP (sendmmsg/recvmmsg batches), TCP (pipelined)
// or its own AF_XDP socket (XDPLoad, root only).
//
// It lives apart from package client so that the client stays a small,
// portable library: this package is Linux only and pulls in the BPF loader,
// the AF_XDP socket and golang.org/x/net batch I/O.
//
// Gotchas:
//   - The AF_XDP load generator replaces the XDP program on its interface
//     for the run (the lab's pass-through one included).
//   - Preload (SET every key before a run with GETs) goes over TCP.
package loadgen
