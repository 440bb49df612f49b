package loadgen

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/rebound-net/rebound/internal/udpbatch"
)

// The sockets of open-loop flows: non-blocking, and not in Go's netpoller,
// which would wake a runtime thread for every reply that comes in (the
// flow's pacer polls the socket itself; see Pacing in pace.go).

// sockaddr is the kernel's address of a resolved UDP or TCP target.
func sockaddr(network, target string) (unix.Sockaddr, int, error) {
	var ap netip.AddrPort
	if network == "tcp" {
		a, err := net.ResolveTCPAddr("tcp", target)
		if err != nil {
			return nil, 0, err
		}
		ap = a.AddrPort()
	} else {
		a, err := net.ResolveUDPAddr("udp", target)
		if err != nil {
			return nil, 0, err
		}
		ap = a.AddrPort()
	}
	addr := ap.Addr().Unmap()
	if addr.Is4() {
		return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: addr.As4()}, unix.AF_INET, nil
	}
	sa := &unix.SockaddrInet6{Port: int(ap.Port()), Addr: addr.As16()}
	if z := addr.Zone(); z != "" {
		ifi, err := net.InterfaceByName(z)
		if err != nil {
			return nil, 0, err
		}
		sa.ZoneId = uint32(ifi.Index)
	}
	return sa, unix.AF_INET6, nil
}

// openSocket makes a non-blocking socket with the load generator's big
// buffers (forced past rmem_max as root, as dialFlow does).
func openSocket(family, typ int) (int, error) {
	fd, err := unix.Socket(family, typ|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	for _, o := range [][2]int{{unix.SO_RCVBUFFORCE, unix.SO_RCVBUF}, {unix.SO_SNDBUFFORCE, unix.SO_SNDBUF}} {
		if unix.SetsockoptInt(fd, unix.SOL_SOCKET, o[0], 8<<20) != nil {
			_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, o[1], 8<<20)
		}
	}
	return fd, nil
}

// waitFD polls fd for events until deadline (zero: no deadline), in
// slices, so that closed can end it; it returns os.ErrDeadlineExceeded
// when the deadline passes first.
func waitFD(fd int, events int16, deadline time.Time, closed *bool) error {
	for {
		if *closed {
			return net.ErrClosed
		}
		d := 100 * time.Millisecond
		if !deadline.IsZero() {
			if d = min(d, time.Until(deadline)); d <= 0 {
				return os.ErrDeadlineExceeded
			}
		}
		ts := unix.NsecToTimespec(int64(d))
		n, err := unix.Ppoll([]unix.PollFd{{Fd: int32(fd), Events: events}}, &ts, nil)
		if err == nil && n > 0 {
			return nil
		}
		if err != nil && err != unix.EINTR {
			return err
		}
	}
}

// udpSock is an open-loop flow's UDP socket, connected to the target. The
// kernel stamps every datagram's arrival (SO_TIMESTAMPNS): a reply may wait
// in the socket until the flow next wakes and still count its latency to
// when it came, so the flow wakes only to send.
type udpSock struct {
	fd int

	// receive: recvmmsg into bufs, each slot's control message (its
	// timestamp) in ctl[i*ctlSpace:]
	rh   []unix.Mmsghdr
	riov []unix.Iovec
	bufs [][]byte
	ctl  []byte

	// send: queued datagrams, one sendmmsg
	wh   []unix.Mmsghdr
	wiov []unix.Iovec
	nq   int
}

// ctlSpace holds one timestamp control message.
var ctlSpace = unix.CmsgSpace(int(unsafe.Sizeof(unix.Timespec{})))

func openUDPSock(target string, batch, size int) (*udpSock, error) {
	sa, family, err := sockaddr("udp", target)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	fd, err := openSocket(family, unix.SOCK_DGRAM)
	if err != nil {
		return nil, fmt.Errorf("bench: socket: %w", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bench: SO_TIMESTAMPNS: %w", err)
	}
	if err := unix.Connect(fd, sa); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bench: connect udp %s: %w", target, err)
	}
	u := &udpSock{fd: fd, rh: make([]unix.Mmsghdr, batch), riov: make([]unix.Iovec, batch), bufs: make([][]byte, batch),
		ctl: make([]byte, batch*ctlSpace), wh: make([]unix.Mmsghdr, batch), wiov: make([]unix.Iovec, batch)}
	slab := make([]byte, batch*size)
	for i := range u.rh {
		u.bufs[i] = slab[i*size : (i+1)*size : (i+1)*size]
		u.riov[i].Base = &u.bufs[i][0]
		u.riov[i].SetLen(size)
		u.rh[i].Hdr.Iov = &u.riov[i]
		u.rh[i].Hdr.Iovlen = 1
		u.rh[i].Hdr.Control = &u.ctl[i*ctlSpace]
		u.wh[i].Hdr.Iov = &u.wiov[i]
		u.wh[i].Hdr.Iovlen = 1
	}
	return u, nil
}

