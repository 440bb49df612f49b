package mcserve

import (
	"slices"
	"time"

	mc "github.com/rebound-net/rebound/codec/memcache"
	"github.com/rebound-net/rebound/userspace/store"
)

// Conn is the state of one client connection (or of one UDP worker, reset
// for every datagram). It is not safe for concurrent use.
type Conn struct {
	h       *Handler
	cmd     mc.Command
	swallow int   // bytes of a refused data block still to discard
	udp     bool  // inside ServeDatagram: record message boundaries
	ends    []int // UDP: end offsets of the reply messages in out
	base    int   // UDP: start of the reply in out
	hdr     []byte

	// budget, when > 0, is the most reply bytes (unframed) the datagram
	// being served may build; over says a command would have passed it:
	// the executor stopped there, before building the rest (UDP only).
	budget int
	over   bool
	silent bool // UDP: the datagram closed the "connection" (an HTTP line): no reply

	// Flush, when set (by a stream transport), is called with the replies
	// gathered so far whenever a multi-get has gathered FlushAt bytes or
	// more, and they are dropped from out: a connection then holds about
	// one value beyond FlushAt, however many keys a get names. After an
	// error from Flush, Serve stops and says close.
	Flush    func([]byte) error
	FlushAt  int
	flushed  int
	flushErr error

	// proto is what the connection speaks, decided by its first byte as
	// memcached decides it (0x80: binary); per datagram over UDP.
	proto   uint8
	scratch []byte // binary stat: the text stats, converted

	// Authentication (Config.Auth): authed once logged in; loginData > 0:
	// a text login's data block of that many bytes comes next;
	// saslPending: SASL PLAIN waits for its step.
	authed      bool
	loginData   int
	saslPending bool

	// cnt is where this connection counts its commands: one of the
	// handler's shards, so that workers on different cores do not write
	// the same cache lines for every request (Handler.shards).
	cnt *counters
}

// What a connection speaks.
const (
	protoUnknown uint8 = iota
	protoText
	protoBinary
)

// NewConn returns the state of a new connection.
func (h *Handler) NewConn() *Conn {
	return &Conn{h: h, hdr: make([]byte, 0, 512), cnt: &h.shards[h.nextShard.Add(1)%counterShards].counters}
}

// Serve executes every complete command at the start of in (pipelining),
// appending the replies to out, and returns the grown out and how many bytes
// of in it consumed. need > 0 says the next command is incomplete: at least
// need bytes of in[consumed:] must be buffered before the next call (the
// transport grows its buffer up to a bound of its own). close says the
// transport must write out and close the connection (quit, or a line too
// long without a newline). A refused data block (value too large) is
// swallowed as it streams in, across calls: Serve consumes it without
// asking for it to be buffered.
func (c *Conn) Serve(in, out []byte) (consumed int, out2 []byte, need int, close bool) {
	h := c.h
	start := len(out)
	c.flushed = 0
	defer func() {
		c.cnt.bytesRead.Add(uint64(consumed))
		c.cnt.bytesWritten.Add(uint64(len(out2) + c.flushed - start))
		if c.flushErr != nil {
			close = true
		}
	}()
	now := h.cfg.Now()
	if c.udp && h.cfg.Auth != nil {
		// No login over UDP: nothing is answered (the transport does
		// not open UDP while auth is on; this covers every path).
		c.silent = true
		return len(in), out, 0, true
	}
	if c.proto == protoUnknown && len(in) > 0 {
		c.proto = protoText
		if in[0] == mc.BinaryRequest {
			c.proto = protoBinary
		}
	}
	if c.proto == protoBinary {
		return c.serveBinary(in, out, now)
	}
	for {
		var more bool
		if consumed, more = c.skip(in, consumed); more {
			return consumed, out, 0, false
		}
		if c.done(in, consumed) {
			return consumed, out, 0, c.flushErr != nil
		}
		if h.cfg.Auth != nil && !c.authed {
			n, o, nd, cl := c.textLogin(in[consumed:], out)
			out = o
			switch {
			case cl:
				return len(in), out, 0, true
			case nd > 0:
				return consumed, out, nd, false
			}
			consumed += n
			continue
		}
		cmd := &c.cmd
		switch mc.Parse(in[consumed:], h.maxVal, cmd) {
		case mc.NeedMore:
			need = cmd.Need
			if need == 0 {
				need = len(in) - consumed + 1
			}
			return consumed, out, need, false
		case mc.Invalid:
			if cmd.Err.Closes() {
				if c.udp {
					c.silent = true // over UDP: nothing at all
				}
				return len(in), out, 0, true
			}
			consumed += cmd.Consumed
			c.swallow = cmd.Swallow
			if cmd.Err == mc.ErrTooLarge {
				c.cnt.storeTooLarge.Add(1)
				if cmd.Kind == mc.KindSet || cmd.Kind == mc.KindMetaSet {
					// memcached drops the old value rather than keep a stale
					// one (for ms in every mode)
					h.cfg.Store.Delete(cmd.Key, 0)
				}
			}
			// Over UDP an unknown command gets no ERROR: a peer that
			// answers ERROR to what it does not know (memcached itself)
			// would otherwise bounce it back and forth with us.
			if (!cmd.NoReply || cmd.Kind >= mc.KindMetaGet) && !(c.udp && cmd.Err == mc.ErrUnknown) {
				out = append(out, cmd.Err.Reply()...)
			}
			c.endMessage(out)
		case mc.Complete:
			consumed += cmd.Consumed
			out, close = c.exec(cmd, out, now)
			if close {
				return consumed, out, 0, true
			}
			c.endMessage(out)
		}
		if c.overBudget(out, 0) {
			return len(in), out, 0, false
		}
		// Every command's replies stream out once they pass FlushAt, not
		// only a multi-get's: a pipeline of meta gets of large values that
		// the client does not read holds one FlushAt and one reply, then
		// the transport's write blocks and reading stops.
		out = c.flushLarge(out)
	}
}

