package userspace

import (
	"errors"
	"io"
	"net"
	"time"

	"github.com/rebound-net/rebound/codec"
	"github.com/rebound-net/rebound/handler"
	"github.com/rebound-net/rebound/userspace/mcserve"
)

// Per-connection memory of a stream protocol's TCP transport (memcached,
// or one of your own): a connection starts with small buffers, grows its
// read buffer to hold one request (for memcached, a storage command's line
// and data block: at most the largest item plus its line), and goes back
// to small buffers once the large request is served, so 10,000 idle
// connections cost 10,000 small buffers.
const (
	mcConnBuf = 4 << 10
	// mcLineSlack is the room for a command line on top of its data block.
	mcLineSlack = 64 << 10
	// mcOutFlush bounds the replies gathered before they are written.
	mcOutFlush = 256 << 10
	// mcWindow is the most input handed to the executor at once, which
	// bounds the replies of one call for ordinary commands.
	mcWindow = 16 << 10
)

// mcOutOfMemory is memcached's reply to a request it cannot buffer.
const mcOutOfMemory = "SERVER_ERROR out of memory reading request\r\n"

// flusher is a Stream that can hand large replies to the transport as it
// gathers them (memcached's multi-get of large values).
type flusher interface {
	setFlush(write func([]byte) error, at int)
}

// mcStream is memcached's executor as a handler.Stream.
type mcStream struct{ *mcserve.Conn }

func (m mcStream) ServeStream(in, out []byte) (int, []byte, int, bool) { return m.Serve(in, out) }

func (m mcStream) setFlush(write func([]byte) error, at int) { m.Flush, m.FlushAt = write, at }

// serveStream serves one TCP connection of a stream protocol: every
// complete request in the read buffer is served (pipelining) and the
// replies of one read go out in one write.
func (s *tcpServer) serveStream(c net.Conn) {
	conn := s.newStream()
	if f, ok := conn.(flusher); ok {
		f.setFlush(func(b []byte) error { return s.writeMC(c, b) }, mcOutFlush)
	}
	maxIn := s.maxRequest + mcLineSlack
	in := make([]byte, mcConnBuf)
	out := make([]byte, 0, mcConnBuf)
	start, end := 0, 0
	var partialSince time.Time // when the unfinished command at in[start:end] began
	for {
		if end == len(in) && start > 0 {
			end = copy(in, in[start:end])
			start = 0
		}
		_ = c.SetReadDeadline(s.readDeadline(partialSince))
		n, err := c.Read(in[end:])
		end += n
		if n > 0 {
			s.stats.Rx.Add(1)
			var need int
			var closeIt bool
			// Hand the executor a window of the input at a time, so that
			// a long pipeline is answered (and written) in pieces.
			win := mcWindow
			for start < end && !closeIt {
				w := min(end, start+win)
				var k int
				k, out, need, closeIt = conn.ServeStream(in[start:w], out)
				start += k
				if len(out) >= mcOutFlush || closeIt {
					if s.writeMC(c, out) != nil {
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
				win = mcWindow
				if k == 0 {
					break
				}
			}
			if len(out) > 0 {
				if s.writeMC(c, out) != nil {
					return
				}
			}
			out = out[:0]
			if cap(out) > mcOutFlush {
				out = make([]byte, 0, mcConnBuf) // a large reply is done: give its memory back
			}
			if closeIt {
				return
			}
			if start == end {
				start, end = 0, 0
				partialSince = time.Time{}
				if len(in) > mcConnBuf && n < mcConnBuf/2 {
					in = make([]byte, mcConnBuf) // light traffic again: back to small
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
			if need > 0 && need > len(in)-start {
				if need > maxIn {
					_ = s.writeMC(c, []byte(mcOutOfMemory))
					return
				}
				// Grow to hold the command, doubling, within the bound.
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

// writeMC writes replies, bounded in time: a client that does not read
// is cut off.
func (s *tcpServer) writeMC(c net.Conn, b []byte) error {
	if s.writeTimeout > 0 {
		_ = c.SetWriteDeadline(time.Now().Add(s.writeTimeout))
	}
	_, err := c.Write(b)
	if err != nil {
		s.stats.TxErrors.Add(1)
		return err
	}
	s.stats.Tx.Add(1)
	return nil
}

// newStreamTCP returns a TCP server of a stream protocol's connections on
// ln, each request at most maxRequest bytes.
func newStreamTCP(ln net.Listener, newStream func() handler.Stream, maxRequest int, stats *WorkerStats, cfg *Config) *tcpServer {
	return &tcpServer{ln: ln, newStream: newStream, maxRequest: maxRequest, stats: stats, maxConns: cfg.MaxConns,
		idleTimeout: cfg.IdleTimeout, writeTimeout: cfg.WriteTimeout, reqTimeout: cfg.RequestTimeout, conns: map[net.Conn]struct{}{}}
}
