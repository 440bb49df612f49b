package memcache

import (
	"bytes"
	"math"
	"strconv"
)

// The numeric rules below reproduce how memcached reads numbers out of a
// command line (strtoull/strtol followed by its own range checks), because
// clients see the consequences: flags wrap to 32 bits, exptime and lengths
// wrap to a signed 32-bit integer, and a minus sign is refused only where
// the value would otherwise come out negative.

// isSpace is C's isspace in the C locale, which strtoul skips before a
// number and which, right after one, ends it.
func isSpace(b byte) bool { return b == ' ' || (b >= '\t' && b <= '\r') }

// parseMagnitude reads a number as strtoull does inside memcached's
// safe_strto* checks: leading white space (tab, \v, \f, \r, \n), an
// optional sign, at least one decimal digit, then the end of the token or
// a white-space byte, after which the rest of the token is ignored
// ("1\tjunk" reads as 1). Overflow of 64 bits fails.
func parseMagnitude(tok []byte) (mag uint64, neg, ok bool) {
	i := 0
	for i < len(tok) && isSpace(tok[i]) {
		i++
	}
	if i < len(tok) && (tok[i] == '+' || tok[i] == '-') {
		neg = tok[i] == '-'
		i++
	}
	start := i
	for ; i < len(tok); i++ {
		d := tok[i] - '0'
		if d > 9 {
			break
		}
		if mag > (math.MaxUint64-uint64(d))/10 {
			return 0, false, false
		}
		mag = mag*10 + uint64(d)
	}
	if i == start || (i < len(tok) && !isSpace(tok[i])) {
		return 0, false, false
	}
	return mag, neg, true
}

// ParseUint64 reads an unsigned 64-bit number as memcached does for deltas,
// CAS values and initial values: a value that would read as negative when
// signed is refused if the token has a minus sign.
func ParseUint64(tok []byte) (uint64, bool) {
	mag, neg, ok := parseMagnitude(tok)
	if !ok {
		return 0, false
	}
	v := mag
	if neg {
		v = -mag
	}
	if int64(v) < 0 && bytes.IndexByte(tok, '-') >= 0 { // anywhere in the token, as strchr
		return 0, false
	}
	return v, true
}

// ParseFlags reads client flags: an unsigned number truncated to 32 bits.
func ParseFlags(tok []byte) (uint32, bool) {
	v, ok := ParseUint64(tok)
	return uint32(v), ok
}

// ParseInt32 reads a signed number that must fit 64 bits and is then
// truncated to 32 bits, as memcached does for exptime, lengths and TTLs.
func ParseInt32(tok []byte) (int32, bool) {
	mag, neg, ok := parseMagnitude(tok)
	if !ok {
		return 0, false
	}
	if neg {
		if mag > 1<<63 {
			return 0, false
		}
		return int32(-int64(mag)), true
	}
	if mag > math.MaxInt64 {
		return 0, false
	}
	return int32(int64(mag)), true
}

// AppendUint appends v in decimal (strconv's, which allocates nothing
// when dst has room).
func AppendUint(dst []byte, v uint64) []byte { return strconv.AppendUint(dst, v, 10) }

// AppendInt appends v in decimal.
func AppendInt(dst []byte, v int64) []byte { return strconv.AppendInt(dst, v, 10) }
