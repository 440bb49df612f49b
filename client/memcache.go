package client

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/rebound-net/rebound/codec/memcache"
)

// Memcache errors.
var (
	// ErrCacheMiss: a get found nothing, or a delete had nothing to delete.
	ErrCacheMiss = errors.New("memcache: cache miss")
	// ErrNotStored: a set was not stored (NOT_STORED).
	ErrNotStored = errors.New("memcache: not stored")
	// ErrMemcacheKey: a key is empty, longer than 250 bytes, or holds a
	// space or a control character.
	ErrMemcacheKey = errors.New("memcache: a key is 1 to 250 bytes without spaces or control characters")
)

// MemcacheError is an ERROR, CLIENT_ERROR or SERVER_ERROR reply, or a
// reply that makes no sense for the request.
type MemcacheError struct{ Reply string }

func (e *MemcacheError) Error() string { return "memcache: server replied " + strconv.Quote(e.Reply) }

// MemcacheOptions configure a Memcache client. The zero value: TCP, 500 ms
// per attempt, 2 UDP resends, values up to 1 MiB.
type MemcacheOptions struct {
	UDP     bool          // get over memcached's UDP transport (set, delete and Raw still use TCP)
	Timeout time.Duration // per attempt (default 500ms)
	Retries int           // UDP resends after a timeout (default 2; -1 for none)
	// MaxValue is the largest value Set sends (default 1 MiB, memcached's
	// default item size; -1 for no bound): a larger one is an *ArgError
	// matching ErrValueTooLarge, and nothing is sent.
	MaxValue int
}

// Memcache is a small client of memcached's text protocol (memcached
// itself, or 'rebound serve' on its memcache port), one request at a time.
// It is safe for concurrent use; requests are serialized.
type Memcache struct {
	addr string
	opts MemcacheOptions

	mu  sync.Mutex
	tcp net.Conn // dialled on first use, and again after it broke
	br  *bufio.Reader
	rx  int64 // bytes read from tcp since the last request went out
	udp net.Conn
	id  uint16
}

// DialMemcache returns a client for the memcached server at addr
// (host:port). With opts.UDP the UDP socket is made now, the TCP
// connection on first use.
func DialMemcache(ctx context.Context, addr string, opts MemcacheOptions) (*Memcache, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = 500 * time.Millisecond
	}
	if opts.Retries == 0 {
		opts.Retries = 2
	}
	opts.Retries = max(opts.Retries, 0)
	if opts.MaxValue == 0 {
		opts.MaxValue = 1 << 20
	}
	m := &Memcache{addr: addr, opts: opts, id: uint16(time.Now().UnixNano())}
	var d net.Dialer
	var err error
	if opts.UDP {
		m.udp, err = d.DialContext(ctx, "udp", addr)
		if err != nil {
			return nil, fmt.Errorf("memcache: %w", err)
		}
		return m, nil
	}
	if _, err := m.dialTCP(ctx); err != nil {
		return nil, err
	}
	return m, nil
}

// dialTCP dials the TCP connection unless it is open; fresh says it was
// dialled now.
func (m *Memcache) dialTCP(ctx context.Context) (fresh bool, err error) {
	if m.tcp != nil {
		return false, nil
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", m.addr)
	if err != nil {
		return false, fmt.Errorf("memcache: %w", err)
	}
	m.tcp, m.br = c, bufio.NewReader(countReader{c, &m.rx})
	return true, nil
}

// countReader counts the bytes read through it.
type countReader struct {
	r io.Reader
	n *int64
}

func (c countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	*c.n += int64(n)
	return n, err
}

// Close closes the client's sockets.
func (m *Memcache) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var errs []error
	if m.tcp != nil {
		errs = append(errs, m.tcp.Close())
		m.tcp = nil
	}
	if m.udp != nil {
		errs = append(errs, m.udp.Close())
		m.udp = nil
	}
	return errors.Join(errs...)
}

