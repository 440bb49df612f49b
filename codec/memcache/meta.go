package memcache

import (
	"bytes"
)

// Meta holds the flags of a meta command (mg, ms, md, ma). Numeric flag
// arguments are decoded at parse time; the flags that ask for something to
// be returned are replayed in the order the client gave them by Returns.
type Meta struct {
	flags   []byte // the flag tokens as sent, space separated
	present uint64 // one bit per flag letter (A-Z, a-z)

	Quiet      bool   // q: suppress the common reply (EN, HD, NF as memcached does)
	Base64     bool   // b: the key was sent in base64 (Command.Key is decoded)
	Opaque     []byte // O: the opaque token as sent, with its 'O'
	TTL        int32  // T: new exptime (HasTTL)
	HasTTL     bool
	Vivify     int32 // N: autovivify on miss with this exptime (HasVivify)
	HasViv     bool
	Compare    uint64 // C: compare CAS (HasCompare)
	HasCmp     bool
	Mode       byte   // M: mode letter; 0 if absent
	Initial    uint64 // J: ma initial value on autovivify
	Delta      uint64 // D: ma delta (1 if absent)
	Stale      bool   // I: invalidate (md) / stale-if-older (ms)
	Recache    int32  // R: win the recache when the TTL left is below this (HasRecache)
	HasRecache bool
	// LongOpaque: mg or ma has an O token longer than MaxOpaqueLen, which
	// memcached refuses only when it writes the reply, after running the
	// command: the executor runs it, then answers ErrOpaqueTooLong.
	LongOpaque bool
}

func flagBit(f byte) uint64 {
	switch {
	case f >= 'a' && f <= 'z':
		return 1 << (f - 'a')
	case f >= 'A' && f <= 'Z':
		return 1 << (26 + f - 'A')
	}
	return 0
}

// Has reports whether flag f was given.
func (m *Meta) Has(f byte) bool { return m.present&flagBit(f) != 0 }

// ReturnFlags iterates over the flag tokens in the order given.
type ReturnFlags struct{ rest []byte }

// Returns iterates over the flag tokens of the command in order; callers
// pick the ones that ask for a value back (c f h k l O s t b) and skip the
// rest.
func (m *Meta) Returns() ReturnFlags { return ReturnFlags{m.flags} }

// Next returns the next flag letter and its whole token.
func (r *ReturnFlags) Next() (flag byte, tok []byte, ok bool) {
	tok, r.rest = nextToken(r.rest)
	if tok == nil {
		return 0, nil, false
	}
	return tok[0], tok, true
}

// MaxOpaqueLen is the longest O token memcached takes, its 'O' included.
const MaxOpaqueLen = 32

// The flags memcached 1.6.18 knows on any meta command; any other letter
// (E, the explicit CAS of later versions, included) is CLIENT_ERROR
// invalid flag.
const knownMetaFlags = "bNTRlOPLkstcfvhuqFCMJDI"

// MetaError lines not in the Error set of the text protocol.
const (
	ErrMLength  Error = numErrors + iota // CLIENT_ERROR incorrect length for M token
	ErrInitial                           // CLIENT_ERROR invalid numeric initial value
	ErrDeltaVal                          // CLIENT_ERROR invalid numeric delta value
	numAllErrors
)

var metaErrorReplies = [...]string{
	"CLIENT_ERROR incorrect length for M token\r\n",
	"CLIENT_ERROR invalid numeric initial value\r\n",
	"CLIENT_ERROR invalid numeric delta value\r\n",
}

func (c *Command) parseMeta(k Kind, rest, in []byte, maxValue int) Status {
	c.Kind = k
	key, rest := nextToken(rest)
	if key == nil {
		return c.fail(ErrUnknown)
	}
	if len(key) > MaxKeyLen {
		return c.fail(ErrBadFormat)
	}
	c.Key, c.RawKey = key, key
	// memcached's order: too many tokens, then (ms) the length, then the
	// flags; an error before the length is known swallows nothing.
	if countTokens(rest)+3 > maxMetaTokens {
		if k == KindMetaGet {
			return c.fail(ErrFlagsTooLongMg)
		}
		return c.fail(ErrFlagsTooLong)
	}
	vlen := -1
	if k == KindMetaSet {
		var lt []byte
		lt, rest = nextToken(rest)
		v, ok := ParseInt32(lt)
		if lt == nil || !ok || v < 0 || int64(v) > 1<<31-1-2 {
			return c.fail(ErrBadFormat)
		}
		vlen = int(v)
	}
	c.Meta.flags = rest
	e := c.parseFlags(rest)
	if e == ErrNone {
		e = c.lateMetaError()
	}
	if e != ErrNone {
		if k == KindMetaDelete || k == KindMetaArithmetic {
			if e != ErrOpaqueTooLong {
				e = ErrInvalidOrDup // memcached's md and ma say only this
			}
		}
		c.Err = e
		if vlen >= 0 {
			c.Swallow = vlen + 2
		}
		return Invalid
	}
	c.NoReply = c.Meta.Quiet
	if k == KindMetaSet && c.Meta.Has('F') {
		c.Flags, _ = ParseFlags(c.Meta.token('F'))
	}
	if vlen >= 0 {
		return c.data(vlen, in, maxValue)
	}
	return Complete
}

