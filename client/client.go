package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rebound-net/rebound/codec"
	"github.com/rebound-net/rebound/codec/rebound"
)

// Errors. Status errors match with errors.Is: errors.Is(err, ErrNotFound).
var (
	ErrNotFound   = &StatusError{Status: rebound.StatusNotFound}
	ErrBadRequest = &StatusError{Status: rebound.StatusBadRequest}
	ErrUnknownOp  = &StatusError{Status: rebound.StatusUnknownOp}
	ErrTooLarge   = &StatusError{Status: rebound.StatusTooLarge}
	ErrBusy       = &StatusError{Status: rebound.StatusBusy}
	// ErrTimeout: no reply within the timeout, after every retry.
	ErrTimeout = errors.New("rebound: no reply (timeout)")
	// ErrTruncated: a UDP reply was TRUNCATED and TCP fallback is off.
	ErrTruncated = errors.New("rebound: reply truncated (value too large for UDP; use TCP or padded GETs)")
	// ErrClosed: the client was closed.
	ErrClosed = errors.New("rebound: client closed")
)

// StatusError is a reply with a status other than OK.
type StatusError struct{ Status rebound.Status }

func (e *StatusError) Error() string { return "rebound: " + e.Status.String() }

// Is matches any StatusError with the same status.
func (e *StatusError) Is(target error) bool {
	t, ok := target.(*StatusError)
	return ok && t.Status == e.Status
}

func statusErr(s rebound.Status) error {
	switch s {
	case rebound.StatusOK:
		return nil
	case rebound.StatusNotFound:
		return ErrNotFound
	case rebound.StatusBadRequest:
		return ErrBadRequest
	case rebound.StatusUnknownOp:
		return ErrUnknownOp
	case rebound.StatusTooLarge:
		return ErrTooLarge
	case rebound.StatusBusy:
		return ErrBusy
	}
	return &StatusError{Status: s}
}

// Options configure a Client. The zero value: UDP, 500 ms per attempt, 3
// retries with doubling backoff, TCP fallback on TRUNCATED, one TCP
// connection.
type Options struct {
	TCP        bool          // use TCP instead of UDP
	Timeout    time.Duration // per attempt (default 500ms)
	Retries    int           // UDP resends after a timeout (default 3; -1 for none)
	Backoff    time.Duration // first wait before a resend, doubled each time (default 20ms)
	Conns      int           // TCP connections in the pool (default 1)
	PadGets    bool          // on TRUNCATED, first retry the GET padded to the MTU over UDP
	NoTCPRetry bool          // on TRUNCATED, return ErrTruncated instead of asking over TCP
	MTU        int           // for padded GETs (default 1500)
}

func (o *Options) defaults() {
	if o.Timeout <= 0 {
		o.Timeout = 500 * time.Millisecond
	}
	if o.Retries == 0 {
		o.Retries = 3
	}
	if o.Retries < 0 {
		o.Retries = 0
	}
	if o.Backoff <= 0 {
		o.Backoff = 20 * time.Millisecond
	}
	if o.Conns <= 0 {
		o.Conns = 1
	}
	if o.MTU <= 0 {
		o.MTU = 1500
	}
}

// Reply is a decoded reply with its round-trip time.
type Reply struct {
	rebound.Header
	Payload []byte
	RTT     time.Duration
	// Via says how the reply came: "udp", "tcp", "udp-padded" or
	// "tcp-after-truncated".
	Via string
}

// Client talks to one Rebound server. It is safe for concurrent use.
type Client struct {
	addr string
	opts Options
	seq  atomic.Uint32

	udp *udpConn   // nil with TCP
	tcp []*tcpConn // made on first use for UDP clients (TRUNCATED fallback)
	rr  atomic.Uint32
	mu  sync.Mutex

	closed atomic.Bool
}

// Dial returns a client for the server at addr (host:port).
func Dial(ctx context.Context, addr string, opts Options) (*Client, error) {
	opts.defaults()
	c := &Client{addr: addr, opts: opts}
	c.seq.Store(uint32(time.Now().UnixNano()))
	if opts.TCP {
		if err := c.dialTCP(ctx); err != nil {
			return nil, err
		}
		return c, nil
	}
	u, err := dialUDP(ctx, addr)
	if err != nil {
		return nil, err
	}
	c.udp = u
	return c, nil
}

func (c *Client) dialTCP(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tcp != nil {
		return nil
	}
	conns := make([]*tcpConn, 0, c.opts.Conns)
	for i := 0; i < c.opts.Conns; i++ {
		tc, err := dialTCP(ctx, c.addr)
		if err != nil {
			for _, t := range conns {
				t.close(err)
			}
			return err
		}
		conns = append(conns, tc)
	}
	c.tcp = conns
	return nil
}

