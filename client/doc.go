// Package client is the Go client of the Rebound protocol that 'rebound
// call' is built on. It needs only the standard library and the codec, and
// builds on every platform Go does; the load generator behind 'rebound
// bench' is package loadgen.
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
// Memcache is a small client of memcached's text protocol, for memcached
// itself or 'rebound serve' on its memcache port: Get (over TCP, or UDP
// with the 8-byte frame header, a reply put together from its datagrams),
// Set, Delete, and Raw, which sends any lines and returns the reply bytes.
//
// Gotchas:
//   - Dial makes its sockets in the caller's network namespace; a UDP
//     client that falls back to TCP dials lazily, from whatever thread
//     runs the call.
package client
