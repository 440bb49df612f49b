package memcache

import "bytes"

// Kind is the command a line names.
type Kind uint8

// Command kinds.
const (
	KindNone Kind = iota
	KindGet
	KindGets
	KindGat
	KindGats
	KindSet
	KindAdd
	KindReplace
	KindAppend
	KindPrepend
	KindCas
	KindDelete
	KindIncr
	KindDecr
	KindTouch
	KindFlushAll
	KindVersion
	KindVerbosity
	KindQuit
	KindStats
	KindMetaGet
	KindMetaSet
	KindMetaDelete
	KindMetaArithmetic
	KindMetaNoop
	KindMetaDebug
	numKinds
)

var kindNames = [numKinds]string{"none", "get", "gets", "gat", "gats", "set", "add", "replace",
	"append", "prepend", "cas", "delete", "incr", "decr", "touch", "flush_all", "version",
	"verbosity", "quit", "stats", "mg", "ms", "md", "ma", "mn", "me"}

func (k Kind) String() string {
	if k < numKinds {
		return kindNames[k]
	}
	return "invalid"
}

// IsRetrieval reports get, gets, gat and gats: commands with a key list.
func (k Kind) IsRetrieval() bool { return k >= KindGet && k <= KindGats }

// IsStorage reports the text storage commands, which carry a data block.
func (k Kind) IsStorage() bool { return k >= KindSet && k <= KindCas }

// Status is the outcome of Parse.
type Status uint8

const (
	// Complete: Command holds a whole command of Consumed bytes.
	Complete Status = iota + 1
	// NeedMore: the command is not all there. Need is the total number of
	// bytes it takes when known (a storage line has been read: line, data
	// and \r\n), else 0: no newline yet.
	NeedMore
	// Invalid: Err says what to answer (unless NoReply) and Consumed how
	// much to drop; then Swallow more bytes are discarded as they arrive
	// (the data block of a value that is too large), and the connection is
	// closed if Err.Closes().
	Invalid
)

// MaxKeyLen is the longest key memcached accepts.
const MaxKeyLen = 250

// MaxLineNoNewline is how many bytes memcached buffers without finding a
// newline before it closes the connection (a line starting with "get " or
// "gets " is exempt: multi-gets may be long).
const MaxLineNoNewline = 2048

// DefaultMaxValue is memcached's default item size limit (-I 1m).
const DefaultMaxValue = 1 << 20

// Command is one parsed command. Byte slices are views into the buffer
// given to Parse, valid until the caller reuses it. A Command is meant to be
// reused: Parse resets it.
type Command struct {
	Kind Kind
	Key  []byte // the key; for retrievals the first key
	// RawKey is a meta command's key as sent: with the b flag its base64
	// form (Key is then the decoded key), else the same as Key. Replies
	// echo this one (the k flag), never the decoded bytes.
	RawKey   []byte
	Flags    uint32 // client flags of a storage command
	Exptime  int32  // exptime as sent (touch, gat, storage; flush_all delay)
	CAS      uint64 // cas unique of cas
	Delta    uint64 // incr/decr amount
	Data     []byte // data block of a storage command or ms, without \r\n
	NoReply  bool   // noreply (text) or q (meta: see Meta.Quiet)
	Err      Error
	Consumed int // bytes of the input this command (or error) takes
	Need     int // NeedMore: total bytes needed, 0 if unknown
	Swallow  int // Invalid: bytes to discard after Consumed
	Meta     Meta

	keys   []byte // retrievals: the key list, from the first key
	keyBuf [MaxKeyLen]byte
}

// Keys iterates over the keys of a retrieval command without allocating.
type Keys struct{ rest []byte }

// Keys returns an iterator over the keys of get, gets, gat or gats.
func (c *Command) Keys() Keys { return Keys{c.keys} }

// Next returns the next key, or false at the end.
func (k *Keys) Next() ([]byte, bool) {
	tok, rest := nextToken(k.rest)
	k.rest = rest
	return tok, tok != nil
}

// nextToken returns the next space-separated token and the rest.
func nextToken(b []byte) (tok, rest []byte) {
	i := 0
	for i < len(b) && b[i] == ' ' {
		i++
	}
	if i == len(b) {
		return nil, nil
	}
	j := i
	for j < len(b) && b[j] != ' ' {
		j++
	}
	return b[i:j], b[j:]
}

