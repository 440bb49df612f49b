package mcserve

import (
	"bytes"
	"crypto/subtle"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync/atomic"

	mc "github.com/rebound-net/rebound/codec/memcache"
)

// Authentication, as memcached 1.6 does it with -Y (text) and SASL (binary),
// from one file of "user:password" lines (memcached's -Y format). While it
// is on, a connection is served nothing but its login:
//
//   - text: the first command must be a "set" whose data block is "user
//     password" (the key, flags and exptime are ignored), answered STORED;
//     anything else is answered "CLIENT_ERROR unauthenticated" (memcached's
//     try_read_command_asciiauth, with its replies).
//   - binary: SASL PLAIN (list mechanisms, auth, step); any other command but
//     version is answered "Auth failure." and the connection is closed, as
//     memcached -S closes it.
//   - UDP: nothing is answered (memcached refuses UDP with SASL).

// saslMechs is the mechanism list: PLAIN only (the file holds passwords).
const saslMechs = "PLAIN"

const (
	loginMaxData = 16384 // MAX_AUTH_REQ_LEN (memcached after 1.6.18; 1.6.18 has no bound)
	loginMaxLine = 2048  // a longer line without a newline is junk: close
)

// Auth holds the credentials of an auth file; Reload re-reads it. It is
// safe for concurrent use.
type Auth struct {
	path  string
	creds atomic.Pointer[[]credential]
}

type credential struct{ user, pass []byte }

// ErrAuthFile says an auth file is not in memcached's -Y format.
var ErrAuthFile = errors.New("auth file: want user:password lines")

// LoadAuth reads the auth file at path.
func LoadAuth(path string) (*Auth, error) {
	a := &Auth{path: path}
	if err := a.Reload(); err != nil {
		return nil, err
	}
	return a, nil
}

// Path is the file the credentials are read from.
func (a *Auth) Path() string { return a.path }

// Users is how many credentials are in force.
func (a *Auth) Users() int { return len(*a.creds.Load()) }

// Reload re-reads the file; on an error the credentials in force stay.
func (a *Auth) Reload() error {
	data, err := os.ReadFile(a.path)
	if err != nil {
		return fmt.Errorf("auth file: %w", err)
	}
	creds, err := parseAuth(data)
	if err != nil {
		return fmt.Errorf("%s: %w", a.path, err)
	}
	a.creds.Store(&creds)
	return nil
}

// parseAuth reads "user:password" lines as memcached's authfile_load does:
// the user ends at the first ':', the password at the end of the line (a
// '\r' or '\n'). A line without ':' is malformed; blank lines are skipped.
func parseAuth(data []byte) ([]credential, error) {
	var creds []credential
	for n := 1; len(data) > 0; n++ {
		line, rest, _ := bytes.Cut(data, []byte("\n"))
		data = rest
		line, _, _ = bytes.Cut(line, []byte("\r"))
		if len(line) == 0 {
			continue
		}
		user, pass, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return nil, fmt.Errorf("line %d: %w", n, ErrAuthFile)
		}
		creds = append(creds, credential{user: bytes.Clone(user), pass: bytes.Clone(pass)})
	}
	if len(creds) == 0 {
		return nil, fmt.Errorf("no user: %w", ErrAuthFile)
	}
	return creds, nil
}

// Check reports whether user and pass are one of the credentials, in time
// that does not depend on where they differ.
func (a *Auth) Check(user, pass []byte) bool {
	ok := 0
	for _, c := range *a.creds.Load() {
		u := subtle.ConstantTimeCompare(user, c.user)
		p := subtle.ConstantTimeCompare(pass, c.pass)
		ok |= u & p
	}
	return ok == 1
}

// AuthRequired reports whether connections must log in (Config.Auth).
func (h *Handler) AuthRequired() bool { return h.cfg.Auth != nil }

