package client

import (
	"context"
	"errors"
	"fmt"
	"net"
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

// Argument errors: a call rejected before anything was sent returns an
// *ArgError that matches one of these with errors.Is.
var (
	// ErrKeyLength: a key is empty or longer than 250 bytes. It is
	// rebound.ErrKeyLength, so either matches.
	ErrKeyLength = rebound.ErrKeyLength
	// ErrNegativeTTL: a Set with a TTL below zero (0 means no expiry).
	ErrNegativeTTL = errors.New("ttl is negative")
	// ErrValueTooLarge: the request cannot be carried by the transport: a
	// Rebound payload over 65535 bytes, or over one datagram on a UDP
	// client that may not fall back to TCP (Options.NoTCPRetry); a
	// memcached value over MemcacheOptions.MaxValue.
	ErrValueTooLarge = errors.New("value too large for the transport")
)

// ArgError is a call rejected before anything was sent, for an argument
// that no server would accept. errors.Is(err, ErrKeyLength) and the like
// tell the reasons apart.
type ArgError struct {
	Op     string // "get", "set", "del", "delete"
	Detail string // e.g. "key of 251 bytes"
	Err    error  // ErrKeyLength, ErrNegativeTTL, ErrValueTooLarge or ErrMemcacheKey
}

func (e *ArgError) Error() string {
	return "client: " + e.Op + ": " + e.Detail + ": " + e.Err.Error()
}

func (e *ArgError) Unwrap() error { return e.Err }

func checkKey(op string, key []byte) error {
	if len(key) == 0 || len(key) > rebound.MaxKeyLen {
		return &ArgError{Op: op, Detail: fmt.Sprintf("key of %d bytes", len(key)), Err: ErrKeyLength}
	}
	return nil
}

func checkTTL(op string, ttl time.Duration) error {
	if ttl < 0 {
		return &ArgError{Op: op, Detail: "ttl " + ttl.String(), Err: ErrNegativeTTL}
	}
	return nil
}

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
	// Attempts is how many times the request was sent: more than 1 after
	// a UDP resend, or a resend on a TCP connection dialled afresh. The
	// reply may answer any of them.
	Attempts int
}

// Client talks to one Rebound server. It is safe for concurrent use.
type Client struct {
	addr string
	opts Options
	seq  atomic.Uint32
	ipv6 bool // the server's address, for the size of a datagram

	udp *udpConn // nil with TCP
	rr  atomic.Uint32

	mu     sync.Mutex
	tcp    []*tcpConn // Options.Conns slots; nil or dead ones are dialled on use
	closed bool
}

// Dial returns a client for the server at addr (host:port). A TCP client
// dials its connections now; a UDP client makes its socket now and its
// TCP connections (for TRUNCATED replies and large SETs) on first use.
func Dial(ctx context.Context, addr string, opts Options) (*Client, error) {
	opts.defaults()
	c := &Client{addr: addr, opts: opts, tcp: make([]*tcpConn, opts.Conns)}
	c.seq.Store(uint32(time.Now().UnixNano()))
	if opts.TCP {
		for i := range c.tcp {
			if _, _, err := c.conn(ctx, i); err != nil {
				c.Close()
				return nil, err
			}
		}
		return c, nil
	}
	u, err := dialUDP(ctx, addr)
	if err != nil {
		return nil, err
	}
	c.udp = u
	if ua, ok := u.c.RemoteAddr().(*net.UDPAddr); ok && ua.IP.To4() == nil {
		c.ipv6 = true
	}
	return c, nil
}