func countTokens(b []byte) int {
	n := 0
	for {
		var tok []byte
		tok, b = nextToken(b)
		if tok == nil {
			return n
		}
		n++
	}
}

// ValidKey reports whether k is a key memcached accepts on the text
// protocol: 1 to 250 bytes. Spaces cannot be part of a token and memcached
// does not check for control characters, so neither does this.
func ValidKey(k []byte) bool { return len(k) > 0 && len(k) <= MaxKeyLen }

var (
	tokNoreply = []byte("noreply")
)

// Parse reads the first command in in. maxValue is the largest data block
// accepted (DefaultMaxValue if <= 0); a larger one is refused with
// ErrTooLarge and swallowed. Parse never allocates.
func Parse(in []byte, maxValue int, c *Command) Status {
	*c = Command{Meta: Meta{}}
	if maxValue <= 0 {
		maxValue = DefaultMaxValue
	}
	nl := bytes.IndexByte(in, '\n')
	if nl < 0 {
		if len(in) > MaxLineNoNewline {
			p := in
			for len(p) > 0 && p[0] == ' ' {
				p = p[1:]
			}
			if len(in)-len(p) > 100 || !(bytes.HasPrefix(p, []byte("get ")) || bytes.HasPrefix(p, []byte("gets "))) {
				c.Err = ErrLineTooLong
				c.Consumed = len(in)
				return Invalid
			}
		}
		return NeedMore
	}
	c.Consumed = nl + 1
	line := in[:nl]
	if len(line) > 1 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	// memcached reads the line as a C string: a NUL ends it, and what
	// follows up to the newline is ignored (the data block of a storage
	// command is still counted from the newline).
	if i := bytes.IndexByte(line, 0); i >= 0 {
		line = line[:i]
	}
	name, rest := nextToken(line)
	switch string(name) {
	case "get":
		return c.parseRetrieval(KindGet, rest)
	case "gets":
		return c.parseRetrieval(KindGets, rest)
	case "gat":
		return c.parseGat(KindGat, rest)
	case "gats":
		return c.parseGat(KindGats, rest)
	case "set":
		return c.parseStorage(KindSet, rest, in, maxValue)
	case "add":
		return c.parseStorage(KindAdd, rest, in, maxValue)
	case "replace":
		return c.parseStorage(KindReplace, rest, in, maxValue)
	case "append":
		return c.parseStorage(KindAppend, rest, in, maxValue)
	case "prepend":
		return c.parseStorage(KindPrepend, rest, in, maxValue)
	case "cas":
		return c.parseStorage(KindCas, rest, in, maxValue)
	case "delete":
		return c.parseDelete(rest)
	case "incr":
		return c.parseArith(KindIncr, rest)
	case "decr":
		return c.parseArith(KindDecr, rest)
	case "touch":
		return c.parseTouch(rest)
	case "flush_all":
		return c.parseFlushAll(rest)
	case "version":
		// memcached answers VERSION whatever follows, noreply included.
		return c.simple(KindVersion, rest, 0, len(rest))
	case "verbosity":
		return c.parseVerbosity(rest)
	case "quit":
		return c.simple(KindQuit, rest, 0, len(rest)) // closes whatever follows
	case "stats":
		c.Kind = KindStats
		c.keys = rest // arguments
		return Complete
	case "mg":
		return c.parseMeta(KindMetaGet, rest, in, maxValue)
	case "ms":
		return c.parseMeta(KindMetaSet, rest, in, maxValue)
	case "md":
		return c.parseMeta(KindMetaDelete, rest, in, maxValue)
	case "ma":
		return c.parseMeta(KindMetaArithmetic, rest, in, maxValue)
	case "mn":
		c.Kind = KindMetaNoop
		return Complete
	case "me":
		return c.parseMetaDebug(rest)
	}
	return c.unknown(name, rest)
}

// maxTokens is memcached's MAX_TOKENS less its terminal token: a line is
// split into at most 23 tokens, the last one the rest of the line.
const maxTokens = 23