// textLogin serves a text connection before its login, one step at a time:
// the "set" line, then its data block, as memcached 1.6.18 reads them
// (tokens split on spaces; the line's '\r' stays on its last token; the
// data's first two tokens are the user and the password). It returns what
// it consumed of b, or need > 0 (nothing consumed), or close.
func (c *Conn) textLogin(b, out []byte) (consumed int, out2 []byte, need int, close bool) {
	if c.loginData == 0 {
		if len(b) < 2 {
			return 0, out, 2, false
		}
		el := bytes.IndexByte(b, '\n')
		if el < 0 {
			if len(b) > loginMaxLine {
				return len(b), out, 0, true
			}
			return 0, out, len(b) + 1, false
		}
		consumed = el + 1
		toks := spaceTokens(b[:el])
		var size uint64
		var err error
		if len(toks) >= 5 {
			size, err = strconv.ParseUint(string(bytes.TrimRight(toks[4], "\r")), 10, 32)
		}
		if len(toks) < 5 || string(toks[0]) != "set" || err != nil {
			return consumed, append(out, "CLIENT_ERROR unauthenticated\r\n"...), 0, false
		}
		if size > loginMaxData {
			return consumed, append(out, "CLIENT_ERROR auth token too long\r\n"...), 0, false
		}
		c.loginData = int(size) + 2
		b = b[consumed:]
	}
	if len(b) < c.loginData {
		if consumed > 0 {
			return consumed, out, 0, false // the line is done; the data follows
		}
		return 0, out, c.loginData, false
	}
	data := b[:c.loginData]
	consumed += c.loginData
	c.loginData = 0
	if !bytes.HasSuffix(data, []byte("\r\n")) {
		return consumed, append(out, "CLIENT_ERROR bad command line termination\r\n"...), 0, false
	}
	toks := spaceTokens(data[:len(data)-2])
	if len(toks) < 2 {
		return consumed, append(out, "CLIENT_ERROR bad authentication token format\r\n"...), 0, false
	}
	c.cnt.authCmds.Add(1) // memcached counts a checked login, and each that fails
	if c.h.cfg.Auth.Check(toks[0], toks[1]) {
		c.authed = true
		return consumed, append(out, mc.ReplyStored...), 0, false
	}
	c.cnt.authErrors.Add(1)
	return consumed, append(out, "CLIENT_ERROR authentication failure\r\n"...), 0, false
}

// spaceTokens splits b on runs of spaces (only spaces, as memcached's
// tokenize_command), keeping at most the first five tokens.
func spaceTokens(b []byte) [][]byte {
	var toks [][]byte
	for len(b) > 0 && len(toks) < 5 {
		b = bytes.TrimLeft(b, " ")
		if len(b) == 0 {
			break
		}
		tok, rest, _ := bytes.Cut(b, []byte(" "))
		toks = append(toks, tok)
		b = rest
	}
	return toks
}

// saslCommand runs SASL auth and step with the PLAIN mechanism: its data
// is "authzid NUL user NUL password" (authzid empty or the user). PLAIN
// with no data asks for it (auth continue), and the step brings it.
func (c *Conn) saslCommand(hdr mc.BinaryHeader, mech, data, out []byte) (reply []byte) {
	c.authed = false // every SASL command starts over, as memcached's init_sasl_conn
	defer func() {
		// memcached counts every auth and step that ends (not one that
		// asks to continue), and each that fails
		if !c.saslPending {
			c.cnt.authCmds.Add(1)
			if !c.authed {
				c.cnt.authErrors.Add(1)
			}
		}
	}()
	switch {
	case hdr.Op == mc.OpSASLStep && !c.saslPending:
		c.saslPending = false
		return mc.AppendBinaryError(out, hdr, mc.StatusAuthError)
	case hdr.Op == mc.OpSASLAuth && string(mech) != saslMechs:
		c.saslPending = false
		return mc.AppendBinaryError(out, hdr, mc.StatusAuthError)
	case hdr.Op == mc.OpSASLAuth && len(data) == 0:
		c.saslPending = true
		return mc.AppendBinaryResponse(out, hdr, mc.StatusAuthContinue, 0, nil, nil, nil)
	}
	c.saslPending = false
	authz, rest, ok1 := bytes.Cut(data, []byte{0})
	user, pass, ok2 := bytes.Cut(rest, []byte{0})
	if ok1 && ok2 && (len(authz) == 0 || bytes.Equal(authz, user)) && c.h.cfg.Auth.Check(user, pass) {
		c.authed = true
		return mc.AppendBinaryResponse(out, hdr, mc.StatusOK, 0, nil, nil, []byte("Authenticated"))
	}
	return mc.AppendBinaryError(out, hdr, mc.StatusAuthError)
}
