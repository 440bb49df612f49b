package mcserve

import (
	"encoding/base64"
	"strconv"
	"time"

	mc "github.com/rebound-net/rebound/codec/memcache"
	"github.com/rebound-net/rebound/userspace/store"
)

// appendReturnFlags writes the return flags a meta command asked for, in
// the order given. m describes the item (hit), ttl its remaining lifetime,
// la the seconds since its last access.
func appendReturnFlags(out []byte, cmd *mc.Command, m *store.Meta, now int64, value bool) []byte {
	rf := cmd.Meta.Returns()
	for {
		f, tok, ok := rf.Next()
		if !ok {
			return out
		}
		switch f {
		case 'O':
			out = mc.AppendMetaFlagBytes(out, 0, tok)
		case 'k':
			// With b, the decoded key encoded again (memcached's
			// canonical form, whatever the client sent), then b: a
			// binary key could hold "\r\n". An mg hit echoes the key as
			// the item was stored (with b or not), as memcached does;
			// everything else as the command sent it.
			bin := cmd.Meta.Base64
			if m != nil && cmd.Kind == mc.KindMetaGet {
				bin = m.KeyBinary
			}
			if bin {
				out = mc.AppendMetaFlagBytes(out, 'k', nil)
				out = base64.StdEncoding.AppendEncode(out, cmd.Key)
				out = mc.AppendMetaFlagBytes(out, 'b', nil)
			} else {
				out = mc.AppendMetaFlagBytes(out, 'k', cmd.Key)
			}
		}
		if m == nil {
			continue
		}
		switch f {
		case 'c':
			out = mc.AppendMetaFlag(out, 'c', m.CAS)
		case 'f':
			if value || cmd.Kind == mc.KindMetaGet {
				out = mc.AppendMetaFlag(out, 'f', uint64(m.Flags))
			}
		case 'h':
			if cmd.Kind == mc.KindMetaGet {
				h := uint64(0)
				if m.Fetched {
					h = 1
				}
				out = mc.AppendMetaFlag(out, 'h', h)
			}
		case 'l':
			if cmd.Kind == mc.KindMetaGet {
				out = mc.AppendMetaFlagInt(out, 'l', max(now-m.LastAccess, 0))
			}
		case 's':
			if cmd.Kind == mc.KindMetaGet {
				out = mc.AppendMetaFlag(out, 's', uint64(m.Size))
			}
		case 't':
			if cmd.Kind == mc.KindMetaGet || cmd.Kind == mc.KindMetaArithmetic {
				out = mc.AppendMetaFlagInt(out, 't', mc.TTL(m.Exptime, now))
			}
		}
	}
}

