package userspace

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rebound-net/rebound/codec"
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
)

// tcpServer accepts connections and serves each on its own goroutine with
// the one connection loop (serveConn) and the protocol's Stream.
type tcpServer struct {
	ln           net.Listener
	stats        *WorkerStats
	limit        *connLimit // shared by every listener of the server
	idleTimeout  time.Duration
	writeTimeout time.Duration
	reqTimeout   time.Duration
	// newStream returns the protocol's state for a new connection;
	// maxRequest bounds one request, in bytes.
	newStream  func() handler.Stream
	maxRequest int
	// tooLarge is written before closing a connection whose request
	// passes maxRequest (memcached's out-of-memory line); empty: nothing.
	tooLarge string
	// busy is written before closing a connection past the limit
	// (memcached's "Too many open connections"); nil: nothing.
	busy []byte
	gate *gate // sources served; nil: all
	// tls, when set, wraps every connection in TLS; a handshake not done
	// within handshakeTimeout closes it.
	tls              *TLS
	handshakeTimeout time.Duration

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
		if s.closed || !s.limit.acquire() {
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
			// conns holds the plain connection: close and refuse shut it
			// without waiting on TLS's close_notify.
			served := c
			if s.tls != nil {
				served = s.handshake(c)
			}
			if served != nil {
				s.serveConn(served)
			} else {
				served = c
			}
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
			served.Close()
			s.limit.release()
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