// unknown answers a line naming no command memcached knows: ERROR, or,
// when it looks like an HTTP request (its last token starts with "HTTP/"),
// no answer and the connection closed, as memcached does. Like memcached,
// only lines whose command is not one of the letters it dispatches on
// first (g, s, a, c, i, d, t; m of two letters) are checked.
func (c *Command) unknown(name, rest []byte) Status {
	if len(name) < 2 || bytes.IndexByte([]byte("gsacidt"), name[0]) >= 0 || name[0] == 'm' && len(name) == 2 {
		return c.fail(ErrUnknown)
	}
	last := name
	for n := 1; n < maxTokens; n++ {
		var tok []byte
		if tok, rest = nextToken(rest); tok == nil {
			break
		}
		last = tok
	}
	if bytes.HasPrefix(last, []byte("HTTP/")) {
		return c.fail(ErrHTTP)
	}
	return c.fail(ErrUnknown)
}

// Args returns the arguments of stats (the rest of the line).
func (c *Command) Args() []byte { return bytes.TrimLeft(c.keys, " ") }

func (c *Command) fail(e Error) Status {
	c.Err = e
	return Invalid
}

func (c *Command) simple(k Kind, rest []byte, min, max int) Status {
	n := countTokens(rest)
	if n < min || n > max {
		return c.fail(ErrUnknown)
	}
	c.Kind = k
	return Complete
}

func (c *Command) parseRetrieval(k Kind, rest []byte) Status {
	c.Kind = k
	first, after := nextToken(rest)
	if first == nil {
		return c.fail(ErrUnknown)
	}
	c.Key = first
	c.keys = rest
	for tok := first; tok != nil; tok, after = nextToken(after) {
		if len(tok) > MaxKeyLen {
			return c.fail(ErrBadFormat)
		}
	}
	return Complete
}

func (c *Command) parseGat(k Kind, rest []byte) Status {
	c.Kind = k
	exp, after := nextToken(rest)
	if exp == nil {
		return c.fail(ErrUnknown)
	}
	v, ok := ParseInt32(exp)
	if !ok {
		return c.fail(ErrInvalidExptime)
	}
	c.Exptime = v
	if countTokens(after) == 0 {
		return Complete // memcached answers a gat without keys with END
	}
	return c.parseRetrieval(k, after)
}

// parseMetaDebug parses "me <key> [b]" as memcached does: a key is
// required and at most MaxKeyLen long; b as the second token says it is
// base64 (one that does not decode is a bad command line); anything else
// after the key is ignored.
func (c *Command) parseMetaDebug(rest []byte) Status {
	c.Kind = KindMetaDebug
	key, after := nextToken(rest)
	if key == nil || len(key) > MaxKeyLen {
		return c.fail(ErrBadFormat)
	}
	c.Key, c.RawKey = key, key
	if flag, _ := nextToken(after); len(flag) == 1 && flag[0] == 'b' {
		n := decodeBase64(c.keyBuf[:], key)
		if n == 0 {
			return c.fail(ErrBadFormat)
		}
		c.Key, c.Meta.Base64 = c.keyBuf[:n], true
	}
	return Complete
}

// tokens splits up to len(dst) tokens into dst and returns how many there
// were in total.
func tokens(rest []byte, dst [][]byte) int {
	n := 0
	for {
		var tok []byte
		tok, rest = nextToken(rest)
		if tok == nil {
			return n
		}
		if n < len(dst) {
			dst[n] = tok
		}
		n++
	}
}

func (c *Command) parseStorage(k Kind, rest, in []byte, maxValue int) Status {
	c.Kind = k
	var t [6][]byte
	n := tokens(rest, t[:])
	want := 4
	if k == KindCas {
		want = 5
	}
	if n != want && n != want+1 {
		return c.fail(ErrUnknown)
	}
	// memcached looks for noreply in the last token whatever the count,
	// so "set k 0 0 noreply" fails silently.
	c.NoReply = bytes.Equal(t[n-1], tokNoreply)
	c.Key = t[0]
	if len(c.Key) > MaxKeyLen {
		return c.fail(ErrBadFormat)
	}
	flags, ok1 := ParseFlags(t[1])
	exp, ok2 := ParseInt32(t[2])
	vlen, ok3 := ParseInt32(t[3])
	if !ok1 || !ok2 || !ok3 {
		return c.fail(ErrBadFormat)
	}
	c.Flags, c.Exptime = flags, exp
	if k == KindCas {
		cas, ok := ParseUint64(t[4])
		if !ok {
			return c.fail(ErrBadFormat)
		}
		c.CAS = cas
	}
	if vlen < 0 || int64(vlen) > 1<<31-1-2 {
		return c.fail(ErrBadFormat)
	}
	return c.data(int(vlen), in, maxValue)
}