func (c *Conn) metaGet(cmd *mc.Command, out []byte, now time.Time) []byte {
	h := c.h
	s := h.cfg.Store
	if cmd.Meta.LongOpaque {
		return c.metaGetLongOpaque(cmd, out, now)
	}
	c.cnt.cmdGet.Add(1)
	p := len(out)
	var m store.Meta
	var hit bool
	if cmd.Meta.HasTTL {
		c.cnt.cmdTouch.Add(1)
		out, m, hit = s.GetAndTouch(cmd.Key, mc.Deadline(cmd.Meta.TTL, now.Unix()), out)
		if hit {
			c.cnt.touchHits.Add(1)
		} else {
			c.cnt.touchMisses.Add(1)
		}
	} else {
		out, m, hit = s.Get(cmd.Key, out)
	}
	won := false
	if !hit && cmd.Meta.HasViv {
		// N: a miss creates the item, empty, and the client that created
		// it is told to fill it (W); the others find it won (Z).
		c.cnt.getMisses.Add(1)
		exp := mc.Deadline(cmd.Meta.Vivify, now.Unix())
		if cmd.Meta.HasTTL && flagBefore(cmd, 'N', 'T') {
			exp = mc.Deadline(cmd.Meta.TTL, now.Unix()) // the later of N and T sets it
		}
		r, cas := s.SetMeta(cmd.Key, nil, store.ModeAdd, 0, exp, 0, store.SetOptions{Won: true, KeyBinary: cmd.Meta.Base64})
		if r == store.Stored {
			won = true
			m = store.Meta{CAS: cas, Exptime: exp, LastAccess: now.Unix(), KeyBinary: cmd.Meta.Base64}
			s.Fetch(cmd.Key) // this mg reads it: fetched from now on (h1 next time), as memcached counts it
		} else if out, m, hit = s.Get(cmd.Key, out); !hit { // created meanwhile by another, and gone
			return metaMiss(cmd, out, now)
		}
	} else if !hit {
		c.cnt.getMisses.Add(1)
		return metaMiss(cmd, out, now)
	}
	if !won {
		c.cnt.getHits.Add(1)
	}
	// Stampede protection: Z when a client has been told to recache the
	// item already, X when it is stale, W to the one client that wins the
	// recache of a stale item or (R) of one whose TTL left is below R's.
	z := m.Won
	if !won && !m.Won && (m.Stale || cmd.Meta.HasRecache) {
		var recache int64
		if cmd.Meta.HasRecache {
			recache = mc.Deadline(cmd.Meta.Recache, now.Unix())
		}
		if m.Stale || m.Exptime != 0 && m.Exptime < recache {
			won, z = s.Claim(cmd.Key, m.CAS, recache)
			if !won && !z && m.Stale && cmd.Meta.HasTTL && mc.Deadline(cmd.Meta.TTL, now.Unix()) <= now.Unix() {
				// this mg's own T expired the stale item: memcached
				// still gives it the win it had in hand
				won = true
			}
		}
	}
	value := cmd.Meta.Has('v')
	hdr := c.hdr[:0]
	if value {
		hdr = mc.AppendMetaValue(hdr, len(out)-p)
	} else {
		out = out[:p]
		hdr = mc.AppendMetaCode(hdr, mc.MetaHit)
	}
	hdr = appendReturnFlags(hdr, cmd, &m, now.Unix(), value)
	if z {
		hdr = mc.AppendMetaFlagBytes(hdr, 'Z', nil)
	}
	if m.Stale {
		hdr = mc.AppendMetaFlagBytes(hdr, 'X', nil)
	}
	if won {
		hdr = mc.AppendMetaFlagBytes(hdr, 'W', nil)
	}
	hdr = mc.AppendMetaEnd(hdr)
	c.hdr = hdr
	out = c.insert(out, p, hdr)
	if value {
		out = append(out, '\r', '\n')
	}
	return out
}

// metaMiss answers an mg that missed: EN and its O and k flags, or nothing
// with q.
func metaMiss(cmd *mc.Command, out []byte, now time.Time) []byte {
	if cmd.Meta.Quiet {
		return out
	}
	out = mc.AppendMetaCode(out, mc.MetaMiss)
	out = appendReturnFlags(out, cmd, nil, now.Unix(), false)
	return mc.AppendMetaEnd(out)
}

// metaGetLongOpaque runs an mg whose O token is too long as memcached
// does: it refuses the token only while writing the reply, after a T
// given before the O has changed the TTL, and after a plain read (no h, l
// or T: memcached then bumps the item as it fetches it) has marked the
// item fetched.
func (c *Conn) metaGetLongOpaque(cmd *mc.Command, out []byte, now time.Time) []byte {
	s := c.h.cfg.Store
	if _, _, hit := s.Peek(cmd.Key, nil); hit {
		m := &cmd.Meta
		switch {
		case m.HasTTL && flagBefore(cmd, 'T', 'O'):
			s.Touch(cmd.Key, mc.Deadline(m.TTL, now.Unix()))
		case !m.Has('h') && !m.Has('l') && !m.HasTTL:
			s.Fetch(cmd.Key)
		}
	}
	return mc.AppendError(out, mc.ErrOpaqueTooLong)
}

// flagBefore reports whether flag a comes before flag b in the command.
func flagBefore(cmd *mc.Command, a, b byte) bool {
	rf := cmd.Meta.Returns()
	for {
		f, _, ok := rf.Next()
		if !ok || f == b {
			return false
		}
		if f == a {
			return true
		}
	}
}

