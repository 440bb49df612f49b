package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/rebound-net/rebound/codec/memcache"
	"github.com/rebound-net/rebound/codec/rebound"
)

// maxMCWindow bounds the requests in flight on one memcache UDP flow: a
// request id is 16 bits, and an id must not come round again while its
// request may still be answered.
const maxMCWindow = 1 << 15

// maxReassembly bounds the memory one flow keeps to put multi-datagram
// UDP replies back together.
const maxReassembly = 256 << 20

// mcFlow is the memcache state of a flow: what each slot asked for, how
// replies find their slot, and the buffers to check them. Everything is
// allocated once; the load loops allocate nothing.
type mcFlow struct {
	keySize int
	value   []byte // what every SET stores and every GET hit must return
	setTail []byte // " 0 0 <n>\r\n"
	keyBuf  []byte // scratch for the expected key

	op  []rebound.Op // per slot: OpGet or OpSet
	key []int32      // per slot: key number

	// Datagram transports: replies carry the request id of their
	// request; id maps an id to the slot that sent it last, and reqID
	// holds each slot's id so a stale mapping never matches.
	id    []int32
	reqID []uint16
	next  uint16

	// Replies spanning several datagrams are put together per slot in
	// asm[s*asmSize:]; got counts the datagrams in, size is the length
	// known once the last one is in (-1 before).
	asm     []byte
	asmSize int
	got     []uint16
	size    []int32

	// TCP: slots in the order their requests went out.
	fifo       []int32
	head, fill int
}

func newMCFlow(cfg BenchConfig, window int) (*mcFlow, error) {
	m := &mcFlow{keySize: cfg.KeySize, value: benchValue(cfg.ValueSize),
		setTail: fmt.Appendf(nil, " 0 0 %d\r\n", cfg.ValueSize), keyBuf: make([]byte, 0, cfg.KeySize),
		op: make([]rebound.Op, window), key: make([]int32, window)}
	if cfg.TCP {
		m.fifo = make([]int32, window)
		return m, nil
	}
	m.id, m.reqID = make([]int32, 1<<16), make([]uint16, window)
	if n := m.maxReply(); n > memcache.UDPMaxPayload {
		m.asmSize = memcache.UDPDatagrams(n) * memcache.UDPMaxPayload
		if window*m.asmSize > maxReassembly {
			return nil, fmt.Errorf("bench: memcache over UDP: %d-byte values in a window of %d need %d MiB to put replies together: use a smaller window or TCP",
				cfg.ValueSize, window, window*m.asmSize>>20)
		}
		m.asm = make([]byte, window*m.asmSize)
		m.got, m.size = make([]uint16, window), make([]int32, window)
	}
	return m, nil
}

// maxReply is the size of the largest reply the flow accepts: a GET hit
// with the longest flags.
func (m *mcFlow) maxReply() int {
	return len("VALUE ") + m.keySize + len(" 4294967295 ") + len(strconv.Itoa(len(m.value))) + 2 + len(m.value) + len("\r\nEND\r\n")
}

// msgBytes is the size of the largest request (a SET).
func (m *mcFlow) msgBytes(datagram bool) int {
	n := len("set ") + m.keySize + len(m.setTail) + len(m.value) + 2
	if datagram {
		n += memcache.UDPHeaderLen
	}
	return n
}

// encodeMC writes the request of sequence seq (slot seq % window) into b,
// which has room for msgBytes, and returns its size.
func (f *flow) encodeMC(b []byte, seq uint32, op rebound.Op, k int) int {
	m := f.mc
	s := int(seq % uint32(len(f.slots)))
	out := b[:0]
	if !f.tcp {
		m.next++
		m.id[m.next], m.reqID[s] = int32(s), m.next
		out = memcache.AppendUDPHeader(out, memcache.UDPHeader{RequestID: m.next, Total: 1})
		if m.got != nil {
			m.got[s], m.size[s] = 0, -1
		}
	} else {
		m.fifo[(m.head+m.fill)%len(m.fifo)] = int32(s)
		m.fill++
	}
	m.op[s], m.key[s] = op, int32(k)
	if op == rebound.OpSet {
		out = append(out, "set "...)
		out = appendKey(out, k, m.keySize)
		out = append(out, m.setTail...)
		out = append(out, m.value...)
		out = append(out, "\r\n"...)
	} else {
		out = append(out, "get "...)
		out = appendKey(out, k, m.keySize)
		out = append(out, "\r\n"...)
	}
	return len(out)
}