// lateMetaError is what memcached finds after the flags parse: for ms an
// invalid mode, else an opaque token that is too long; for md a long
// opaque token. mg and ma find a long opaque token only as they write
// their reply, after the command has run: Meta.LongOpaque tells the
// executor.
func (c *Command) lateMetaError() Error {
	m := &c.Meta
	long := len(m.Opaque) > MaxOpaqueLen
	switch c.Kind {
	case KindMetaSet:
		switch m.Mode {
		case 0, 'E', 'A', 'P', 'R', 'S':
		default:
			return ErrInvalidMode
		}
		if long {
			return ErrOpaqueTooLong
		}
	case KindMetaDelete:
		if long {
			return ErrOpaqueTooLong
		}
	default:
		m.LongOpaque = long
	}
	return ErrNone
}

// maxMetaTokens: a meta line of this many tokens or more (command, key,
// flags; ms counts one less as its length is a token) has "options flags
// too long".
const maxMetaTokens = 20

func (m *Meta) token(f byte) []byte {
	r := m.Returns()
	for {
		g, tok, ok := r.Next()
		if !ok {
			return nil
		}
		if g == f {
			return tok[1:]
		}
	}
}

// parseFlags reads the flag tokens as memcached's meta flag pass does: a
// repeated flag, or any byte from 127 up, is "duplicate flag" and an
// unknown flag "invalid flag", both at once; a bad argument is noted and
// the pass goes on, so that of several the last one's error is answered
// (a bad F has none of its own: "bad command line format" unless another
// was noted). The b flag decodes the key where it stands.
func (c *Command) parseFlags(flags []byte) Error {
	m := &c.Meta
	m.Delta = 1
	e, failed := ErrNone, false
	bad := func(err Error) {
		failed = true
		if err != ErrNone {
			e = err
		}
	}
	for {
		var tok []byte
		tok, flags = nextToken(flags)
		if tok == nil {
			break
		}
		f := tok[0]
		bit := flagBit(f)
		if f >= 127 || m.present&bit != 0 {
			return ErrDuplicateFlag
		}
		if bit == 0 || bytes.IndexByte([]byte(knownMetaFlags), f) < 0 {
			return ErrInvalidFlag
		}
		m.present |= bit
		arg := tok[1:]
		var ok bool
		switch f {
		case 'b':
			m.Base64 = true
			n := decodeBase64(c.keyBuf[:], c.RawKey)
			if n == 0 {
				bad(ErrKeyDecode)
			}
			c.Key = c.keyBuf[:n]
		case 'q':
			m.Quiet = true
		case 'O':
			m.Opaque = tok
		case 'N':
			if m.Vivify, ok = ParseInt32(arg); !ok {
				bad(ErrBadToken)
			}
			m.HasViv = true
		case 'T':
			if m.TTL, ok = ParseInt32(arg); !ok {
				bad(ErrBadToken)
			}
			m.HasTTL = true
		case 'R':
			if m.Recache, ok = ParseInt32(arg); !ok {
				bad(ErrBadToken)
			}
			m.HasRecache = true
		case 'F':
			if _, ok = ParseFlags(arg); !ok {
				bad(ErrNone)
			}
		case 'C':
			if m.Compare, ok = ParseUint64(arg); !ok {
				bad(ErrBadToken)
			}
			m.HasCmp = true
		case 'M':
			if len(tok) != 2 {
				bad(ErrMLength)
			} else {
				m.Mode = tok[1]
			}
		case 'J':
			if m.Initial, ok = ParseUint64(arg); !ok {
				bad(ErrInitial)
			}
		case 'D':
			if m.Delta, ok = ParseUint64(arg); !ok {
				bad(ErrDeltaVal)
			}
		case 'I':
			m.Stale = true
		}
	}
	if !failed {
		return ErrNone
	}
	if e == ErrNone {
		return ErrBadFormat
	}
	return e
}

// decodeBase64 decodes a key as memcached's base64_decode does, into dst,
// and returns its length, 0 if it cannot be decoded. It is more lenient
// than encoding/base64: bytes outside the alphabet are skipped, and
// decoding stops after the first group with padding; but the number of
// alphabet bytes ('=' included) must be a non-zero multiple of 4 and a
// group may not end in three '='.
func decodeBase64(dst, src []byte) int {
	count := 0
	for _, b := range src {
		if b64Value(b) >= 0 {
			count++
		}
	}
	if count == 0 || count%4 != 0 || count/4*3 > len(dst) {
		return 0
	}
	n, got, pad := 0, 0, 0
	var block [4]byte
	for _, b := range src {
		v := b64Value(b)
		if v < 0 {
			continue
		}
		if b == '=' {
			pad++
		}
		block[got] = byte(v)
		got++
		if got < 4 {
			continue
		}
		dst[n] = block[0]<<2 | block[1]>>4
		dst[n+1] = block[1]<<4 | block[2]>>2
		dst[n+2] = block[2]<<6 | block[3]
		n += 3
		got = 0
		if pad > 0 {
			if pad > 2 {
				return 0
			}
			return n - pad
		}
	}
	return n
}

// b64Value is a byte's value in the standard base64 alphabet, 0 for the
// padding '=', -1 for a byte outside it.
func b64Value(b byte) int {
	switch {
	case b >= 'A' && b <= 'Z':
		return int(b - 'A')
	case b >= 'a' && b <= 'z':
		return int(b-'a') + 26
	case b >= '0' && b <= '9':
		return int(b-'0') + 52
	case b == '+':
		return 62
	case b == '/':
		return 63
	case b == '=':
		return 0
	}
	return -1
}
