package mcserve

import (
	"bytes"
	"encoding/binary"
	"math"
	"strconv"
	"time"

	mc "github.com/rebound-net/rebound/codec/memcache"
	"github.com/rebound-net/rebound/userspace/store"
)

// The binary protocol, as memcached 1.6 (proto_bin.c) answers it. A
// connection speaks it when its first byte is the request magic 0x80 (a UDP
// datagram: when its first byte after the frame header is); from then on
// every packet must start with that magic, or the connection is closed
// without a reply, as memcached closes it.
//
// Quiet commands (GetQ, SetQ, ...) are silent on success and on a get's
// miss; errors are always answered. memcached answers nothing of a quiet
// command later than a loud one: the order of responses is the order of
// requests.

const (
	binMaxKey  = 250     // KEY_MAX_LENGTH
	binMaxBody = 1 << 30 // ITEM_SIZE_MAX_UPPER_LIMIT
	// binNoVivify in an incr's expiration says: do not create a missing
	// key.
	binNoVivify = 0xffffffff
)

// serveBinary is Serve for a connection that speaks the binary protocol.
func (c *Conn) serveBinary(in, out []byte, now time.Time) (consumed int, out2 []byte, need int, close bool) {
	for {
		var more bool
		if consumed, more = c.skip(in, consumed); more {
			return consumed, out, 0, false
		}
		if c.done(in, consumed) {
			return consumed, out, 0, c.flushErr != nil
		}
		b := in[consumed:]
		if b[0] != mc.BinaryRequest {
			// memcached: "Invalid magic", the connection is closed
			if c.udp {
				c.silent = true
			}
			return len(in), out, 0, true
		}
		hdr, ok := mc.ParseBinaryHeader(b)
		if !ok {
			return consumed, out, mc.BinaryHeaderLen, false
		}
		head := mc.BinaryHeaderLen + int(hdr.ExtLen) + int(hdr.KeyLen)
		if len(b) < head {
			return consumed, out, head, false
		}
		n, o, stop := c.binCommand(hdr, b, out, now)
		out = o
		if n < 0 { // the whole packet is needed first
			if c.udp { // a datagram stands alone: nothing more will come
				return len(in), out, 0, false
			}
			return consumed, out, -n, false
		}
		consumed += n
		if stop {
			return consumed, out, 0, true
		}
		c.endMessage(out)
		if c.udp && len(c.ends) == 0 {
			// memcached sends the first command's reply message even
			// when it is empty (a quiet command): a bare header.
			c.ends = append(c.ends, len(out))
		}
		if c.overBudget(out, 0) {
			return len(in), out, 0, false
		}
		out = c.flushLarge(out)
	}
}

