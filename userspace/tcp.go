package userspace

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rebound-net/rebound/codec"
	"github.com/rebound-net/rebound/codec/rebound"
	"github.com/rebound-net/rebound/handler"
)

// TCP defaults.
const (
	DefaultMaxConns    = 1024
	DefaultIdleTimeout = 60 * time.Second
	// DefaultWriteTimeout bounds how long a reply may wait for a client that
	// does not read: past it the connection is closed, so a stuck client
	// holds at most its socket buffers and this connection's out buffer.
	DefaultWriteTimeout = 5 * time.Second
	// DefaultRequestTimeout bounds how long one request may take to
	// arrive once its first byte has: a client trickling a byte at a time
	// cannot hold a connection (and its buffer) by staying just inside
	// the idle timeout.
	DefaultRequestTimeout = 10 * time.Second

	// A connection starts with small buffers and grows them, doubling, up
	// to these bounds while its traffic needs them; an idle one costs its
	// two small buffers and a goroutine.
	tcpStartBuf = 4 << 10
	tcpInBuf    = 256 << 10 // read buffer bound: several maximal messages
	tcpOutBuf   = 256 << 10 // reply buffer bound of one batch
	tcpBatch    = 64        // messages served per Handler call
	tcpMaxWant  = rebound.HeaderLen + rebound.MaxPayload
)

// tcpServer accepts connections and serves each on its own goroutine with
// a reusable read buffer: every complete message in the buffer is one batch,
// and the replies go out in one writev (net.Buffers).
type tcpServer struct {
	ln           net.Listener
	h            Handler
	stats        *WorkerStats
	maxConns     int
	idleTimeout  time.Duration
	writeTimeout time.Duration
	reqTimeout   time.Duration
	// newStream, when set, makes this a server of a stream protocol
	// (memcached, or one of your own: serveStream) instead of a Rebound one.
	newStream  func() handler.Stream
	maxRequest int
	gate       *gate // sources served; nil: all

	total  atomic.Uint64 // connections accepted since the start
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

func (s *tcpServer) serve() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(5 * time.Millisecond) // e.g. EMFILE: do not spin
			continue
		}
		if s.gate != nil {
			if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
				if why := s.gate.admit(a.AddrPort().Addr()); why != codec.ReasonNone {
					s.stats.Drops[why].Add(1)
					c.Close()
					continue
				}
			}
		}
		s.mu.Lock()
		if s.closed || len(s.conns) >= s.maxConns {
			s.mu.Unlock()
			s.stats.Drops[codec.ReasonBusy].Add(1)
			s.refuseBusy(c) // memcached's error line, then close
			continue
		}
		s.conns[c] = struct{}{}
		s.total.Add(1)
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			if s.newStream != nil {
				s.serveStream(c)
			} else {
				s.handle(c)
			}
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
			c.Close()
		}()
	}
}

// refuse closes the open connections whose source g no longer admits.
func (s *tcpServer) refuse(g *gate) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
			if why := g.admit(a.AddrPort().Addr()); why != codec.ReasonNone {
				s.stats.Drops[why].Add(1)
				c.Close() // its goroutine sees the error and removes it
			}
		}
	}
}

// counts returns the connections open now and accepted since the start.
func (s *tcpServer) counts() (curr, total uint64) {
	s.mu.Lock()
	curr = uint64(len(s.conns))
	s.mu.Unlock()
	return curr, s.total.Load()
}