func (c *Conn) metaSet(cmd *mc.Command, out []byte, now time.Time) []byte {
	h := c.h
	s := h.cfg.Store
	c.cnt.cmdSet.Add(1)
	mode := store.ModeSet
	switch cmd.Meta.Mode { // the parser refuses any other
	case 'E':
		mode = store.ModeAdd
	case 'A':
		mode = store.ModeAppend
	case 'P':
		mode = store.ModePrepend
	case 'R':
		mode = store.ModeReplace
	}
	var exp int64
	if cmd.Meta.HasTTL {
		exp = mc.Deadline(cmd.Meta.TTL, now.Unix())
	}
	// C makes set and replace a cas (C0 never matches); append and
	// prepend compare only a C other than 0, and answer NS on a miss; add
	// ignores it. So memcached's store does.
	cas := cmd.Meta.Compare
	var r store.Result
	var newCAS uint64
	isCAS := cmd.Meta.HasCmp && (mode == store.ModeSet || mode == store.ModeReplace)
	// I with C: a CAS older than the item's stores the value as stale
	// (memcached's "set-to-invalid"): readers get it flagged X until a
	// fresh set.
	opts := store.SetOptions{KeyBinary: cmd.Meta.Base64, Invalidate: isCAS && cmd.Meta.Stale}
	switch {
	case isCAS && cas == 0:
		if _, _, ok := s.Peek(cmd.Key, nil); ok {
			r = store.Exists
		} else {
			r = store.NotFound
		}
	case mode == store.ModeAdd:
		r, newCAS = s.SetMeta(cmd.Key, cmd.Data, mode, cmd.Flags, exp, 0, opts)
	default:
		r, newCAS = s.SetMeta(cmd.Key, cmd.Data, mode, cmd.Flags, exp, cas, opts)
		if r == store.NotFound && !isCAS {
			r = store.NotStored // append/prepend with C on a missing key
		}
	}
	if isCAS {
		c.countCAS(r)
	}
	var code string
	switch r {
	case store.Stored:
		if cmd.Meta.Quiet {
			return out
		}
		code = mc.MetaHit
	case store.NotStored:
		code = mc.MetaNotStored
	case store.Exists:
		code = mc.MetaExists
	case store.NotFound:
		code = mc.MetaNotFound
	default:
		return mc.AppendError(out, mc.ErrTooLarge)
	}
	out = mc.AppendMetaCode(out, code)
	m := store.Meta{CAS: newCAS}
	out = appendReturnFlags(out, cmd, &m, now.Unix(), false)
	return mc.AppendMetaEnd(out)
}

func (c *Conn) metaDelete(cmd *mc.Command, out []byte, now time.Time) []byte {
	h := c.h
	cas := cmd.Meta.Compare
	var r store.Result
	if cmd.Meta.HasCmp && cas == 0 {
		if _, _, ok := h.cfg.Store.Peek(cmd.Key, nil); ok {
			r = store.Exists
		} else {
			r = store.NotFound
		}
	} else if cmd.Meta.Stale {
		// I: the item stays, stale, with a new CAS (and T's TTL): the
		// next reader wins its recache (W), the others read it stale.
		var exp *int64
		if cmd.Meta.HasTTL {
			e := mc.Deadline(cmd.Meta.TTL, now.Unix())
			exp = &e
		}
		r = h.cfg.Store.Invalidate(cmd.Key, cas, exp)
	} else {
		r = h.cfg.Store.Delete(cmd.Key, cas)
	}
	var code string
	switch r {
	case store.Deleted:
		if !cmd.Meta.Stale {
			c.cnt.deleteHits.Add(1)
		}
		if cmd.Meta.Quiet {
			return out
		}
		code = mc.MetaHit
	case store.Exists:
		code = mc.MetaExists
	default:
		c.cnt.deleteMisses.Add(1)
		code = mc.MetaNotFound
	}
	out = mc.AppendMetaCode(out, code)
	out = appendReturnFlags(out, cmd, nil, 0, false)
	return mc.AppendMetaEnd(out)
}