// conn returns the live TCP connection of slot i, dialling it first when
// it was never made or has broken (the server closed it as idle, say);
// fresh says it was dialled now.
func (c *Client) conn(ctx context.Context, i int) (tc *tcpConn, fresh bool, err error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, false, ErrClosed
	}
	if tc = c.tcp[i]; tc != nil && !tc.dead() {
		c.mu.Unlock()
		return tc, false, nil
	}
	c.mu.Unlock()
	// Dial without the lock: calls on the other slots go on meanwhile.
	nc, err := dialTCP(ctx, c.addr)
	if err != nil {
		return nil, false, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		nc.close(ErrClosed)
		return nil, false, ErrClosed
	}
	if tc = c.tcp[i]; tc != nil && !tc.dead() { // another call dialled it first
		nc.close(errors.New("rebound: spare connection"))
		return tc, false, nil
	}
	c.tcp[i] = nc
	return nc, true, nil
}

// Close releases the client's sockets; calls in flight fail with ErrClosed.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	conns := c.tcp
	c.mu.Unlock()
	if c.udp != nil {
		c.udp.close()
	}
	for _, t := range conns {
		if t != nil {
			t.close(ErrClosed)
		}
	}
	return nil
}

func (c *Client) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// Ping sends data and returns what the server echoed.
func (c *Client) Ping(ctx context.Context, data []byte) ([]byte, error) {
	r, err := c.Do(ctx, rebound.OpPing, data)
	if err != nil {
		return nil, err
	}
	return r.Payload, statusErr(r.Status)
}