// completeMCDatagram takes one reply datagram (frame header and reply
// bytes) and, once its reply is whole, checks it.
func (f *flow) completeMCDatagram(b []byte) {
	m := f.mc
	h, ok := memcache.ParseUDPHeader(b)
	if !ok {
		return
	}
	s := int(m.id[h.RequestID])
	if f.slots[s] == 0 || m.reqID[s] != h.RequestID {
		return // late reply of a request already counted lost
	}
	data := b[memcache.UDPHeaderLen:]
	if h.Total == 1 && h.Seq == 0 {
		f.checkMC(s, data)
		return
	}
	if h.Seq >= h.Total || m.asm == nil || int(h.Total)*memcache.UDPMaxPayload > m.asmSize || len(data) > memcache.UDPMaxPayload {
		f.badMC(s) // more than a right reply can take
		return
	}
	buf := m.asm[s*m.asmSize : (s+1)*m.asmSize]
	copy(buf[int(h.Seq)*memcache.UDPMaxPayload:], data)
	if h.Seq == h.Total-1 {
		m.size[s] = int32(int(h.Seq)*memcache.UDPMaxPayload + len(data))
	}
	if m.got[s]++; m.got[s] == h.Total && m.size[s] >= 0 {
		f.checkMC(s, buf[:m.size[s]])
	}
}

// readMCTCP takes the replies buffered on a memcache TCP stream; they
// answer the requests in order.
func (f *flow) readMCTCP(br *bufio.Reader) {
	m := f.mc
	for {
		n := br.Buffered()
		if n == 0 {
			if _, err := br.Peek(1); err != nil {
				return
			}
			continue
		}
		buf, _ := br.Peek(n)
		size := mcReplyLen(buf)
		if size == 0 {
			if n == br.Size() { // longer than any reply of ours: resync on what follows
				f.bad.Add(1)
				f.errCount.Add(1)
				_, _ = br.Discard(n)
				continue
			}
			if _, err := br.Peek(n + 1); err != nil {
				return
			}
			continue
		}
		if m.fill == 0 {
			f.bad.Add(1) // a reply to nothing we asked
			f.errCount.Add(1)
		} else {
			s := int(m.fifo[m.head])
			m.head, m.fill = (m.head+1)%len(m.fifo), m.fill-1
			f.checkMC(s, buf[:size])
		}
		_, _ = br.Discard(size)
		_ = f.conn.SetReadDeadline(time.Now())
	}
}

// mcReplyLen returns the length of the reply at the start of b: one line,
// or a VALUE line with its data block and END; 0 if b does not hold it
// all yet.
func mcReplyLen(b []byte) int {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return 0
	}
	if !bytes.HasPrefix(b, []byte("VALUE ")) {
		return i + 1
	}
	// VALUE <key> <flags> <bytes> [<cas>]\r\n<data>\r\nEND\r\n
	line := bytes.TrimSuffix(b[:i], []byte("\r"))
	for t := 0; t < 3; t++ {
		j := bytes.IndexByte(line, ' ')
		if j < 0 {
			return i + 1 // malformed: a line of its own
		}
		line = line[j+1:]
	}
	if j := bytes.IndexByte(line, ' '); j >= 0 {
		line = line[:j]
	}
	n, ok := atoi(line)
	if !ok {
		return i + 1
	}
	total := i + 1 + n + len("\r\nEND\r\n")
	if len(b) < total {
		return 0
	}
	return total
}

