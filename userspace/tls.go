package userspace

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"sync/atomic"
	"time"
)

// TLS on TCP, as memcached's -Z: every TCP listener (Rebound's,
// memcached's, protocols of your own) speaks TLS only, and UDP, which
// cannot be encrypted, is off (see Server.udpOff). The certificate, its key
// and the client CAs are read from files at the start and again on
// Reload; a handshake uses what was read last, so new connections see the
// new files while open ones go on with the certificate they shook hands
// with. A file that does not read on Reload leaves the setup in force.

// A handshake must be done within Config.RequestTimeout (the time one
// request may take once begun): a client that connects and never finishes
// one holds its connection that long at most.

// TLSFiles names the PEM files of a TLS setup.
type TLSFiles struct {
	Cert string // the server's certificate chain (leaf first)
	Key  string // its private key
	// CA, when set, holds the CAs whose certificates clients must present:
	// a client without one signed by them is refused in the handshake.
	CA string
}

// TLS is the server side of TLS, reloadable. Its zero value is not
// usable: make one with NewTLS.
type TLS struct {
	files TLSFiles
	cur   atomic.Pointer[tls.Config] // what the next handshake uses
	conf  *tls.Config                // what listeners hold: hands out cur
	// failed counts handshakes that did not complete (a client without a
	// certificate, a plain-text client, a timeout).
	failed atomic.Uint64
}

// NewTLS reads files and returns the setup they describe.
func NewTLS(files TLSFiles) (*TLS, error) {
	if files.Cert == "" || files.Key == "" {
		return nil, errors.New("tls: a certificate and its key are both needed")
	}
	t := &TLS{files: files}
	if err := t.Reload(); err != nil {
		return nil, err
	}
	t.conf = &tls.Config{
		MinVersion: tls.VersionTLS12, // as memcached's ssl_min_version default
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return t.cur.Load(), nil
		},
	}
	return t, nil
}

// Reload reads the files again and puts them in force for new handshakes,
// whole or not at all: on error the setup in force stays.
func (t *TLS) Reload() error {
	next, err := loadTLS(t.files)
	if err != nil {
		return err
	}
	t.cur.Store(next)
	return nil
}

// Leaf returns the certificate handshakes present now.
func (t *TLS) Leaf() *x509.Certificate { return t.cur.Load().Certificates[0].Leaf }

// ClientCerts reports whether clients must present a certificate.
func (t *TLS) ClientCerts() bool { return t.files.CA != "" }

// Failed returns how many handshakes did not complete since the start.
func (t *TLS) Failed() uint64 { return t.failed.Load() }

func loadTLS(files TLSFiles) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(files.Cert, files.Key)
	if err != nil {
		return nil, fmt.Errorf("tls: certificate %s, key %s: %w", files.Cert, files.Key, err)
	}
	if cert.Leaf == nil {
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("tls: certificate %s: %w", files.Cert, err)
		}
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	if files.CA != "" {
		pem, err := os.ReadFile(files.CA)
		if err != nil {
			return nil, fmt.Errorf("tls: client CAs: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls: client CAs %s: no PEM certificate in it", files.CA)
		}
		c.ClientCAs, c.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return c, nil
}

// handshake wraps an accepted connection in TLS and shakes hands within
// the handshake timeout; nil when the handshake fails (counted).
func (s *tcpServer) handshake(c net.Conn) net.Conn {
	tc := tls.Server(c, s.tls.conf)
	_ = c.SetDeadline(time.Now().Add(s.handshakeTimeout))
	if err := tc.Handshake(); err != nil {
		s.stats.RxErrors.Add(1)
		s.tls.failed.Add(1)
		return nil
	}
	_ = c.SetDeadline(time.Time{})
	return tc
}