// binCommand runs the command whose header (extras and key included) is
// at the start of b. It returns how much of b it consumed (-n: it needs n
// bytes of b buffered first, having answered nothing), and whether the
// connection closes after out is written.
func (c *Conn) binCommand(hdr mc.BinaryHeader, b, out []byte, now time.Time) (int, []byte, bool) {
	h := c.h
	ext := b[mc.BinaryHeaderLen : mc.BinaryHeaderLen+int(hdr.ExtLen)]
	keyEnd := mc.BinaryHeaderLen + int(hdr.ExtLen) + int(hdr.KeyLen)
	key := b[mc.BinaryHeaderLen+int(hdr.ExtLen) : keyEnd]
	extLen, keyLen, bodyLen := int(hdr.ExtLen), int(hdr.KeyLen), int(hdr.BodyLen)
	if !hdr.Consistent() {
		return keyEnd, mc.AppendBinaryError(out, hdr, mc.StatusUnknownCommand), true
	}
	if hdr.BodyLen > binMaxBody {
		return keyEnd, mc.AppendBinaryError(out, hdr, mc.StatusInvalid), true
	}
	op := hdr.Op
	if h.cfg.Auth != nil && !c.authed {
		switch op {
		case mc.OpSASLListMechs, mc.OpSASLAuth, mc.OpSASLStep, mc.OpVersion:
		default:
			return keyEnd, mc.AppendBinaryError(out, hdr, mc.StatusAuthError), true
		}
	}
	if keyLen > binMaxKey {
		return keyEnd, mc.AppendBinaryError(out, hdr, mc.StatusInvalid), true
	}
	loud, quiet := op.Loud()
	protoErr := func() (int, []byte, bool) {
		return keyEnd, mc.AppendBinaryError(out, hdr, mc.StatusInvalid), true
	}
	value := func() ([]byte, int) { // the value, or how much of b it needs
		if len(b) < hdr.PacketLen() {
			return nil, -hdr.PacketLen()
		}
		return b[keyEnd:hdr.PacketLen()], hdr.PacketLen()
	}
	bare := extLen == 0 && keyLen == 0 && bodyLen == 0
	s := h.cfg.Store
	switch loud {
	case mc.OpVersion:
		if !bare {
			return protoErr()
		}
		return keyEnd, mc.AppendBinaryResponse(out, hdr, mc.StatusOK, 0, nil, nil, []byte(h.cfg.Version)), false
	case mc.OpNoop:
		if !bare {
			return protoErr()
		}
		return keyEnd, mc.AppendBinaryResponse(out, hdr, mc.StatusOK, 0, nil, nil, nil), false
	case mc.OpQuit:
		if !bare {
			return protoErr()
		}
		if !quiet {
			out = mc.AppendBinaryResponse(out, hdr, mc.StatusOK, 0, nil, nil, nil)
		}
		return keyEnd, out, true
	case mc.OpFlush:
		if keyLen != 0 || bodyLen != extLen || (extLen != 0 && extLen != 4) {
			return protoErr()
		}
		c.cnt.cmdFlush.Add(1)
		var delay time.Duration
		if extLen == 4 {
			if exp := binary.BigEndian.Uint32(ext); exp > 0 {
				delay = time.Duration(binDeadline(exp, now.Unix())-now.Unix()) * time.Second
			}
		}
		s.FlushAll(max(delay, 0))
		if !quiet {
			out = mc.AppendBinaryResponse(out, hdr, mc.StatusOK, 0, nil, nil, nil)
		}
		return keyEnd, out, false
	case mc.OpGet, mc.OpGetK:
		if extLen != 0 || bodyLen != keyLen || keyLen == 0 {
			return protoErr()
		}
		return keyEnd, c.binGet(hdr, loud, quiet, key, 0, out, now), false
	case mc.OpTouch, mc.OpGAT, mc.OpGATK:
		if extLen != 4 || keyLen == 0 {
			return protoErr()
		}
		return keyEnd, c.binGet(hdr, loud, quiet, key, binary.BigEndian.Uint32(ext), out, now), false
	case mc.OpSet, mc.OpAdd, mc.OpReplace, mc.OpAppend, mc.OpPrepend:
		appendOp := loud == mc.OpAppend || loud == mc.OpPrepend
		if appendOp && (keyLen == 0 || extLen != 0) || !appendOp && (extLen != 8 || keyLen == 0 || bodyLen < keyLen+8) {
			return protoErr()
		}
		vlen := bodyLen - keyLen - extLen
		if vlen > h.maxVal {
			c.cnt.storeTooLarge.Add(1)
			if loud == mc.OpSet {
				s.Delete(key, 0) // memcached drops the old value rather than keep a stale one
			}
			c.swallow = vlen
			return keyEnd, mc.AppendBinaryError(out, hdr, mc.StatusTooLarge), false
		}
		v, n := value()
		if n < 0 {
			return n, out, false
		}
		return n, c.binStore(hdr, loud, quiet, key, ext, v, out, now), false
	case mc.OpDelete:
		if keyLen == 0 || extLen != 0 || bodyLen != keyLen {
			return protoErr()
		}
		st := mc.StatusOK
		switch s.Delete(key, hdr.CAS) {
		case store.Deleted:
			c.cnt.deleteHits.Add(1)
		case store.Exists:
			st = mc.StatusKeyExists
		default:
			c.cnt.deleteMisses.Add(1)
			st = mc.StatusKeyNotFound
		}
		return keyEnd, c.binResult(out, hdr, quiet, st, 0, nil), false
	case mc.OpIncrement, mc.OpDecrement:
		if keyLen == 0 || extLen != 20 || bodyLen != keyLen+extLen {
			return protoErr()
		}
		return keyEnd, c.binArith(hdr, loud, quiet, key, ext, out, now), false
	case mc.OpStat:
		if extLen != 0 {
			return protoErr()
		}
		return keyEnd, c.binStat(hdr, key, out), false
	case mc.OpSASLListMechs:
		if !bare {
			return protoErr()
		}
		if h.cfg.Auth == nil {
			c.swallow = bodyLen - keyLen
			return keyEnd, mc.AppendBinaryError(out, hdr, mc.StatusUnknownCommand), false
		}
		c.authed = false // as memcached's init_sasl_conn: a new login starts
		return keyEnd, mc.AppendBinaryResponse(out, hdr, mc.StatusOK, 0, nil, nil, []byte(saslMechs)), false
	case mc.OpSASLAuth, mc.OpSASLStep:
		if extLen != 0 || keyLen == 0 {
			return protoErr()
		}
		if h.cfg.Auth == nil {
			c.swallow = bodyLen - keyLen
			return keyEnd, mc.AppendBinaryError(out, hdr, mc.StatusUnknownCommand), false
		}
		v, n := value()
		if n < 0 {
			return n, out, false
		}
		return n, c.saslCommand(hdr, key, v, out), false
	}
	// Unknown (verbosity too: memcached 1.6 does not implement it in the
	// binary protocol). memcached swallows the whole body length after the
	// extras and key it has already read; so does this.
	c.swallow = bodyLen
	return keyEnd, mc.AppendBinaryError(out, hdr, mc.StatusUnknownCommand), false
}

