package memcache

// Error is a protocol error found while parsing, named after the reply
// memcached 1.6 gives for it. The zero value is no error.
type Error uint8

// The errors a parse can report. Reply gives the exact line to send.
const (
	ErrNone           Error = iota
	ErrUnknown              // ERROR: unknown command, wrong token count, empty line
	ErrBadFormat            // CLIENT_ERROR bad command line format
	ErrBadChunk             // CLIENT_ERROR bad data chunk
	ErrTooLarge             // SERVER_ERROR object too large for cache
	ErrInvalidDelta         // CLIENT_ERROR invalid numeric delta argument
	ErrInvalidExptime       // CLIENT_ERROR invalid exptime argument
	ErrDeleteUsage          // CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]
	ErrInvalidFlag          // CLIENT_ERROR invalid flag
	ErrDuplicateFlag        // CLIENT_ERROR duplicate flag
	ErrKeyDecode            // CLIENT_ERROR error decoding key
	ErrBadToken             // CLIENT_ERROR bad token in command line format
	ErrInvalidMode          // CLIENT_ERROR invalid mode for ms M token
	ErrInvalidMaMode        // CLIENT_ERROR invalid mode for ma M token
	ErrInvalidOrDup         // CLIENT_ERROR invalid or duplicate flag (md, ma: any bad flag)
	ErrFlagsTooLongMg       // CLIENT_ERROR options flags are too long (mg)
	ErrFlagsTooLong         // CLIENT_ERROR options flags too long (ms, md, ma)
	ErrOpaqueTooLong        // CLIENT_ERROR opaque token too long
	ErrLineTooLong          // no reply: the connection is closed
	ErrNonNumeric           // CLIENT_ERROR cannot increment or decrement non-numeric value
	ErrHTTP                 // no reply: an HTTP request line; the connection is closed
	numErrors
)

var errorReplies = [numErrors]string{
	ErrUnknown:        "ERROR\r\n",
	ErrBadFormat:      "CLIENT_ERROR bad command line format\r\n",
	ErrBadChunk:       "CLIENT_ERROR bad data chunk\r\n",
	ErrTooLarge:       "SERVER_ERROR object too large for cache\r\n",
	ErrInvalidDelta:   "CLIENT_ERROR invalid numeric delta argument\r\n",
	ErrInvalidExptime: "CLIENT_ERROR invalid exptime argument\r\n",
	ErrDeleteUsage:    "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n",
	ErrInvalidFlag:    "CLIENT_ERROR invalid flag\r\n",
	ErrDuplicateFlag:  "CLIENT_ERROR duplicate flag\r\n",
	ErrKeyDecode:      "CLIENT_ERROR error decoding key\r\n",
	ErrBadToken:       "CLIENT_ERROR bad token in command line format\r\n",
	ErrInvalidMode:    "CLIENT_ERROR invalid mode for ms M token\r\n",
	ErrInvalidOrDup:   "CLIENT_ERROR invalid or duplicate flag\r\n",
	ErrFlagsTooLongMg: "CLIENT_ERROR options flags are too long\r\n",
	ErrFlagsTooLong:   "CLIENT_ERROR options flags too long\r\n",
	ErrInvalidMaMode:  "CLIENT_ERROR invalid mode for ma M token\r\n",
	ErrOpaqueTooLong:  "CLIENT_ERROR opaque token too long\r\n",
	ErrLineTooLong:    "",
	ErrNonNumeric:     "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n",
	ErrHTTP:           "",
}

// Reply is the exact reply line, with its \r\n; empty for ErrNone and for
// errors that close the connection without a reply.
func (e Error) Reply() string {
	switch {
	case e < numErrors:
		return errorReplies[e]
	case e < numAllErrors:
		return metaErrorReplies[e-numErrors]
	}
	return ""
}

// AppendError appends e's reply line.
func AppendError(dst []byte, e Error) []byte { return append(dst, e.Reply()...) }

// Closes reports whether memcached closes the connection after this error.
func (e Error) Closes() bool { return e == ErrLineTooLong || e == ErrHTTP }

func (e Error) String() string {
	if e == ErrNone {
		return "none"
	}
	if e == ErrLineTooLong {
		return "line too long"
	}
	if e == ErrHTTP {
		return "HTTP request"
	}
	r := e.Reply()
	if r == "" {
		return "unknown error"
	}
	return r[:len(r)-2]
}
