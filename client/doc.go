// Package client is the Go client of the Rebound protocol that 'rebound
// call' is built on. It needs only the standard library and the codec, and
// builds on every platform Go does (CI builds it for darwin, windows and
// freebsd too); the load generator behind 'rebound bench' is package
// loadgen.
//
// A Client talks to one server over UDP (the default) or TCP. It is safe
// for concurrent use: replies are matched to calls by sequence number over
// UDP, and by order over TCP, where requests are pipelined on a pool of
// connections. A TRUNCATED reply (the value is too large for the server's
// amplification bound) is asked again over TCP, or first as a padded GET
// with Options.PadGets; a SET too large for one datagram goes over TCP.
// Non-OK statuses are errors that match with errors.Is (ErrNotFound,
// ErrTooLarge, ...); Do returns any reply as it is.
//
// # Retries
//
// Over UDP a request with no reply after Options.Timeout is sent again
// (same sequence number, so a late reply to any copy counts), up to
// Options.Retries times with doubling backoff, for these ops only:
//
//   - PING and GET: they change nothing.
//   - SET: storing the same value again leaves the same value. A copy that
//     arrives late may overwrite another client's newer SET of the key,
//     and the TTL counts from the last copy.
//   - DEL: a resend may find NOT_FOUND because the first copy deleted the
//     key and its reply was lost. Client.Del reports success then (nil:
//     the key is not stored now); ErrNotFound only comes from a DEL sent
//     once. Do returns the raw reply with Reply.Attempts.
//
// Any other op passed to Do is sent once. Over TCP nothing is resent after
// a timeout (the stream stays in order; the reply is dropped when it
// comes).
//
// # Reconnecting
//
// A TCP connection that broke (the server closes connections idle for 60
// s by default, or restarted) is dialled again by the next call that needs
// it; a dial error is that call's error. When a connection that was open
// breaks under a call before its reply came, the call is sent once more on
// a connection dialled afresh (PING, GET, SET and DEL, with DEL's
// NOT_FOUND rule above): at most one dial per call. The same holds for
// Memcache's TCP connection, for every call including Raw.
//
// # Arguments
//
// Calls check their arguments before sending anything and return an
// *ArgError matching a sentinel with errors.Is: ErrKeyLength (a key empty
// or over 250 bytes), ErrNegativeTTL, ErrValueTooLarge (a payload over
// 65535 bytes; over one datagram on a UDP client with NoTCPRetry; a
// memcached value over MemcacheOptions.MaxValue) and, for Memcache,
// ErrMemcacheKey (also a key holding a space or a control character).
//
// # Several servers
//
// Ring picks a server per key with ketama consistent hashing, as
// twemproxy ("distribution: ketama", "hash: md5") and libmemcached's
// weighted ketama do with every server of weight 1, so a client can send
// each key where a twemproxy in front of the same servers would.
// DialCluster and DialMemcacheCluster route Get, Set and Del(ete) by it:
// a UDP get goes straight to the server that holds the key.
//
// # Memcache
//
// Memcache is a small client of memcached's text protocol, for memcached
// itself or 'rebound serve' on its memcache port: Get (over TCP, or UDP
// with the 8-byte frame header, a reply put together from its datagrams,
// resent after MemcacheOptions.Timeout), Set, Delete, and Raw, which sends
// any lines and returns the reply bytes.
//
// Gotchas:
//   - Dial makes its sockets in the caller's network namespace; a UDP
//     client that falls back to TCP dials lazily, from whatever thread
//     runs the call, and so does every redial.
package client
