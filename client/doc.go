// Package client is the Go client of the Rebound protocol and the load
// generator that 'rebound call' and 'rebound bench' are built on.
//
// A Client talks to one server over UDP (the default) or TCP. It is safe
// for concurrent use: replies are matched to calls by sequence number over
// UDP, and by order over TCP, where requests are pipelined on a pool of
// connections. Over UDP a lost request is sent again after Options.Timeout,
// up to Options.Retries times with doubling backoff; a TRUNCATED reply (the
// value is too large for the server's amplification bound) is asked again
// over TCP, or first as a padded GET with Options.PadGets. Non-OK statuses
// are errors that match with errors.Is (ErrNotFound, ErrTooLarge, ...); Do
// returns any reply as it is.
//
// Bench runs a load test: closed loop (a window of requests in flight per
// flow) or open loop (a rate, with latency counted from each request's
// intended send time, so a stalled server shows in the tail instead of
// slowing the load), over UDP, TCP or its own AF_XDP socket (XDPLoad, root
// only), into an HDR histogram.
//
// Gotchas:
//   - Dial makes its sockets in the caller's network namespace; a UDP
//     client that falls back to TCP dials lazily, from whatever thread
//     runs the call.
//   - The bench's AF_XDP load generator replaces the XDP program on its
//     interface for the run (the lab's pass-through one included).
package client
