package memcache

import (
	"bytes"
	"encoding/base64"
)

// Meta holds the flags of a meta command (mg, ms, md, ma). Numeric flag
// arguments are decoded at parse time; the flags that ask for something to
// be returned are replayed in the order the client gave them by Returns.
type Meta struct {
	flags   []byte // the flag tokens as sent, space separated
	present uint64 // one bit per flag letter (A-Z, a-z)

	Quiet   bool   // q: suppress the common reply (EN, HD, NF as memcached does)
	Base64  bool   // b: the key was sent in base64 (Command.Key is decoded)
	Opaque  []byte // O: the opaque token as sent, with its 'O'
	TTL     int32  // T: new exptime (HasTTL)
	HasTTL  bool
	Vivify  int32 // N: autovivify on miss with this exptime (HasVivify)
	HasViv  bool
	Compare uint64 // C: compare CAS (HasCompare)
	HasCmp  bool
	NewCAS  uint64 // E: explicit new CAS (HasNewCAS)
	HasE    bool
	Mode    byte   // M: mode letter; 0 if absent
	Initial uint64 // J: ma initial value on autovivify
	Delta   uint64 // D: ma delta (1 if absent)
	Stale   bool   // I: invalidate (md) / stale-if-older (ms)
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

// The flags memcached 1.6 knows on any meta command; any other letter is
// CLIENT_ERROR invalid flag.
const knownMetaFlags = "bNTRlOPLkstcfvhuqFCMJDIE"

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
	if countTokens(rest)+countTokens(key)+1 >= maxMetaTokens-boolInt(k == KindMetaSet) {
		if k == KindMetaGet {
			return c.fail(ErrFlagsTooLongMg)
		}
		return c.fail(ErrFlagsTooLong)
	}
	if e := c.Meta.parse(rest); e != ErrNone {
		if k == KindMetaDelete || k == KindMetaArithmetic {
			e = ErrInvalidOrDup
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
	if c.Meta.Base64 {
		n, err := base64.StdEncoding.Decode(c.keyBuf[:], key)
		if err != nil || n == 0 || len(key) > (MaxKeyLen+2)/3*4 {
			c.Err = ErrKeyDecode
			if vlen >= 0 {
				c.Swallow = vlen + 2
			}
			return Invalid
		}
		c.RawKey, c.Key = key, c.keyBuf[:n]
	}
	if vlen >= 0 {
		return c.data(vlen, in, maxValue)
	}
	return Complete
}

// maxMetaTokens: a meta line of this many tokens or more (command, key,
// flags; ms counts one less as its length is a token) has "options flags
// too long".
const maxMetaTokens = 20

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

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

func (m *Meta) parse(flags []byte) Error {
	m.Delta = 1
	for {
		var tok []byte
		tok, flags = nextToken(flags)
		if tok == nil {
			return ErrNone
		}
		f := tok[0]
		bit := flagBit(f)
		if bit == 0 || bytes.IndexByte([]byte(knownMetaFlags), f) < 0 {
			return ErrInvalidFlag
		}
		if m.present&bit != 0 {
			return ErrDuplicateFlag
		}
		m.present |= bit
		arg := tok[1:]
		var ok = true
		switch f {
		case 'b':
			m.Base64 = true
		case 'q':
			m.Quiet = true
		case 'O':
			if len(tok) > MaxOpaqueLen {
				return ErrOpaqueTooLong
			}
			m.Opaque = tok
		case 'N':
			m.Vivify, ok = ParseInt32(arg)
			m.HasViv = true
		case 'T':
			m.TTL, ok = ParseInt32(arg)
			m.HasTTL = true
		case 'R':
			_, ok = ParseInt32(arg)
		case 'F':
			if _, ok = ParseFlags(arg); !ok {
				return ErrBadFormat
			}
		case 'C':
			m.Compare, ok = ParseUint64(arg)
			m.HasCmp = true
		case 'E':
			m.NewCAS, ok = ParseUint64(arg)
			m.HasE = true
		case 'M':
			if len(tok) != 2 {
				return ErrMLength
			}
			m.Mode = tok[1]
		case 'J':
			if m.Initial, ok = ParseUint64(arg); !ok {
				return ErrInitial
			}
		case 'D':
			if m.Delta, ok = ParseUint64(arg); !ok {
				return ErrDeltaVal
			}
		case 'I':
			m.Stale = true
		}
		if !ok {
			return ErrBadToken
		}
	}
}
