package userspace

import (
	"errors"
	"io"
	"net"
	"time"

	"github.com/rebound-net/rebound/codec"
	"github.com/rebound-net/rebound/handler"
)

// One TCP connection loop serves every protocol (Rebound's, memcached's,
// protocols of your own): each is a handler.Stream, so deadlines, buffer
// growth and the output budget are written once, here.
//
// Per-connection memory: a connection starts with small buffers, grows its
// read buffer to hold one request (for memcached, a storage command's line
// and data block: at most the largest item plus its line), and goes back
// to small buffers once the large request is served, so 10,000 idle
// connections cost 10,000 small buffers. Its replies are written as they
// pass streamOutFlush (the output budget): a client that does not read
// blocks the write, and the connection reads nothing more until it drains
// (or until the write timeout closes it).
const (
	streamStartBuf = 4 << 10
	// streamLineSlack is the room for a command line on top of the
	// largest request a protocol declares (memcached: its data block).
	streamLineSlack = 64 << 10
	// streamOutFlush is the output budget: replies gathered past it are
	// written before more input is served.
	streamOutFlush = 256 << 10
	// streamWindow is the most input handed to a Stream at once, which
	// bounds the replies of one call for ordinary commands.
	streamWindow = 16 << 10
)

// mcOutOfMemory is memcached's reply to a request it cannot buffer.
const mcOutOfMemory = "SERVER_ERROR out of memory reading request\r\n"

// flusher is a Stream that can hand replies to the transport as it
// gathers them, so that one call's replies never have to be held whole
// (memcached's multi-get of large values, a batch of large Rebound GETs).
type flusher interface {
	setFlush(write func([]byte) error, at int)
}

// selfCounting is a Stream that counts its own messages in the worker's
// Rx and Tx (Rebound's: per message); others are counted per read and
// write.
type selfCounting interface {
	countsItself()
}

// serveConn serves one TCP connection: every complete request in the read
// buffer is served (pipelining), in windows, and the replies go out as
// they pass the output budget, and at the latest once the read is served.
func (s *tcpServer) serveConn(c net.Conn) {
	conn := s.newStream()
	_, counted := conn.(selfCounting)
	write := func(b []byte) error { return s.write(c, b, !counted) }
	if f, ok := conn.(flusher); ok {
		f.setFlush(write, streamOutFlush)
	}
	maxIn := s.maxRequest + streamLineSlack
	in := make([]byte, streamStartBuf)
	out := make([]byte, 0, streamStartBuf)
	start, end := 0, 0
	var partialSince time.Time // when the unfinished request at in[start:end] began
	for {
		if end == len(in) && start > 0 {
			end = copy(in, in[start:end])
			start = 0
		}
		_ = c.SetReadDeadline(s.readDeadline(partialSince))
		n, err := c.Read(in[end:])
		end += n
		if n > 0 {
			if !counted {
				s.stats.Rx.Add(1)
			}
			var need int
			var closeIt bool
			// Hand the protocol a window of the input at a time, so that
			// a long pipeline is answered (and written) in pieces.
			win := streamWindow
			for start < end && !closeIt {
				w := min(end, start+win)
				var k int
				k, out, need, closeIt = conn.ServeStream(in[start:w], out)
				start += k
				if len(out) >= streamOutFlush || closeIt {
					if write(out) != nil {
						return
					}
					out = out[:0]
				}
				if need > 0 {
					if w < end {
						// More is buffered than the window showed: widen
						// it, at least doubling, so a long line is parsed
						// a few times, not once per byte.
						win = max(need, 2*(w-start))
						continue
					}
					break
				}
				win = streamWindow
				if k == 0 {
					break
				}
			}
			if len(out) > 0 {
				if write(out) != nil {
					return
				}
			}
			out = out[:0]
			if cap(out) > streamOutFlush {
				out = make([]byte, 0, streamStartBuf) // a large reply is done: give its memory back
			}
			if closeIt {
				return
			}
			if start == end {
				start, end = 0, 0
				partialSince = time.Time{}
				if len(in) > streamStartBuf && n < streamStartBuf/2 {
					in = make([]byte, streamStartBuf) // light traffic again: back to small
				}
			} else if partialSince.IsZero() {
				partialSince = time.Now()
			}
			if start == 0 && end == len(in) && need <= len(in) {
				// A full buffer the protocol neither consumed nor asked to
				// grow: it can never make progress.
				s.stats.Drops[codec.ReasonBadPayload].Add(1)
				return
			}
			if need > 0 && need > len(in)-start && need <= len(in) {
				// It fits once the consumed requests are gone: no
				// larger buffer (and no garbage) for it.
				end = copy(in, in[start:end])
				start = 0
			} else if need > 0 && need > len(in)-start {
				if need > maxIn {
					if s.tooLarge != "" {
						_ = write([]byte(s.tooLarge))
					}
					return
				}
				// Grow to hold the request, doubling, within the bound.
				size := len(in)
				for size < need {
					size *= 2
				}
				size = min(size, maxIn)
				grown := make([]byte, size)
				end = copy(grown, in[start:end])
				start, in = 0, grown
			}
		}
		if err != nil {
			if err != io.EOF && !errors.Is(err, net.ErrClosed) {
				s.stats.RxErrors.Add(1)
			}
			return
		}
	}
}

// write writes replies, bounded in time: a client that does not read is
// cut off. count: count the write in the worker's Tx (a Stream that counts
// itself does so per message).
func (s *tcpServer) write(c net.Conn, b []byte, count bool) error {
	if len(b) == 0 {
		return nil
	}
	if s.writeTimeout > 0 {
		_ = c.SetWriteDeadline(time.Now().Add(s.writeTimeout))
	}
	_, err := c.Write(b)
	if err != nil {
		s.stats.TxErrors.Add(1)
		return err
	}
	if count {
		s.stats.Tx.Add(1)
	}
	return nil
}

// newStreamTCP returns a TCP server of a stream protocol's connections on
// ln, each request at most maxRequest bytes, with a connection limit of its
// own (a Server gives all its listeners its one limit).
func newStreamTCP(ln net.Listener, newStream func() handler.Stream, maxRequest int, stats *WorkerStats, cfg *Config) *tcpServer {
	return &tcpServer{ln: ln, newStream: newStream, maxRequest: maxRequest, stats: stats, limit: &connLimit{max: int64(cfg.MaxConns)},
		idleTimeout: cfg.IdleTimeout, writeTimeout: cfg.WriteTimeout, reqTimeout: cfg.RequestTimeout, conns: map[net.Conn]struct{}{},
		tls: cfg.TLS, handshakeTimeout: cfg.RequestTimeout}
}
