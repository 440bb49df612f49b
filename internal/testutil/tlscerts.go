package testutil

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/rebound-net/rebound/internal/testenv"
)

// Certs is a throwaway PKI for TLS tests: a CA, a server certificate for
// 127.0.0.1, ::1 and localhost, and a client certificate, all signed by the
// CA, written as PEM files in a test's temporary directory.
type Certs struct {
	Dir                   string
	CA                    string // the CA's certificate (PEM)
	ServerCert, ServerKey string
	ClientCert, ClientKey string
	Pool                  *x509.CertPool // holds the CA
	Client                tls.Certificate
	ca                    *x509.Certificate
	caKey                 *ecdsa.PrivateKey
}

// NewCerts makes a CA and a server and a client certificate signed by it.
func NewCerts(t testing.TB) *Certs {
	t.Helper()
	c := &Certs{Dir: t.TempDir(), Pool: x509.NewCertPool()}
	key := newKey(t)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "rebound test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	if c.ca, err = x509.ParseCertificate(der); err != nil {
		t.Fatal(err)
	}
	c.caKey = key
	c.Pool.AddCert(c.ca)
	c.CA = c.write(t, "ca.pem", "CERTIFICATE", der)
	c.ServerCert, c.ServerKey = c.Issue(t, "server", 2)
	c.ClientCert, c.ClientKey = c.Issue(t, "client", 3)
	if c.Client, err = tls.LoadX509KeyPair(c.ClientCert, c.ClientKey); err != nil {
		t.Fatal(err)
	}
	return c
}

// Issue signs a new certificate with the CA, for the server (name
// "server*": serverAuth for 127.0.0.1, ::1 and localhost) or a client
// (clientAuth), with the given serial number, and writes it and its key as
// name.pem and name-key.pem.
func (c *Certs) Issue(t testing.TB, name string, serial int64) (cert, key string) {
	t.Helper()
	k := newKey(t)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if len(name) >= 6 && name[:6] == "server" {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
		tmpl.DNSNames = []string{"localhost"}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.ca, &k.PublicKey, c.caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return c.write(t, name+".pem", "CERTIFICATE", der), c.write(t, name+"-key.pem", "PRIVATE KEY", kder)
}

// ClientConfig is a client's TLS configuration that trusts the CA and,
// with withCert, presents the client certificate.
func (c *Certs) ClientConfig(withCert bool) *tls.Config {
	conf := &tls.Config{RootCAs: c.Pool, ServerName: "127.0.0.1"}
	if withCert {
		conf.Certificates = []tls.Certificate{c.Client}
	}
	return conf
}

func (c *Certs) write(t testing.TB, name, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(c.Dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// StartMemcachedTLS starts the real memcached with TLS on its TCP port
// (-Z, the server certificate of certs; with requireCert, clients must
// present a certificate the CA signed: ssl_verify_mode=2), no UDP, on a
// free loopback port; waits until it answers "version" over TLS; stops it
// when the test ends; and returns its address. Without the binary (or one
// built without TLS) the test is skipped loudly, as StartMemcached.
func StartMemcachedTLS(t testing.TB, certs *Certs, requireCert bool) string {
	t.Helper()
	path := testenv.Tool(t, MemcachedPath, "Debian: memcached")
	opts := "ssl_chain_cert=" + certs.ServerCert + ",ssl_key=" + certs.ServerKey
	client := certs.ClientConfig(true)
	if requireCert {
		opts += ",ssl_verify_mode=2,ssl_ca_cert=" + certs.CA
	}
	var lastErr error
	for range 5 {
		port, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		p := strconv.Itoa(port)
		argv := []string{"-l", "127.0.0.1", "-p", p, "-U", "0", "-t", "1", "-Z", "-o", opts}
		if os.Geteuid() == 0 {
			argv = append(argv, "-u", "root")
		}
		cmd := exec.Command(path, argv...)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		addr := net.JoinHostPort("127.0.0.1", p)
		deadline := time.Now().Add(5 * time.Second)
		for lastErr = errNotYet; lastErr != nil && time.Now().Before(deadline); {
			select {
			case err := <-exited:
				t.Fatalf("memcached -Z exited: %v (built without TLS?)", err)
			default:
			}
			lastErr = versionOverTLS(addr, client)
			if lastErr != nil {
				time.Sleep(20 * time.Millisecond)
			}
		}
		if lastErr == nil {
			t.Cleanup(func() {
				_ = cmd.Process.Kill()
				<-exited
			})
			return addr
		}
		_ = cmd.Process.Kill()
		<-exited
	}
	t.Fatalf("memcached -Z did not start: %v", lastErr)
	return ""
}

var errNotYet = os.ErrDeadlineExceeded

func versionOverTLS(addr string, conf *tls.Config) error {
	d := &net.Dialer{Timeout: 200 * time.Millisecond}
	c, err := tls.DialWithDialer(d, "tcp", addr, conf)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("version\r\n")); err != nil {
		return err
	}
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	if n >= 8 && string(buf[:8]) == "VERSION " {
		return nil
	}
	if err == nil {
		err = fmt.Errorf("version over TLS: %q", buf[:n])
	}
	return err
}