// flushLarge hands out to Flush once it holds FlushAt bytes or more, so
// that a multi-get of large values streams out instead of gathering every
// value first (stream transports only; UDP needs the whole reply).
func (c *Conn) flushLarge(out []byte) []byte {
	if c.Flush == nil || c.udp || len(out) < c.FlushAt || c.flushErr != nil {
		return out
	}
	c.flushErr = c.Flush(out)
	c.flushed += len(out)
	return out[:0]
}

// skip discards what is left of a refused data block from in[consumed:],
// as it streams in; more says the block goes on past in.
func (c *Conn) skip(in []byte, consumed int) (next int, more bool) {
	if c.swallow == 0 {
		return consumed, false
	}
	k := min(c.swallow, len(in)-consumed)
	c.swallow -= k
	return consumed + k, c.swallow > 0
}

// done reports whether Serve has nothing more to do in this call: all of
// in consumed, the transport's flush failed, or the datagram's budget is
// spent.
func (c *Conn) done(in []byte, consumed int) bool {
	return consumed == len(in) || c.flushErr != nil || c.over
}

// overBudget reports whether out, grown by n more bytes, passes the
// datagram's budget; if so it marks the datagram over, and the executor
// stops: what a datagram may cost is fixed before it runs, so a request
// naming many large items builds at most one of them before it is
// refused.
func (c *Conn) overBudget(out []byte, n int) bool {
	if c.budget <= 0 || len(out)-c.base+n <= c.budget {
		return false
	}
	c.over = true
	return true
}

// endMessage closes the reply message of one command (UDP).
func (c *Conn) endMessage(out []byte) {
	if !c.udp {
		return
	}
	last := c.base
	if n := len(c.ends); n > 0 {
		last = c.ends[n-1]
	}
	if len(out) > last {
		c.ends = append(c.ends, len(out))
	}
}

