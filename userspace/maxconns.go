package userspace

import (
	"net"
	"sync/atomic"
	"time"
)

// connLimit is Config.MaxConns for the whole process, as memcached's -c
// is: every TCP listener (Rebound's, memcached's, protocols of your own,
// and listeners SetListen retired while their connections drain) takes
// from one count.
type connLimit struct {
	max  int64
	open atomic.Int64
}

// acquire takes a connection from the count; false: none is left.
func (l *connLimit) acquire() bool {
	if l.open.Add(1) > l.max {
		l.open.Add(-1)
		return false
	}
	return true
}

// release gives one back.
func (l *connLimit) release() { l.open.Add(-1) }

// tooManyConns is what memcached 1.6 writes to a connection it accepts past
// its -c limit (maxconns_fast, on by default), before it closes it.
var tooManyConns = []byte("ERROR Too many open connections\r\n")

// refuseBusy closes c, a connection accepted past Config.MaxConns, the way
// the listener's protocol says (tcpServer.busy): memcached's port first
// writes memcached's error line; the Rebound port (whose replies answer a
// request's op and sequence, and none has come) and protocols of your own
// (whose framing the engine does not know) close without a word. The write goes into the
// empty send buffer of a new socket, so it does not wait; its deadline
// only guards the accept loop against the unexpected.
func (s *tcpServer) refuseBusy(c net.Conn) {
	if s.busy != nil {
		_ = c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
		_, _ = c.Write(s.busy)
	}
	c.Close()
}