func (c *Conn) metaArith(cmd *mc.Command, out []byte, now time.Time) []byte {
	h := c.h
	s := h.cfg.Store
	decr := false
	switch cmd.Meta.Mode {
	case 0, 'I', '+':
	case 'D', '-':
		decr = true
	default:
		return mc.AppendError(out, mc.ErrInvalidMaMode)
	}
	var viv *store.Vivify
	var vv store.Vivify
	if cmd.Meta.HasViv {
		vv = store.Vivify{Initial: cmd.Meta.Initial, Exptime: mc.Deadline(cmd.Meta.Vivify, now.Unix())}
		if cmd.Meta.HasTTL && flagBefore(cmd, 'N', 'T') {
			vv.Exptime = mc.Deadline(cmd.Meta.TTL, now.Unix()) // the later of N and T sets it, as memcached walks them
		}
		viv = &vv
	}
	var exp *int64
	if cmd.Meta.HasTTL {
		e := mc.Deadline(cmd.Meta.TTL, now.Unix()) // T: a new TTL, on a hit and on vivify
		exp = &e
	}
	v, cas, r := s.IncrMeta(cmd.Key, cmd.Meta.Delta, decr, viv, cmd.Meta.Compare, exp)
	c.countArith(decr, r)
	if cmd.Meta.LongOpaque && r != store.NonNumeric {
		// memcached refuses the token as it writes the reply, after the
		// change
		return mc.AppendError(out, mc.ErrOpaqueTooLong)
	}
	var code string
	switch r {
	case store.Stored:
		if cmd.Meta.Quiet {
			return out
		}
		if cmd.Meta.Has('v') {
			var num [20]byte
			n := mc.AppendUint(num[:0], v)
			out = mc.AppendMetaValue(out, len(n))
			m := c.arithMeta(cmd, cas, now)
			out = appendReturnFlags(out, cmd, &m, now.Unix(), true)
			out = mc.AppendMetaEnd(out)
			return mc.AppendData(out, n)
		}
		code = mc.MetaHit
		m := c.arithMeta(cmd, cas, now)
		out = mc.AppendMetaCode(out, code)
		out = appendReturnFlags(out, cmd, &m, now.Unix(), false)
		return mc.AppendMetaEnd(out)
	case store.NonNumeric:
		return mc.AppendError(out, mc.ErrNonNumeric)
	case store.Exists:
		code = mc.MetaExists
	default:
		code = mc.MetaNotFound
	}
	out = mc.AppendMetaCode(out, code)
	out = appendReturnFlags(out, cmd, nil, now.Unix(), false)
	return mc.AppendMetaEnd(out)
}

// arithMeta describes the item ma changed, for its t and c flags.
func (c *Conn) arithMeta(cmd *mc.Command, cas uint64, now time.Time) store.Meta {
	m := store.Meta{CAS: cas}
	if cmd.Meta.Has('t') {
		if _, pm, ok := c.h.cfg.Store.Peek(cmd.Key, nil); ok {
			m.Exptime = pm.Exptime
		}
	}
	return m
}

// metaDebug answers "me <key>" as memcached does, without touching the
// item: "ME <key> exp=<ttl> la=<seconds since access> cas=<cas>
// fetch=<yes|no> cls=<class> size=<bytes>", or EN. Rebound has no slab
// classes: cls is 1, the one class "stats slabs" reports; size is what the
// store counts for the item (key, value and its per-item overhead), not
// memcached's item header arithmetic. exp is the TTL remaining (-1: none);
// memcached 1.6.18 prints it negated, a bug later versions fixed.
func (c *Conn) metaDebug(cmd *mc.Command, out []byte, now time.Time) []byte {
	_, m, ok := c.h.cfg.Store.Peek(cmd.Key, nil)
	if !ok {
		return mc.AppendMetaEnd(mc.AppendMetaCode(out, mc.MetaMiss))
	}
	out = append(out, "ME "...)
	if m.KeyBinary { // as memcached: the key as the item holds it
		out = base64.StdEncoding.AppendEncode(out, cmd.Key)
	} else {
		out = append(out, cmd.Key...)
	}
	out = append(out, " exp="...)
	out = strconv.AppendInt(out, mc.TTL(m.Exptime, now.Unix()), 10)
	out = append(out, " la="...)
	out = strconv.AppendInt(out, max(now.Unix()-m.LastAccess, 0), 10)
	out = append(out, " cas="...)
	out = strconv.AppendUint(out, m.CAS, 10)
	if m.Fetched {
		out = append(out, " fetch=yes"...)
	} else {
		out = append(out, " fetch=no"...)
	}
	out = append(out, " cls=1 size="...)
	out = strconv.AppendInt(out, int64(len(cmd.Key)+m.Size+store.ItemOverhead), 10)
	return append(out, '\r', '\n')
}