func (c *Conn) exec(cmd *mc.Command, out []byte, now time.Time) ([]byte, bool) {
	h := c.h
	s := h.cfg.Store
	switch cmd.Kind {
	case mc.KindGet, mc.KindGets, mc.KindGat, mc.KindGats:
		return c.get(cmd, out, now), false
	case mc.KindSet, mc.KindAdd, mc.KindReplace, mc.KindAppend, mc.KindPrepend, mc.KindCas:
		c.cnt.cmdSet.Add(1)
		r := c.store(cmd, now)
		if !cmd.NoReply {
			out = appendResult(out, r)
		}
	case mc.KindDelete:
		r := s.Delete(cmd.Key, 0)
		if r == store.Deleted {
			c.cnt.deleteHits.Add(1)
		} else {
			c.cnt.deleteMisses.Add(1)
		}
		if !cmd.NoReply {
			out = appendResult(out, r)
		}
	case mc.KindIncr, mc.KindDecr:
		decr := cmd.Kind == mc.KindDecr
		v, _, r := s.Incr(cmd.Key, cmd.Delta, decr, nil)
		c.countArith(decr, r)
		if !cmd.NoReply {
			switch r {
			case store.Stored:
				out = mc.AppendNumber(out, v)
			case store.NonNumeric:
				out = mc.AppendError(out, mc.ErrNonNumeric)
			default:
				out = append(out, mc.ReplyNotFound...)
			}
		}
	case mc.KindTouch:
		c.cnt.cmdTouch.Add(1)
		_, ok := s.Touch(cmd.Key, mc.Deadline(cmd.Exptime, now.Unix()))
		if ok {
			c.cnt.touchHits.Add(1)
			s.Fetch(cmd.Key) // memcached's touch fetches the item: mg h says 1
		} else {
			c.cnt.touchMisses.Add(1)
		}
		if !cmd.NoReply {
			if ok {
				out = append(out, mc.ReplyTouched...)
			} else {
				out = append(out, mc.ReplyNotFound...)
			}
		}
	case mc.KindFlushAll:
		c.cnt.cmdFlush.Add(1)
		var delay time.Duration
		if cmd.Exptime > 0 {
			delay = time.Duration(mc.Deadline(cmd.Exptime, now.Unix())-now.Unix()) * time.Second
		}
		s.FlushAll(delay)
		if !cmd.NoReply {
			out = append(out, mc.ReplyOK...)
		}
	case mc.KindVersion:
		out = mc.AppendVersion(out, h.cfg.Version)
	case mc.KindVerbosity:
		if !cmd.NoReply {
			out = append(out, mc.ReplyOK...)
		}
	case mc.KindQuit:
		return out, true
	case mc.KindStats:
		out = h.appendStatsCmd(out, cmd.Args())
	case mc.KindMetaNoop:
		out = append(out, mc.MetaNoop...)
	case mc.KindMetaDebug:
		c.cnt.cmdMeta.Add(1)
		out = c.metaDebug(cmd, out, now)
	case mc.KindMetaGet:
		c.cnt.cmdMeta.Add(1)
		out = c.metaGet(cmd, out, now)
	case mc.KindMetaSet:
		c.cnt.cmdMeta.Add(1)
		out = c.metaSet(cmd, out, now)
	case mc.KindMetaDelete:
		c.cnt.cmdMeta.Add(1)
		out = c.metaDelete(cmd, out, now)
	case mc.KindMetaArithmetic:
		c.cnt.cmdMeta.Add(1)
		out = c.metaArith(cmd, out, now)
	}
	return out, false
}

// countCAS counts the outcome of a compare-and-set, as memcached's
// cas_hits, cas_badval and cas_misses.
func (c *Conn) countCAS(r store.Result) {
	switch r {
	case store.Stored:
		c.cnt.casHits.Add(1)
	case store.Exists:
		c.cnt.casBadval.Add(1)
	case store.NotFound:
		c.cnt.casMisses.Add(1)
	}
}

func (c *Conn) countArith(decr bool, r store.Result) {
	switch {
	case decr && r == store.NotFound:
		c.cnt.decrMisses.Add(1)
	case decr && r == store.Stored:
		c.cnt.decrHits.Add(1)
	case r == store.NotFound:
		c.cnt.incrMisses.Add(1)
	case r == store.Stored:
		c.cnt.incrHits.Add(1)
	}
}

func appendResult(out []byte, r store.Result) []byte {
	switch r {
	case store.Stored:
		return append(out, mc.ReplyStored...)
	case store.NotStored:
		return append(out, mc.ReplyNotStored...)
	case store.Exists:
		return append(out, mc.ReplyExists...)
	case store.NotFound:
		return append(out, mc.ReplyNotFound...)
	case store.Deleted:
		return append(out, mc.ReplyDeleted...)
	case store.TooLarge:
		return mc.AppendError(out, mc.ErrTooLarge)
	}
	return append(out, mc.ReplyError...)
}

var modes = [...]store.Mode{
	mc.KindSet: store.ModeSet, mc.KindAdd: store.ModeAdd, mc.KindReplace: store.ModeReplace,
	mc.KindAppend: store.ModeAppend, mc.KindPrepend: store.ModePrepend, mc.KindCas: store.ModeSet,
}