// binResult appends a response with no body: st's error, or, unless quiet,
// success with cas.
func (c *Conn) binResult(out []byte, hdr mc.BinaryHeader, quiet bool, st mc.BinaryStatus, cas uint64, body []byte) []byte {
	if st != mc.StatusOK {
		return mc.AppendBinaryError(out, hdr, st)
	}
	if quiet {
		return out
	}
	return mc.AppendBinaryResponse(out, hdr, mc.StatusOK, cas, nil, nil, body)
}

// binDeadline is memcache.Deadline for the binary protocol's unsigned
// expiration: past 2^31 it is an absolute time far in the future.
func binDeadline(exp uint32, now int64) int64 {
	if exp > math.MaxInt32 {
		return int64(exp)
	}
	return mc.Deadline(int32(exp), now)
}

// binGet runs get, getk, touch, gat and gatk (and their quiet forms). The
// response's header and extras are reserved first; the value is copied
// from the store straight behind them, then the header is written.
func (c *Conn) binGet(hdr mc.BinaryHeader, op mc.BinaryOp, quiet bool, key []byte, exp uint32, out []byte, now time.Time) []byte {
	h := c.h
	s := h.cfg.Store
	touch := op != mc.OpGet && op != mc.OpGetK
	withKey := op == mc.OpGetK || op == mc.OpGATK
	p := len(out)
	var hit bool
	var m store.Meta
	if touch {
		c.cnt.cmdTouch.Add(1)
	} else {
		c.cnt.cmdGet.Add(1)
	}
	keyLen := 0
	if withKey {
		keyLen = len(key)
	}
	out = append(out, make([]byte, mc.BinaryHeaderLen+4)...)
	out = append(out, key[:keyLen]...)
	switch op {
	case mc.OpTouch:
		if m, hit = s.Touch(key, binDeadline(exp, now.Unix())); hit {
			s.Fetch(key) // memcached's touch fetches the item
		}
	case mc.OpGAT, mc.OpGATK:
		out, m, hit = s.GetAndTouch(key, binDeadline(exp, now.Unix()), out)
	default:
		// The value is copied straight behind the reserved header; a
		// datagram stops at its budget before copying it.
		var n int
		if out, n, m, hit = c.getWithin(key, out); n < 0 {
			return out[:p]
		}
	}
	c.countGet(hit, touch)
	if !hit {
		out = out[:p]
		switch {
		case quiet:
			return out
		case withKey: // the key, with no message
			return mc.AppendBinaryResponse(out, hdr, mc.StatusKeyNotFound, 0, nil, key, nil)
		}
		return mc.AppendBinaryError(out, hdr, mc.StatusKeyNotFound)
	}
	if c.overBudget(out, 0) {
		return out[:p]
	}
	mc.PutBinaryHeader(out[p:], mc.BinaryHeader{
		Magic: mc.BinaryResponse, Op: hdr.Op, KeyLen: uint16(keyLen), ExtLen: 4,
		BodyLen: uint32(len(out) - p - mc.BinaryHeaderLen), Opaque: hdr.Opaque, CAS: m.CAS,
	})
	binary.BigEndian.PutUint32(out[p+mc.BinaryHeaderLen:], m.Flags)
	return out
}

var binModes = [...]store.Mode{
	mc.OpSet: store.ModeSet, mc.OpAdd: store.ModeAdd, mc.OpReplace: store.ModeReplace,
	mc.OpAppend: store.ModeAppend, mc.OpPrepend: store.ModePrepend,
}