// checkMC counts the reply to slot s as a hit, a miss, a stored SET or a
// bad reply, and completes the request.
func (f *flow) checkMC(s int, r []byte) {
	m := f.mc
	switch {
	case m.op[s] == rebound.OpSet:
		if string(r) != memcache.ReplyStored {
			f.badMC(s)
			return
		}
	case string(r) == memcache.ReplyEnd:
		f.misses++
	default:
		m.keyBuf = appendKey(m.keyBuf[:0], int(m.key[s]), m.keySize)
		if !validHit(r, m.keyBuf, m.value) {
			f.badMC(s)
			return
		}
		f.hits++
	}
	f.finish(s)
}

func (f *flow) badMC(s int) {
	f.bad.Add(1)
	f.errCount.Add(1)
	f.finish(s)
}

// validHit reports whether r is exactly "VALUE <key> <flags> <n>\r\n<value>\r\nEND\r\n".
func validHit(r, key, value []byte) bool {
	r, ok := bytes.CutPrefix(r, []byte("VALUE "))
	if !ok {
		return false
	}
	if r, ok = bytes.CutPrefix(r, key); !ok || len(r) == 0 || r[0] != ' ' {
		return false
	}
	r = r[1:]
	sp := bytes.IndexByte(r, ' ')
	if _, ok := atoi(r[:max(sp, 0)]); sp <= 0 || !ok {
		return false
	}
	r = r[sp+1:]
	nl := bytes.Index(r, []byte("\r\n"))
	if n, ok := atoi(r[:max(nl, 0)]); nl <= 0 || !ok || n != len(value) {
		return false
	}
	r = r[nl+2:]
	return len(r) == len(value)+len("\r\nEND\r\n") && bytes.Equal(r[:len(value)], value) && string(r[len(value):]) == "\r\nEND\r\n"
}

// atoi reads a decimal number of up to 10 digits.
func atoi(b []byte) (int, bool) {
	if len(b) == 0 || len(b) > 10 {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// preloadMemcache stores every key over one TCP connection, pipelined,
// before a run with GETs, so that they hit.
func preloadMemcache(ctx context.Context, cfg BenchConfig) error {
	need := false
	for _, m := range cfg.Mix {
		need = need || m.Op == rebound.OpGet
	}
	if !need {
		return nil
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", cfg.Target)
	if err != nil {
		return fmt.Errorf("preload keys over TCP: %w", err)
	}
	if cfg.TLS != nil {
		if conn, err = handshake(ctx, conn, cfg.TLS); err != nil {
			return fmt.Errorf("preload keys: %w", err)
		}
	}
	defer conn.Close()
	deadline := time.Now().Add(30*time.Second + time.Duration(cfg.Keys)*100*time.Microsecond)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	_ = conn.SetDeadline(deadline)
	m, _ := newMCFlow(BenchConfig{KeySize: cfg.KeySize, ValueSize: cfg.ValueSize, TCP: true}, 1)
	br := bufio.NewReader(conn)
	bw := bufio.NewWriterSize(conn, 64<<10)
	const batch = 256
	for k0 := 0; k0 < cfg.Keys; k0 += batch {
		if err := ctx.Err(); err != nil {
			return err
		}
		k1 := min(k0+batch, cfg.Keys)
		for k := k0; k < k1; k++ {
			b := append(bw.AvailableBuffer(), "set "...)
			b = appendKey(b, k, m.keySize)
			b = append(append(append(b, m.setTail...), m.value...), "\r\n"...)
			_, _ = bw.Write(b)
		}
		if err := bw.Flush(); err != nil {
			return fmt.Errorf("bench: preload keys: %w", err)
		}
		for k := k0; k < k1; k++ {
			line, err := br.ReadString('\n')
			if err != nil {
				return fmt.Errorf("bench: preload keys: %w", err)
			}
			if line != memcache.ReplyStored {
				return fmt.Errorf("bench: preload key %d: the server answered %q, not STORED", k, line)
			}
		}
	}
	return nil
}
