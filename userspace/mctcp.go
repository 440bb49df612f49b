package userspace

import "github.com/rebound-net/rebound/userspace/mcserve"

// mcStream is memcached's executor as a handler.Stream, served by the one
// TCP connection loop (serveConn).
type mcStream struct{ *mcserve.Conn }

func (m mcStream) ServeStream(in, out []byte) (int, []byte, int, bool) { return m.Serve(in, out) }

func (m mcStream) setFlush(write func([]byte) error, at int) { m.Flush, m.FlushAt = write, at }
