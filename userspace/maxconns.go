package userspace

import (
	"net"
	"time"
)

// tooManyConns is what memcached 1.6 writes to a connection it accepts past
// its -c limit (maxconns_fast, on by default), before it closes it.
var tooManyConns = []byte("ERROR Too many open connections\r\n")

// refuseBusy closes c, a connection accepted past Config.MaxConns, the way
// the listener's protocol says: memcached's port first writes memcached's
// error line; the Rebound port (whose replies answer a request's op and
// sequence, and none has come) and protocols of your own (whose framing the
// engine does not know) close without a word. The write goes into the
// empty send buffer of a new socket, so it does not wait; its deadline
// only guards the accept loop against the unexpected.
func (s *tcpServer) refuseBusy(c net.Conn) {
	if s.stats != nil && s.stats.Transport == "memcache-tcp" {
		_ = c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
		_, _ = c.Write(tooManyConns)
	}
	c.Close()
}