// checkMemcacheKey returns an *ArgError matching ErrMemcacheKey for a key
// memcached's text protocol cannot carry.
func checkMemcacheKey(op string, key []byte) error {
	if len(key) == 0 || len(key) > memcache.MaxKeyLen {
		return &ArgError{Op: op, Detail: fmt.Sprintf("key of %d bytes", len(key)), Err: ErrMemcacheKey}
	}
	for i, c := range key {
		if c <= ' ' || c == 0x7f {
			return &ArgError{Op: op, Detail: fmt.Sprintf("key byte %d is %q", i, c), Err: ErrMemcacheKey}
		}
	}
	return nil
}

// Item is a value as a get returns it.
type Item struct {
	Value []byte
	Flags uint32
}

// Get returns the item stored under key, or ErrCacheMiss. A key memcached
// cannot take is an *ArgError matching ErrMemcacheKey.
func (m *Memcache) Get(ctx context.Context, key []byte) (Item, error) {
	if err := checkMemcacheKey("get", key); err != nil {
		return Item{}, err
	}
	req := append(append([]byte("get "), key...), "\r\n"...)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.udp != nil {
		reply, err := m.roundTripUDP(ctx, req)
		if err != nil {
			return Item{}, err
		}
		return m.readGet(bufio.NewReader(bytes.NewReader(reply)), key)
	}
	var it Item
	_, err := m.exchange(ctx, req, true, func(r *bufio.Reader) (err error) {
		it, err = m.readGet(r, key)
		return err
	})
	return it, err
}

// readGet reads "VALUE <key> <flags> <n>\r\n<data>\r\nEND\r\n" or "END\r\n".
func (m *Memcache) readGet(r *bufio.Reader, key []byte) (Item, error) {
	line, err := m.readLine(r)
	if err != nil {
		return Item{}, err
	}
	if line == "END" {
		return Item{}, ErrCacheMiss
	}
	var k string
	var flags uint32
	var n int
	if c, err := fmt.Sscanf(line, "VALUE %s %d %d", &k, &flags, &n); err != nil || c != 3 || k != string(key) || n < 0 {
		return Item{}, m.replyErr(line)
	}
	data := make([]byte, n+2)
	if _, err := io.ReadFull(r, data); err != nil {
		return Item{}, m.netErr(err)
	}
	if !bytes.HasSuffix(data, []byte("\r\n")) {
		return Item{}, m.replyErr("VALUE data block without \\r\\n")
	}
	if end, err := m.readLine(r); err != nil || end != "END" {
		return Item{}, m.replyErr("VALUE without END: " + end)
	}
	return Item{Value: data[:n], Flags: flags}, nil
}

// Set stores value under key with flags; ttl 0 keeps it until evicted.
// It returns an *ArgError, sending nothing, for a key memcached cannot
// take (ErrMemcacheKey), a negative ttl (ErrNegativeTTL) or a value over
// MemcacheOptions.MaxValue (ErrValueTooLarge).
func (m *Memcache) Set(ctx context.Context, key, value []byte, flags uint32, ttl time.Duration) error {
	if err := checkMemcacheKey("set", key); err != nil {
		return err
	}
	if err := checkTTL("set", ttl); err != nil {
		return err
	}
	if m.opts.MaxValue >= 0 && len(value) > m.opts.MaxValue {
		return &ArgError{Op: "set", Detail: fmt.Sprintf("value of %d bytes over %d", len(value), m.opts.MaxValue), Err: ErrValueTooLarge}
	}
	exptime := int64(ttl / time.Second)
	if ttl > 0 && exptime == 0 {
		exptime = 1
	}
	if exptime > memcache.MaxRelativeExptime { // memcached reads larger ones as a Unix time
		exptime = time.Now().Add(ttl).Unix()
	}
	req := fmt.Appendf(nil, "set %s %d %d %d\r\n", key, flags, exptime, len(value))
	req = append(append(req, value...), "\r\n"...)
	line, _, err := m.tcpLine(ctx, req)
	switch {
	case err != nil:
		return err
	case line == "STORED":
		return nil
	case line == "NOT_STORED":
		return ErrNotStored
	}
	return m.replyErr(line)
}