// close stops accepting, closes every connection and waits for them.
func (s *tcpServer) close() {
	s.ln.Close()
	s.mu.Lock()
	s.closed = true
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// tcpConn is the per-connection state, reused for the whole connection.
type tcpConn struct {
	in   []byte
	out  []byte
	msgs []Message
	offs []int // per message: offset of its reply in out, or -1 (dropped)
	bufs net.Buffers
	iov  [][]byte // backing array of bufs, reused
	big  []byte   // room for one maximal reply, made when first needed
}

func (s *tcpServer) handle(c net.Conn) {
	tc := &tcpConn{in: make([]byte, tcpStartBuf), out: make([]byte, tcpStartBuf),
		msgs: make([]Message, 0, tcpBatch), offs: make([]int, 0, tcpBatch), iov: make([][]byte, 0, tcpBatch)}
	start, end := 0, 0
	var partialSince time.Time // when the unfinished request at in[start:end] began
	for {
		if end == len(tc.in) {
			if start > 0 {
				// Compact: move the partial message to the front.
				end = copy(tc.in, tc.in[start:end])
				start = 0
			} else {
				tc.in = grow(tc.in, end, min(2*len(tc.in), tcpInBuf))
			}
		}
		_ = c.SetReadDeadline(s.readDeadline(partialSince))
		n, err := c.Read(tc.in[end:])
		end += n
		if n > 0 {
			var fatal bool
			start, fatal = s.serveBuffered(c, tc, start, end)
			if fatal {
				return
			}
			if start == end {
				start, end = 0, 0
				partialSince = time.Time{}
				if n < tcpStartBuf/2 && len(tc.in)+len(tc.out) > 2*tcpStartBuf {
					// Light traffic again: back to small buffers.
					tc.in, tc.out = make([]byte, tcpStartBuf), make([]byte, tcpStartBuf)
				}
			} else if partialSince.IsZero() {
				partialSince = time.Now()
			}
			if _, _, need, _ := rebound.ParseStream(tc.in[start:end]); need > len(tc.in)-start {
				tc.in = grow(tc.in[:end], end, min(start+need, start+tcpMaxWant))
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

// readDeadline is when the next read must have data: the idle timeout
// from now, or sooner, the request timeout from when the unfinished
// request began (partialSince; zero when none is).
func (s *tcpServer) readDeadline(partialSince time.Time) time.Time {
	var d time.Time
	if s.idleTimeout > 0 {
		d = time.Now().Add(s.idleTimeout)
	}
	if !partialSince.IsZero() && s.reqTimeout > 0 {
		if r := partialSince.Add(s.reqTimeout); d.IsZero() || r.Before(d) {
			d = r
		}
	}
	return d
}

// grow returns a buffer of size n (never smaller than b) holding b[:used].
func grow(b []byte, used, n int) []byte {
	if n <= len(b) {
		return b[:cap(b)]
	}
	g := make([]byte, n)
	copy(g, b[:used])
	return g
}

// serveBuffered serves every complete message in in[start:end], in batches,
// and returns where the unread rest begins. fatal means the connection must
// close (a reply could not be written, or the stream lost its framing).
func (s *tcpServer) serveBuffered(c net.Conn, tc *tcpConn, start, end int) (int, bool) {
	for {
		tc.msgs, tc.offs, tc.iov = tc.msgs[:0], tc.offs[:0], tc.iov[:0]
		closeAfter := false
		// Collect a batch; Out windows are assigned after, when the count
		// is known.
		for len(tc.msgs) < tcpBatch && start < end && !closeAfter {
			req, n, _, fatal := rebound.ParseStream(tc.in[start:end])
			if n == 0 {
				break
			}
			start += n
			switch req.Check {
			case rebound.Drop:
				s.stats.Drops[req.Reason].Add(1)
				continue
			case rebound.Reject:
				s.stats.Rejects[req.Reason].Add(1)
				tc.msgs = append(tc.msgs, Message{Op: req.Op, Seq: req.Seq, Status: req.Status})
				tc.offs = append(tc.offs, -1)
				closeAfter = fatal
				continue
			}
			tc.msgs = append(tc.msgs, Message{Op: req.Op, Seq: req.Seq, Payload: req.Payload})
			tc.offs = append(tc.offs, 0)
		}
		if len(tc.msgs) == 0 {
			return start, closeAfter
		}
		s.stats.Rx.Add(uint64(len(tc.msgs)))
		if err := s.serveBatch(c, tc); err != nil {
			return start, true
		}
		s.stats.Tx.Add(uint64(len(tc.msgs)))
		clear(tc.msgs)
		if closeAfter {
			return start, true
		}
	}
}

// serveBatch gives each valid message an even share of the out buffer as
// its reply room, serves them with one Handler call and writes the replies
// in order with writev. A reply that did not fit its share (a large GET or
// PING in a full batch; both only read, so serving again is safe) is served
// again alone with a buffer of its own, after the replies before it are
// written.
func (s *tcpServer) serveBatch(c net.Conn, tc *tcpConn) error {
	valid := 0
	for i := range tc.msgs {
		if tc.offs[i] == 0 {
			valid++
		}
	}
	// Error replies (bare headers) go after the valid ones' shares.
	share := len(tc.out) - (len(tc.msgs)-valid)*rebound.HeaderLen
	if valid > 0 {
		share /= valid
	}
	off := 0
	for i := range tc.msgs {
		if tc.offs[i] != 0 {
			continue
		}
		tc.offs[i] = off
		room := min(share-rebound.HeaderLen, rebound.MaxPayload)
		tc.msgs[i].Out = tc.out[off+rebound.HeaderLen : off+rebound.HeaderLen : off+rebound.HeaderLen+room]
		off += share
	}
	if valid > 0 {
		t := time.Now()
		s.h.Serve(tc.msgs)
		s.stats.Service.Observe(time.Since(t))
		s.stats.batch(valid)
	}
	errOff := off
	regrow := false // a reply did not fit its share: a larger out buffer next time
	for i := range tc.msgs {
		m := &tc.msgs[i]
		if tc.offs[i] < 0 {
			b := tc.out[errOff : errOff+rebound.HeaderLen]
			rebound.PutErrorReply(b, rebound.Header{Op: m.Op, Seq: m.Seq}, m.Status)
			errOff += rebound.HeaderLen
			tc.iov = append(tc.iov, b)
			continue
		}
		if m.Truncated && m.Status == rebound.StatusOK {
			regrow = true
			if err := s.flush(c, tc); err != nil {
				return err
			}
			if tc.big == nil {
				tc.big = make([]byte, rebound.HeaderLen+rebound.MaxPayload)
			}
			one := tc.msgs[i : i+1 : i+1]
			one[0].Truncated, one[0].Out = false, tc.big[rebound.HeaderLen:rebound.HeaderLen]
			s.h.Serve(one)
			tc.iov = append(tc.iov, tc.big[:putReply(tc.big, m)])
			continue
		}
		b := tc.out[tc.offs[i]:]
		tc.iov = append(tc.iov, b[:putReply(b, m)])
	}
	err := s.flush(c, tc)
	if regrow && len(tc.out) < tcpOutBuf {
		tc.out = make([]byte, min(2*len(tc.out), tcpOutBuf)) // written: safe to replace
	}
	return err
}

// flush writes the lined-up replies with one writev, bounded in time.
func (s *tcpServer) flush(c net.Conn, tc *tcpConn) error {
	if len(tc.iov) == 0 {
		return nil
	}
	if s.writeTimeout > 0 {
		_ = c.SetWriteDeadline(time.Now().Add(s.writeTimeout))
	}
	tc.bufs = tc.iov // WriteTo consumes bufs, not the backing array
	_, err := tc.bufs.WriteTo(c)
	clear(tc.iov)
	tc.iov = tc.iov[:0]
	if err != nil {
		s.stats.TxErrors.Add(1)
	}
	return err
}