func (u *udpSock) close() { unix.Close(u.fd) }

// queue adds a datagram to send; b must stay as it is until flush.
func (u *udpSock) queue(b []byte) {
	u.wiov[u.nq].Base = &b[0]
	u.wiov[u.nq].SetLen(len(b))
	u.nq++
}

// flush sends the queued datagrams; ones the kernel refuses are dropped
// (they show up as timeouts, as udpbatch's do).
func (u *udpSock) flush() {
	for sent := 0; sent < u.nq; {
		// unsafe: wh and what it points to are the socket's own.
		r, _, e := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(u.fd), uintptr(unsafe.Pointer(&u.wh[sent])), uintptr(u.nq-sent),
			unix.MSG_DONTWAIT, 0, 0)
		switch {
		case e == 0:
			sent += int(r)
		case e == unix.EINTR || udpbatch.PendingError(e):
		default:
			sent++ // skip the one refused
		}
	}
	u.nq = 0
}

// read takes what has come, up to a batch: it returns how many datagrams
// (data(i), stamp(i)), 0 when nothing is there.
func (u *udpSock) read() int {
	for i := range u.rh {
		u.rh[i].Hdr.SetControllen(ctlSpace)
		u.rh[i].Hdr.Flags = 0
	}
	for {
		r, _, e := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(u.fd), uintptr(unsafe.Pointer(&u.rh[0])), uintptr(len(u.rh)),
			unix.MSG_DONTWAIT, 0, 0)
		switch {
		case e == 0:
			return int(r)
		case e == unix.EINTR || udpbatch.PendingError(e):
			// again: an ICMP error is reported once, data follows
		default:
			return 0
		}
	}
}

func (u *udpSock) data(i int) []byte { return u.bufs[i][:u.rh[i].Len] }

// stamp is when datagram i came in (Unix ns), 0 if the kernel did not say.
func (u *udpSock) stamp(i int) int64 {
	ctl := u.ctl[i*ctlSpace : i*ctlSpace+min(int(u.rh[i].Hdr.Controllen), ctlSpace)]
	if len(ctl) < unix.CmsgLen(int(unsafe.Sizeof(unix.Timespec{}))) {
		return 0
	}
	// unsafe: ctl holds a whole control message of the kernel's layout.
	h := (*unix.Cmsghdr)(unsafe.Pointer(&ctl[0]))
	if h.Level != unix.SOL_SOCKET || h.Type != unix.SO_TIMESTAMPNS {
		return 0
	}
	ts := (*unix.Timespec)(unsafe.Pointer(&ctl[unix.CmsgLen(0)]))
	return ts.Nano()
}

// fdConn is an open-loop flow's TCP connection: a net.Conn on a
// non-blocking socket of its own. A read or write that would block waits
// in ppoll until its deadline; a read with an expired deadline still takes
// what is there. It is used by one goroutine at a time.
type fdConn struct {
	fd            int
	local, remote net.Addr
	rd, wd        time.Time
	closed        bool
}

// dialFD connects to a TCP target, within ctx and 5 s.
func dialFD(ctx context.Context, target string) (*fdConn, error) {
	sa, family, err := sockaddr("tcp", target)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	fd, err := openSocket(family, unix.SOCK_STREAM)
	if err != nil {
		return nil, fmt.Errorf("bench: socket: %w", err)
	}
	c := &fdConn{fd: fd}
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1) // as Go's TCP conns
	deadline := time.Now().Add(5 * time.Second)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	err = unix.Connect(fd, sa)
	if err == unix.EINPROGRESS {
		if err = waitFD(fd, unix.POLLOUT, deadline, &c.closed); err == nil {
			var soErr int
			if soErr, err = unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR); err == nil && soErr != 0 {
				err = unix.Errno(soErr)
			}
		}
	}
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bench: dial tcp %s: %w", target, err)
	}
	if ls, err := unix.Getsockname(fd); err == nil {
		c.local = tcpAddr(ls)
	}
	c.remote = tcpAddr(sa)
	return c, nil
}

func tcpAddr(sa unix.Sockaddr) net.Addr {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return &net.TCPAddr{IP: a.Addr[:], Port: a.Port}
	case *unix.SockaddrInet6:
		return &net.TCPAddr{IP: a.Addr[:], Port: a.Port}
	}
	return &net.TCPAddr{}
}