// data takes the data block of vlen bytes after the line.
func (c *Command) data(vlen int, in []byte, maxValue int) Status {
	if vlen > maxValue {
		c.Swallow = vlen + 2
		return c.fail(ErrTooLarge)
	}
	total := c.Consumed + vlen + 2
	if len(in) < total {
		c.Need = total
		return NeedMore
	}
	c.Data = in[c.Consumed : c.Consumed+vlen]
	end := in[c.Consumed+vlen : total]
	c.Consumed = total
	if end[0] != '\r' || end[1] != '\n' {
		return c.fail(ErrBadChunk)
	}
	return Complete
}

func (c *Command) parseDelete(rest []byte) Status {
	c.Kind = KindDelete
	var t [3][]byte
	n := tokens(rest, t[:])
	if n < 1 || n > 3 {
		return c.fail(ErrUnknown)
	}
	c.Key = t[0]
	if n > 1 {
		zero := string(t[1]) == "0"
		c.NoReply = bytes.Equal(t[n-1], tokNoreply)
		if !(n == 2 && (zero || c.NoReply) || n == 3 && zero && c.NoReply) {
			return c.fail(ErrDeleteUsage)
		}
	}
	if len(c.Key) > MaxKeyLen {
		return c.fail(ErrBadFormat)
	}
	return Complete
}

// keyAndArg reads "<key> <arg> [noreply]", the line of incr, decr and
// touch, and returns the argument; after a bad line the Status is the
// failure.
func (c *Command) keyAndArg(k Kind, rest []byte) ([]byte, Status) {
	c.Kind = k
	var t [3][]byte
	n := tokens(rest, t[:])
	if n != 2 && n != 3 {
		return nil, c.fail(ErrUnknown)
	}
	c.NoReply = bytes.Equal(t[n-1], tokNoreply) // "incr k noreply": silent
	c.Key = t[0]
	if len(c.Key) > MaxKeyLen {
		return nil, c.fail(ErrBadFormat)
	}
	return t[1], Complete
}

func (c *Command) parseArith(k Kind, rest []byte) Status {
	arg, st := c.keyAndArg(k, rest)
	if st != Complete {
		return st
	}
	d, ok := ParseUint64(arg)
	if !ok {
		return c.fail(ErrInvalidDelta)
	}
	c.Delta = d
	return Complete
}

func (c *Command) parseTouch(rest []byte) Status {
	arg, st := c.keyAndArg(KindTouch, rest)
	if st != Complete {
		return st
	}
	v, ok := ParseInt32(arg)
	if !ok {
		return c.fail(ErrInvalidExptime)
	}
	c.Exptime = v
	return Complete
}

func (c *Command) parseFlushAll(rest []byte) Status {
	c.Kind = KindFlushAll
	var t [2][]byte
	n := tokens(rest, t[:])
	if n > 2 {
		return c.fail(ErrUnknown)
	}
	c.NoReply = n > 0 && bytes.Equal(t[n-1], tokNoreply)
	args := n
	if c.NoReply {
		args--
	}
	if args > 0 {
		v, ok := ParseInt32(t[0])
		if !ok {
			return c.fail(ErrInvalidExptime)
		}
		c.Exptime = v
	}
	return Complete
}

func (c *Command) parseVerbosity(rest []byte) Status {
	c.Kind = KindVerbosity
	var t [2][]byte
	n := tokens(rest, t[:])
	if n < 1 || n > 2 {
		return c.fail(ErrUnknown)
	}
	c.NoReply = bytes.Equal(t[n-1], tokNoreply)
	if _, ok := ParseFlags(t[0]); !ok {
		return c.fail(ErrBadFormat)
	}
	return Complete
}
