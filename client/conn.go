package client

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/rebound-net/rebound/codec/rebound"
)

// call is one request waiting for its reply.
type call struct {
	op rebound.Op
	ch chan Reply // buffered 1: the reader never blocks on it
}

// udpConn is a connected UDP socket with a reader goroutine that matches
// replies to calls by sequence number.
type udpConn struct {
	c       *net.UDPConn
	mu      sync.Mutex
	pending map[uint32]*call
	done    chan struct{}
}

func dialUDP(ctx context.Context, addr string) (*udpConn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "udp", addr)
	if err != nil {
		return nil, fmt.Errorf("rebound: %w", err)
	}
	u := &udpConn{c: c.(*net.UDPConn), pending: map[uint32]*call{}, done: make(chan struct{})}
	go u.read()
	return u, nil
}

func (u *udpConn) read() {
	defer close(u.done)
	buf := make([]byte, 64<<10)
	for {
		n, err := u.c.Read(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue // e.g. ECONNREFUSED from an ICMP error: the call times out
		}
		m, err := rebound.DecodeReply(buf[:n])
		if err != nil {
			continue // not a reply of ours
		}
		u.mu.Lock()
		cl := u.pending[m.Seq]
		if cl != nil && cl.op == m.Op {
			delete(u.pending, m.Seq)
		} else {
			cl = nil
		}
		u.mu.Unlock()
		if cl != nil {
			cl.ch <- Reply{Header: m.Header, Payload: append([]byte(nil), m.Payload...), Via: "udp"}
		}
	}
}

func (u *udpConn) close() { u.c.Close(); <-u.done }

// do sends the request and waits for its reply, sending it again up to
// retries times (with the same sequence, so a late reply to any copy
// counts) after each Options.Timeout without one.
func (u *udpConn) do(ctx context.Context, op rebound.Op, seq uint32, payload []byte, o Options, retries int) (Reply, error) {
	msg := make([]byte, rebound.HeaderLen+len(payload))
	rebound.PutHeader(msg, rebound.Header{Op: op, Seq: seq, Len: uint16(len(payload))})
	copy(msg[rebound.HeaderLen:], payload)
	cl := &call{op: op, ch: make(chan Reply, 1)}
	u.mu.Lock()
	u.pending[seq] = cl
	u.mu.Unlock()
	defer func() {
		u.mu.Lock()
		delete(u.pending, seq)
		u.mu.Unlock()
	}()
	start := time.Now()
	timer := time.NewTimer(o.Timeout)
	defer timer.Stop()
	backoff := o.Backoff
	for attempt := 0; ; attempt++ {
		if _, err := u.c.Write(msg); err != nil && !isTransient(err) {
			return Reply{}, fmt.Errorf("rebound: send: %w", err)
		}
		select {
		case r := <-cl.ch:
			r.RTT, r.Attempts = time.Since(start), attempt+1
			return r, nil
		case <-timer.C:
		case <-ctx.Done():
			return Reply{}, ctx.Err()
		case <-u.done:
			return Reply{}, ErrClosed
		}
		if attempt >= retries {
			return Reply{}, ErrTimeout
		}
		// Back off before the resend; a late reply still counts.
		select {
		case r := <-cl.ch:
			r.RTT, r.Attempts = time.Since(start), attempt+1
			return r, nil
		case <-time.After(backoff):
		case <-ctx.Done():
			return Reply{}, ctx.Err()
		}
		backoff *= 2
		timer.Reset(o.Timeout)
	}
}

func isTransient(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() || errors.Is(err, errConnRefused)
}

// tcpConn is one TCP connection: requests are pipelined, replies come in
// order and are matched to the oldest pending call.
type tcpConn struct {
	c       net.Conn
	wmu     sync.Mutex // one writer at a time
	mu      sync.Mutex
	pending []*call
	err     error // set once the connection is dead
	done    chan struct{}
}

func dialTCP(ctx context.Context, addr string) (*tcpConn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("rebound: %w", err)
	}
	t := &tcpConn{c: c, done: make(chan struct{})}
	go t.read()
	return t, nil
}

func (t *tcpConn) read() {
	defer close(t.done)
	r := bufio.NewReaderSize(t.c, 64<<10)
	var hdr [rebound.HeaderLen]byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			t.close(fmt.Errorf("rebound: tcp read: %w", err))
			return
		}
		h, ok := rebound.DecodeHeader(hdr[:])
		if !ok || h.Flags&rebound.FlagResponse == 0 {
			t.close(errors.New("rebound: tcp stream out of sync: not a reply"))
			return
		}
		p := make([]byte, h.Len)
		if _, err := io.ReadFull(r, p); err != nil {
			t.close(fmt.Errorf("rebound: tcp read: %w", err))
			return
		}
		t.mu.Lock()
		if len(t.pending) == 0 {
			t.mu.Unlock()
			t.close(errors.New("rebound: tcp reply with no request pending"))
			return
		}
		cl := t.pending[0]
		t.pending[0] = nil
		t.pending = t.pending[1:]
		t.mu.Unlock()
		cl.ch <- Reply{Header: h, Payload: p, Via: "tcp"}
	}
}

// dead reports whether the connection has failed or was closed.
func (t *tcpConn) dead() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.err != nil
}

// close fails every pending call with err and closes the connection.
func (t *tcpConn) close(err error) {
	t.mu.Lock()
	if t.err == nil {
		t.err = err
	}
	pending := t.pending
	t.pending = nil
	t.mu.Unlock()
	t.c.Close()
	for _, cl := range pending {
		close(cl.ch)
	}
}

func (t *tcpConn) do(ctx context.Context, op rebound.Op, seq uint32, payload []byte, timeout time.Duration) (Reply, error) {
	msg := make([]byte, rebound.HeaderLen+len(payload))
	rebound.PutHeader(msg, rebound.Header{Op: op, Seq: seq, Len: uint16(len(payload))})
	copy(msg[rebound.HeaderLen:], payload)
	cl := &call{op: op, ch: make(chan Reply, 1)}
	start := time.Now()
	t.wmu.Lock()
	t.mu.Lock()
	if t.err != nil {
		err := t.err
		t.mu.Unlock()
		t.wmu.Unlock()
		return Reply{}, err
	}
	t.pending = append(t.pending, cl)
	t.mu.Unlock()
	_ = t.c.SetWriteDeadline(time.Now().Add(timeout))
	_, err := t.c.Write(msg)
	t.wmu.Unlock()
	if err != nil {
		t.close(fmt.Errorf("rebound: tcp write: %w", err))
		return Reply{}, err
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case r, ok := <-cl.ch:
		if !ok {
			t.mu.Lock()
			err := t.err
			t.mu.Unlock()
			return Reply{}, err
		}
		if r.Seq != seq || r.Op != op {
			t.close(errors.New("rebound: tcp reply out of order"))
			return Reply{}, fmt.Errorf("rebound: reply sequence %d, want %d", r.Seq, seq)
		}
		r.RTT = time.Since(start)
		return r, nil
	case <-timer.C:
		// The reply may still come; the reader hands it to the buffered
		// channel and nobody reads it. The stream stays in order.
		return Reply{}, ErrTimeout
	case <-ctx.Done():
		return Reply{}, ctx.Err()
	}
}