// store runs a text storage command.
func (c *Conn) store(cmd *mc.Command, now time.Time) store.Result {
	h := c.h
	s := h.cfg.Store
	var cas uint64
	if cmd.Kind == mc.KindCas {
		cas = cmd.CAS
		if cas == 0 { // the store reads 0 as "no compare"; memcached compares
			_, _, ok := s.Peek(cmd.Key, nil)
			if !ok {
				c.cnt.casMisses.Add(1)
				return store.NotFound
			}
			c.cnt.casBadval.Add(1)
			return store.Exists
		}
	}
	r, _ := s.Set(cmd.Key, cmd.Data, modes[cmd.Kind], cmd.Flags, mc.Deadline(cmd.Exptime, now.Unix()), cas)
	if cmd.Kind == mc.KindCas {
		c.countCAS(r)
	}
	return r
}

// get runs get, gets, gat and gats. Each value is appended straight into out
// by the store; its VALUE line is then slid in front of it.
func (c *Conn) get(cmd *mc.Command, out []byte, now time.Time) []byte {
	h := c.h
	s := h.cfg.Store
	touch := cmd.Kind == mc.KindGat || cmd.Kind == mc.KindGats
	withCAS := cmd.Kind == mc.KindGets || cmd.Kind == mc.KindGats
	var deadline int64
	if touch {
		deadline = mc.Deadline(cmd.Exptime, now.Unix())
	}
	ks := cmd.Keys()
	for first := true; ; first = false {
		key, ok := ks.Next()
		if !ok {
			break
		}
		if !first && c.udp {
			// UDP: one message per key, empty for a miss; END joins the last
			c.ends = append(c.ends, len(out))
		}
		if touch {
			c.cnt.cmdTouch.Add(1) // memcached counts gat as a touch only
		} else {
			c.cnt.cmdGet.Add(1)
		}
		p := len(out)
		var m store.Meta
		var hit bool
		if touch {
			out, m, hit = s.GetAndTouch(key, deadline, out)
		} else {
			// The value is copied where it goes; its header goes before
			// it. Over UDP a value past the budget is not even copied.
			var n int
			if out, n, m, hit = c.getWithin(key, out); n < 0 {
				c.countGet(true, false)
				return out[:p]
			}
		}
		c.countGet(hit, touch)
		if !hit {
			continue
		}
		// Over UDP a value that would pass the budget is taken back: the
		// datagram stops here.
		c.hdr = mc.AppendValueHeader(c.hdr[:0], key, m.Flags, len(out)-p, m.CAS, withCAS)
		if c.overBudget(out, len(c.hdr)+2) {
			return out[:p]
		}
		out = c.insert(out, p, c.hdr)
		out = append(out, '\r', '\n')
		out = c.flushLarge(out)
	}
	return append(out, mc.ReplyEnd...)
}

// getWithin appends the value of key to out, copying it straight into
// out's spare room. Over UDP a value past the datagram's budget is not
// copied at all: n < 0, and the datagram is marked over.
func (c *Conn) getWithin(key, out []byte) (out2 []byte, n int, m store.Meta, hit bool) {
	s := c.h.cfg.Store
	for {
		room := out[len(out):cap(out)]
		if n, m, hit = s.GetInto(key, room); !hit {
			return out, 0, m, false
		}
		if n <= len(room) {
			return out[:len(out)+n], n, m, true
		}
		if c.overBudget(out, n) {
			return out, -1, m, true
		}
		// It fits the budget but not out's spare room: grow out and read
		// it again (it may have changed meanwhile: then judge that one).
		out = slices.Grow(out, n)
	}
}

// countGet counts one key of a retrieval, as memcached does: a gat as a
// touch only.
func (c *Conn) countGet(hit, touch bool) {
	switch {
	case hit && touch:
		c.cnt.touchHits.Add(1)
	case hit:
		c.cnt.getHits.Add(1)
	case touch:
		c.cnt.touchMisses.Add(1)
	default:
		c.cnt.getMisses.Add(1)
	}
}

// insert slides out[p:] right by len(b) and copies b to out[p:].
func (c *Conn) insert(out []byte, p int, b []byte) []byte {
	n := len(out)
	out = append(out, b...) // grow by len(b)
	copy(out[p+len(b):], out[p:n])
	copy(out[p:], b)
	return out
}