// Get returns the value stored under key, or ErrNotFound. A key that is
// empty or over 250 bytes is an *ArgError matching ErrKeyLength.
func (c *Client) Get(ctx context.Context, key []byte) ([]byte, error) {
	if err := checkKey("get", key); err != nil {
		return nil, err
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

// Set stores value under key; ttl 0 keeps it until evicted. It returns
// an *ArgError, sending nothing, for a bad key (ErrKeyLength), a negative
// ttl (ErrNegativeTTL), or a request the transport cannot carry
// (ErrValueTooLarge): over 65535 bytes of payload, or over one datagram
// of Options.MTU on a UDP client with NoTCPRetry. On a UDP client
// without NoTCPRetry a SET too large for one datagram goes over TCP.
//
// Over UDP a SET whose reply did not come is sent again (see the package
// documentation): storing the same value twice leaves the same value, but
// a resend that arrives after another client's SET of the key overwrites
// it, and the TTL counts from the last copy that arrived.
func (c *Client) Set(ctx context.Context, key, value []byte, ttl time.Duration) error {
	if err := checkKey("set", key); err != nil {
		return err
	}
	if err := checkTTL("set", ttl); err != nil {
		return err
	}
	n := 5 + len(key) + len(value)
	if n > rebound.MaxPayload {
		return &ArgError{Op: "set", Detail: fmt.Sprintf("payload of %d bytes over %d", n, rebound.MaxPayload), Err: ErrValueTooLarge}
	}
	overUDP := c.udp != nil && rebound.HeaderLen+n > codec.UDPPayloadMax(c.opts.MTU, c.ipv6)
	if overUDP && c.opts.NoTCPRetry {
		return &ArgError{Op: "set", Detail: fmt.Sprintf("request of %d bytes over one datagram of MTU %d, and TCP is off",
			rebound.HeaderLen+n, c.opts.MTU), Err: ErrValueTooLarge}
	}
	p := make([]byte, n)
	p[0] = byte(len(key))
	secs := uint32(min(ttl/time.Second, 1<<32-1))
	if ttl > 0 && secs == 0 {
		secs = 1
	}
	p[1], p[2], p[3], p[4] = byte(secs>>24), byte(secs>>16), byte(secs>>8), byte(secs)
	copy(p[5+copy(p[5:], key):], value)
	var r Reply
	var err error
	if overUDP {
		if c.isClosed() {
			return ErrClosed
		}
		r, err = c.doTCP(ctx, rebound.OpSet, p, "tcp")
	} else {
		r, err = c.Do(ctx, rebound.OpSet, p)
	}
	if err != nil {
		return err
	}
	return statusErr(r.Status)
}

// Del removes key, or returns ErrNotFound.
//
// A DEL whose reply was lost is sent again (over UDP after the timeout,
// over TCP when the connection broke under it), and then NOT_FOUND is
// ambiguous: the first copy may have deleted the key and lost its reply,
// or the key was never there. Del reports success for it: nil means the
// key is not stored now (whether or not this call removed it), while
// ErrNotFound means the first and only copy found nothing to delete.
// Do returns the raw reply and its Attempts instead.
func (c *Client) Del(ctx context.Context, key []byte) error {
	if err := checkKey("del", key); err != nil {
		return err
	}
	p := append([]byte{byte(len(key))}, key...)
	r, err := c.Do(ctx, rebound.OpDel, p)
	if err != nil {
		return err
	}
	if r.Status == rebound.StatusNotFound && r.Attempts > 1 {
		return nil
	}
	return statusErr(r.Status)
}

// retryable reports whether a request with op may be sent again when its
// reply is lost: PING and GET change nothing, SET stores the same value
// again, and DEL's second NOT_FOUND is handled by Del. Other ops are sent
// once.
func retryable(op rebound.Op) bool {
	switch op {
	case rebound.OpPing, rebound.OpGet, rebound.OpSet, rebound.OpDel:
		return true
	}
	return false
}

// Do sends one request with any op and raw payload and returns the reply,
// whatever its status (a non-OK status is not an error here). Over UDP a
// TRUNCATED reply is retried as Options say. Lost requests are resent
// only for PING, GET, SET and DEL; Reply.Attempts says how often it was
// sent.
func (c *Client) Do(ctx context.Context, op rebound.Op, payload []byte) (Reply, error) {
	if c.isClosed() {
		return Reply{}, ErrClosed
	}
	if len(payload) > rebound.MaxPayload {
		return Reply{}, rebound.ErrTooLong
	}
	if c.udp == nil {
		return c.doTCP(ctx, op, payload, "tcp")
	}
	retries := c.opts.Retries
	if !retryable(op) {
		retries = 0
	}
	r, err := c.udp.do(ctx, op, c.seq.Add(1), payload, c.opts, retries)
	if err != nil || r.Flags&rebound.FlagTruncated == 0 {
		return r, err
	}
	if c.opts.PadGets && op == rebound.OpGet {
		// Rule 6: padding raises the reply size the server may send.
		padded := make([]byte, max(len(payload), codec.UDPPayloadMax(c.opts.MTU, false)-rebound.HeaderLen-20))
		copy(padded, payload)
		r2, err := c.udp.do(ctx, op, c.seq.Add(1), padded, c.opts, retries)
		if err == nil && r2.Flags&rebound.FlagTruncated == 0 {
			r2.Via = "udp-padded"
			return r2, nil
		}
	}
	if c.opts.NoTCPRetry {
		return r, ErrTruncated
	}
	r2, err := c.doTCP(ctx, op, payload, "tcp-after-truncated")
	if err != nil && !errors.Is(err, ErrTimeout) && !errors.Is(err, ErrClosed) && ctx.Err() == nil {
		return r, fmt.Errorf("rebound: reply truncated over UDP, and TCP fallback failed: %w", err)
	}
	return r2, err
}

// doTCP sends the request on one of the pool's connections, dialled if it
// was never made or has broken. When a connection that was already open
// breaks under the call before its reply (the server closed it as idle
// as the request went out, say), a retryable request is sent once more
// on a connection dialled afresh: at most one dial per call.
func (c *Client) doTCP(ctx context.Context, op rebound.Op, payload []byte, via string) (Reply, error) {
	slot := int(c.rr.Add(1)) % len(c.tcp)
	for attempt := 1; ; attempt++ {
		tc, fresh, err := c.conn(ctx, slot)
		if err != nil {
			return Reply{}, err
		}
		r, err := tc.do(ctx, op, c.seq.Add(1), payload, c.opts.Timeout)
		r.Via, r.Attempts = via, attempt
		if err == nil || fresh || attempt > 1 || !retryable(op) || !tc.dead() ||
			errors.Is(err, ErrClosed) || errors.Is(err, ErrTimeout) || ctx.Err() != nil {
			return r, err
		}
	}
}