// Delete removes key, or returns ErrCacheMiss.
//
// A delete sent again on a fresh connection, because the one it went out
// on broke before the reply (see the package documentation), may find
// NOT_FOUND where its first copy deleted the key: Delete then reports
// success. nil means the key is not stored now; ErrCacheMiss that the only
// copy found nothing to delete.
func (m *Memcache) Delete(ctx context.Context, key []byte) error {
	if err := checkMemcacheKey("delete", key); err != nil {
		return err
	}
	line, attempts, err := m.tcpLine(ctx, append(append([]byte("delete "), key...), "\r\n"...))
	switch {
	case err != nil:
		return err
	case line == "DELETED":
		return nil
	case line == "NOT_FOUND" && attempts > 1:
		return nil
	case line == "NOT_FOUND":
		return ErrCacheMiss
	}
	return m.replyErr(line)
}

// Raw sends lines over TCP, each ended with \r\n, and returns every reply
// byte they bring, as the server sent it. The end of the replies is found
// with a meta no-op (mn) sent after them, whose MN is not returned. A
// command waiting for a data block that does not come never ends: Raw
// returns what came with ErrTimeout.
//
// Like every call, Raw sends its lines again on a fresh connection when
// the open one broke before the first reply byte came (the server closed
// it as idle). A server that dies after executing a command but before
// answering would then see it twice: do not use Raw for commands that
// must not run twice (incr, append) where that matters.
func (m *Memcache) Raw(ctx context.Context, lines ...string) ([]byte, error) {
	var req []byte
	for _, l := range lines {
		req = append(append(req, l...), "\r\n"...)
	}
	req = append(req, "mn\r\n"...)
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []byte
	_, err := m.exchange(ctx, req, true, func(br *bufio.Reader) (err error) {
		out, err = m.readRaw(br)
		return err
	})
	return out, err
}

// readRaw reads replies up to the MN of the meta no-op.
func (m *Memcache) readRaw(br *bufio.Reader) ([]byte, error) {
	var out []byte
	for {
		line, err := br.ReadSlice('\n')
		out = append(out, line...)
		if err != nil {
			if errors.Is(err, io.EOF) {
				m.netErr(err)
				return out, fmt.Errorf("memcache: the server closed the connection: %w", err)
			}
			return out, m.netErr(err)
		}
		l := bytes.TrimRight(line, "\r\n")
		n := -1
		switch f := bytes.Fields(l); {
		case len(f) == 1 && string(f[0]) == "MN":
			return out[:len(out)-len(line)], nil
		case len(f) >= 4 && string(f[0]) == "VALUE":
			n, _ = strconv.Atoi(string(f[3]))
		case len(f) >= 2 && string(f[0]) == "VA":
			n, _ = strconv.Atoi(string(f[1]))
		}
		if n >= 0 {
			data := make([]byte, n+2)
			k, err := io.ReadFull(br, data)
			out = append(out, data[:k]...)
			if err != nil {
				return out, m.netErr(err)
			}
		}
	}
}

// tcpLine sends req over TCP and reads a one-line reply; attempts is how
// many times req was sent.
func (m *Memcache) tcpLine(ctx context.Context, req []byte) (line string, attempts int, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	attempts, err = m.exchange(ctx, req, true, func(r *bufio.Reader) (err error) {
		line, err = m.readLine(r)
		return err
	})
	return line, attempts, err
}