func (c *fdConn) Read(b []byte) (int, error) {
	for {
		if c.closed {
			return 0, net.ErrClosed
		}
		n, err := unix.Read(c.fd, b)
		switch {
		case err == nil && n == 0 && len(b) > 0:
			return 0, io.EOF
		case err == nil:
			return n, nil
		case err == unix.EINTR:
			continue
		case err != unix.EAGAIN:
			return 0, &net.OpError{Op: "read", Net: "tcp", Source: c.local, Addr: c.remote, Err: os.NewSyscallError("read", err)}
		}
		if err := waitFD(c.fd, unix.POLLIN, c.rd, &c.closed); err != nil {
			return 0, err
		}
	}
}

func (c *fdConn) Write(b []byte) (int, error) {
	done := 0
	for done < len(b) {
		if c.closed {
			return done, net.ErrClosed
		}
		n, err := unix.Write(c.fd, b[done:])
		switch {
		case err == nil:
			done += n
			continue
		case err == unix.EINTR:
			continue
		case err != unix.EAGAIN:
			return done, &net.OpError{Op: "write", Net: "tcp", Source: c.local, Addr: c.remote, Err: os.NewSyscallError("write", err)}
		}
		if err := waitFD(c.fd, unix.POLLOUT, c.wd, &c.closed); err != nil {
			return done, err
		}
	}
	return done, nil
}

func (c *fdConn) Close() error {
	if c.closed {
		return net.ErrClosed
	}
	c.closed = true
	return unix.Close(c.fd)
}

func (c *fdConn) LocalAddr() net.Addr                { return c.local }
func (c *fdConn) RemoteAddr() net.Addr               { return c.remote }
func (c *fdConn) SetDeadline(t time.Time) error      { c.rd, c.wd = t, t; return nil }
func (c *fdConn) SetReadDeadline(t time.Time) error  { c.rd = t; return nil }
func (c *fdConn) SetWriteDeadline(t time.Time) error { c.wd = t; return nil }

// handshakeFD wraps c in TLS and shakes hands within 5 s; it closes c on
// failure.
func handshakeFD(c *fdConn, conf *tls.Config) (net.Conn, error) {
	tc := tls.Client(c, conf)
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if err := tc.Handshake(); err != nil {
		c.Close()
		return nil, fmt.Errorf("bench: TLS handshake with %s: %w", c.remote, err)
	}
	_ = c.SetDeadline(time.Time{})
	return smallRecords{tc}, nil
}

// runPacedUDP is flow.run in open loop over UDP: it wakes when requests
// are due (see Pacing in pace.go), sends them, and takes the replies that
// came meanwhile, each with the time the kernel stamped on it.
func (f *flow) runPacedUDP(ctx context.Context) {
	u := f.usock
	msgBytes := f.msgBytes()
	bufs := make([][]byte, udpBatch)
	for i := range bufs {
		bufs[i] = make([]byte, msgBytes)
	}
	start := time.Now()
	perFlow := f.cfg.Rate / float64(f.cfg.Flows)
	sched := newSchedule(start, perFlow)
	pc := newPacer(u.fd, f.cfg.Flows < runtime.GOMAXPROCS(0))
	defer pc.close()
	lastScan := start
	sending := true
	for {
		now := time.Now()
		if f.over(ctx, now, &sending) {
			return
		}
		if sending {
			nq := 0
			for quota := f.quota(now, start, perFlow); quota > 0 && nq < len(bufs); quota-- {
				n := f.encode(bufs[nq], f.take(now, start, perFlow))
				u.queue(bufs[nq][:n]) // connected: to the target
				nq++
			}
			if nq > 0 {
				u.flush() // a refused datagram shows up as a timeout
			}
		}
		f.readStamped()
		if now.Sub(lastScan) > 20*time.Millisecond {
			f.expire(now)
			lastScan = now
		}
		// Until the next request is due; with none (the window full, or
		// sending over), until a reply comes.
		var due time.Time
		if sending && len(f.free) > 0 {
			due = sched.nextWake(f.sent.Load(), f.cfg.Pace)
		}
		pc.wait(due, due.IsZero())
	}
}

// readStamped completes the replies waiting in the flow's UDP socket, each
// at the time it came in.
func (f *flow) readStamped() {
	u := f.usock
	for {
		n := u.read()
		for i := range n {
			f.replyAt = u.stamp(i)
			f.complete(u.data(i))
		}
		f.replyAt = 0
		if n < len(u.rh) {
			return
		}
	}
}