// Close releases the client's sockets; calls in flight fail with ErrClosed.
func (c *Client) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	if c.udp != nil {
		c.udp.close()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, t := range c.tcp {
		t.close(ErrClosed)
	}
	return nil
}

// Ping sends data and returns what the server echoed.
func (c *Client) Ping(ctx context.Context, data []byte) ([]byte, error) {
	r, err := c.Do(ctx, rebound.OpPing, data)
	if err != nil {
		return nil, err
	}
	return r.Payload, statusErr(r.Status)
}

// Get returns the value stored under key, or ErrNotFound.
func (c *Client) Get(ctx context.Context, key []byte) ([]byte, error) {
	if len(key) == 0 || len(key) > rebound.MaxKeyLen {
		return nil, rebound.ErrKeyLength
	}
	p := make([]byte, 1+len(key))
	p[0] = byte(len(key))
	copy(p[1:], key)
	r, err := c.Do(ctx, rebound.OpGet, p)
	if err != nil {
		return nil, err
	}
	return r.Payload, statusErr(r.Status)
}

// Set stores value under key; ttl 0 keeps it until evicted.
func (c *Client) Set(ctx context.Context, key, value []byte, ttl time.Duration) error {
	if len(key) == 0 || len(key) > rebound.MaxKeyLen {
		return rebound.ErrKeyLength
	}
	p := make([]byte, 5+len(key)+len(value))
	p[0] = byte(len(key))
	secs := uint32(min(ttl/time.Second, 1<<32-1))
	if ttl > 0 && secs == 0 {
		secs = 1
	}
	p[1], p[2], p[3], p[4] = byte(secs>>24), byte(secs>>16), byte(secs>>8), byte(secs)
	copy(p[5+copy(p[5:], key):], value)
	r, err := c.Do(ctx, rebound.OpSet, p)
	if err != nil {
		return err
	}
	return statusErr(r.Status)
}

// Del removes key, or returns ErrNotFound.
func (c *Client) Del(ctx context.Context, key []byte) error {
	if len(key) == 0 || len(key) > rebound.MaxKeyLen {
		return rebound.ErrKeyLength
	}
	p := append([]byte{byte(len(key))}, key...)
	r, err := c.Do(ctx, rebound.OpDel, p)
	if err != nil {
		return err
	}
	return statusErr(r.Status)
}

// Do sends one request with any op and raw payload and returns the reply,
// whatever its status (a non-OK status is not an error here). Over UDP a
// TRUNCATED reply is retried as Options say.
func (c *Client) Do(ctx context.Context, op rebound.Op, payload []byte) (Reply, error) {
	if c.closed.Load() {
		return Reply{}, ErrClosed
	}
	if len(payload) > rebound.MaxPayload {
		return Reply{}, rebound.ErrTooLong
	}
	seq := c.seq.Add(1)
	if c.udp == nil {
		return c.doTCP(ctx, op, seq, payload, "tcp")
	}
	r, err := c.udp.do(ctx, op, seq, payload, c.opts)
	if err != nil || r.Flags&rebound.FlagTruncated == 0 {
		return r, err
	}
	if c.opts.PadGets && op == rebound.OpGet {
		// Rule 6: padding raises the reply size the server may send.
		padded := make([]byte, max(len(payload), codec.UDPPayloadMax(c.opts.MTU, false)-rebound.HeaderLen-20))
		copy(padded, payload)
		r2, err := c.udp.do(ctx, op, c.seq.Add(1), padded, c.opts)
		if err == nil && r2.Flags&rebound.FlagTruncated == 0 {
			r2.Via = "udp-padded"
			return r2, nil
		}
	}
	if c.opts.NoTCPRetry {
		return r, ErrTruncated
	}
	if err := c.dialTCP(ctx); err != nil {
		return r, fmt.Errorf("rebound: reply truncated over UDP, and TCP fallback failed: %w", err)
	}
	return c.doTCP(ctx, op, c.seq.Add(1), payload, "tcp-after-truncated")
}

func (c *Client) doTCP(ctx context.Context, op rebound.Op, seq uint32, payload []byte, via string) (Reply, error) {
	c.mu.Lock()
	conns := c.tcp
	c.mu.Unlock()
	if len(conns) == 0 {
		return Reply{}, ErrClosed
	}
	tc := conns[int(c.rr.Add(1))%len(conns)]
	r, err := tc.do(ctx, op, seq, payload, c.opts.Timeout)
	r.Via = via
	return r, err
}