// exchange sends req over TCP, dialling first if the connection is not
// open, and reads its reply with read. When a connection that was open
// before the call breaks before any byte of the reply came (the server
// closed it as idle while the request went out), req is sent once more on
// a connection dialled afresh, if resend: at most one dial per call, and a
// dial error is returned. attempts is how many times req was sent.
func (m *Memcache) exchange(ctx context.Context, req []byte, resend bool, read func(*bufio.Reader) error) (attempts int, err error) {
	for attempts = 1; ; attempts++ {
		fresh, err := m.send(ctx, req)
		if err == nil {
			err = read(m.br)
		}
		if err == nil || fresh || attempts > 1 || !resend || m.rx > 0 || !broken(err) || ctx.Err() != nil {
			return attempts, err
		}
	}
}

// broken reports whether err says the connection failed (closed by the
// peer, reset), rather than a timeout or a reply that made no sense.
func broken(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, ErrTimeout) {
		return false
	}
	var oe *net.OpError
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.As(err, &oe)
}

// send writes req on the TCP connection (dialled now if need be; fresh
// says so) and sets the deadline of its reply.
func (m *Memcache) send(ctx context.Context, req []byte) (fresh bool, err error) {
	if fresh, err = m.dialTCP(ctx); err != nil {
		return false, err
	}
	m.rx = 0
	deadline := time.Now().Add(m.opts.Timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = m.tcp.SetDeadline(deadline)
	if _, err := m.tcp.Write(req); err != nil {
		return fresh, m.netErr(err)
	}
	return fresh, nil
}

func (m *Memcache) readLine(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return "", m.netErr(err)
	}
	return string(bytes.TrimSuffix([]byte(line[:len(line)-1]), []byte("\r"))), nil
}

// netErr turns a timeout into ErrTimeout; a TCP connection that failed is
// dropped (its stream may be out of step), to be dialled again.
func (m *Memcache) netErr(err error) error {
	if m.tcp != nil {
		m.tcp.Close()
		m.tcp = nil
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return ErrTimeout
	}
	return fmt.Errorf("memcache: %w", err)
}

func (m *Memcache) replyErr(line string) error {
	if m.tcp != nil { // out of step: start afresh next time
		m.tcp.Close()
		m.tcp = nil
	}
	return &MemcacheError{Reply: line}
}

// roundTripUDP sends req behind a frame header and returns the reply,
// put together from its datagrams, resending after a timeout.
func (m *Memcache) roundTripUDP(ctx context.Context, req []byte) ([]byte, error) {
	m.id++
	id := m.id
	msg := memcache.AppendUDPHeader(nil, memcache.UDPHeader{RequestID: id, Total: 1})
	msg = append(msg, req...)
	buf := make([]byte, 64<<10)
	for attempt := 0; ; attempt++ {
		if _, err := m.udp.Write(msg); err != nil && !isTransient(err) {
			return nil, fmt.Errorf("memcache: send: %w", err)
		}
		deadline := time.Now().Add(m.opts.Timeout)
		if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
			deadline = d
		}
		_ = m.udp.SetReadDeadline(deadline)
		var (
			parts [][]byte
			got   int
		)
		for {
			n, err := m.udp.Read(buf)
			if err != nil {
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					break
				}
				if isTransient(err) {
					continue
				}
				return nil, fmt.Errorf("memcache: receive: %w", err)
			}
			h, ok := memcache.ParseUDPHeader(buf[:n])
			if !ok || h.RequestID != id || h.Total == 0 || h.Seq >= h.Total {
				continue // not ours, or a late reply to an earlier attempt of another request
			}
			if parts == nil {
				parts = make([][]byte, h.Total)
			}
			if int(h.Total) != len(parts) || parts[h.Seq] != nil {
				continue
			}
			parts[h.Seq] = append([]byte(nil), buf[memcache.UDPHeaderLen:n]...)
			if got++; got == len(parts) {
				return bytes.Join(parts, nil), nil
			}
		}
		if attempt >= m.opts.Retries {
			return nil, ErrTimeout
		}
	}
}