// binStore runs set, add, replace, append and prepend. A CAS in the
// request makes set, add and replace a compare-and-swap (memcached's
// NREAD_CAS); append and prepend compare it too.
func (c *Conn) binStore(hdr mc.BinaryHeader, op mc.BinaryOp, quiet bool, key, ext, v, out []byte, now time.Time) []byte {
	h := c.h
	c.cnt.cmdSet.Add(1)
	mode := binModes[op]
	var flags uint32
	var deadline int64
	if len(ext) == 8 {
		flags = binary.BigEndian.Uint32(ext)
		deadline = binDeadline(binary.BigEndian.Uint32(ext[4:]), now.Unix())
	}
	cas := hdr.CAS
	if cas != 0 && mode != store.ModeAppend && mode != store.ModePrepend {
		mode = store.ModeSet
	}
	r, newCAS := h.cfg.Store.Set(key, v, mode, flags, deadline, cas)
	if cas != 0 && mode == store.ModeSet {
		c.countCAS(r)
	}
	st := mc.StatusOK
	switch r {
	case store.Stored:
	case store.Exists:
		st = mc.StatusKeyExists
	case store.NotFound:
		st = mc.StatusKeyNotFound
	default: // not stored, too large
		switch op {
		case mc.OpAdd:
			st = mc.StatusKeyExists
		case mc.OpReplace:
			st = mc.StatusKeyNotFound
		default:
			st = mc.StatusNotStored
		}
	}
	return c.binResult(out, hdr, quiet, st, newCAS, nil)
}

// binArith runs incr and decr: extras are the delta, the initial value and
// the expiration; a missing key is created with the initial value (which
// is answered as is) unless the expiration is 0xffffffff.
func (c *Conn) binArith(hdr mc.BinaryHeader, op mc.BinaryOp, quiet bool, key, ext, out []byte, now time.Time) []byte {
	h := c.h
	s := h.cfg.Store
	delta := binary.BigEndian.Uint64(ext)
	initial := binary.BigEndian.Uint64(ext[8:])
	exp := binary.BigEndian.Uint32(ext[16:])
	decr := op == mc.OpDecrement
	v, cas, r := s.IncrCAS(key, delta, decr, nil, hdr.CAS)
	st := mc.StatusOK
	switch r {
	case store.Stored:
		c.countArith(decr, r)
	case store.NonNumeric:
		st = mc.StatusNonNumeric
	case store.Exists:
		st = mc.StatusKeyExists
	case store.NotFound:
		if exp == binNoVivify {
			c.countArith(decr, r)
			st = mc.StatusKeyNotFound
			break
		}
		// memcached adds the item (NREAD_ADD), whatever CAS was asked
		var num [20]byte
		var rr store.Result
		rr, cas = s.Set(key, strconv.AppendUint(num[:0], initial, 10), store.ModeAdd, 0, binDeadline(exp, now.Unix()), 0)
		if rr != store.Stored {
			st = mc.StatusNotStored
		}
		v = initial
	}
	if st != mc.StatusOK {
		return mc.AppendBinaryError(out, hdr, st)
	}
	var body [8]byte
	binary.BigEndian.PutUint64(body[:], v)
	return c.binResult(out, hdr, quiet, st, cas, body[:])
}

// binStat answers stat (with a key: that block) as a series of responses,
// one per statistic (its name the key, its figure the value), ended by an
// empty one. The figures are the text protocol's.
func (c *Conn) binStat(hdr mc.BinaryHeader, key, out []byte) []byte {
	sub := key
	if bytes.HasPrefix(sub, []byte("reset")) {
		sub = sub[:5]
	}
	c.scratch = c.h.appendStatsCmd(c.scratch[:0], sub)
	text := c.scratch
	if len(key) > 0 && !bytes.HasPrefix(text, []byte("STAT ")) && !bytes.HasPrefix(text, []byte("RESET")) && string(text) != mc.ReplyEnd {
		return mc.AppendBinaryError(out, hdr, mc.StatusKeyNotFound)
	}
	for len(text) > 0 {
		line, rest, _ := bytes.Cut(text, []byte("\r\n"))
		text = rest
		name, ok := bytes.CutPrefix(line, []byte("STAT "))
		if !ok {
			continue
		}
		name, val, _ := bytes.Cut(name, []byte(" "))
		out = mc.AppendBinaryResponse(out, hdr, mc.StatusOK, 0, nil, name, val)
	}
	return mc.AppendBinaryResponse(out, hdr, mc.StatusOK, 0, nil, nil, nil)
}
