package e2e

import (
	"crypto/tls"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rebound-net/rebound/internal/testutil"
)

// rebound serve --tls-cert --tls-key --tls-ca, the real binary: both
// protocols' TCP ports speak TLS only and want the CA's client
// certificate; UDP is off, with a log line; SIGHUP puts a new certificate
// in force for new handshakes, and a bad file on SIGHUP leaves the one in
// force, with a log line.
func TestTLSServeAndReload(t *testing.T) {
	certs := testutil.NewCerts(t)
	port, mcPort := mcFreePort(t), mcFreePort(t)
	reb := "127.0.0.1:" + strconv.Itoa(port)
	mc := "127.0.0.1:" + strconv.Itoa(mcPort)
	s, err := startLocalServer(t, "--listen", reb, "--memcache-listen", mc, "--workers", "1",
		"--tls-cert", certs.ServerCert, "--tls-key", certs.ServerKey, "--tls-ca", certs.CA)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(s.Log(), "UDP is off") {
		t.Fatalf("no log line says UDP is off:\n%s", s.Log())
	}

	// exchange shakes hands and sends req; it returns the reply's first
	// bytes and the serial number of the certificate the server showed.
	exchange := func(addr string, conf *tls.Config, req []byte) (string, int64) {
		t.Helper()
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, conf)
		if err != nil {
			return "", 0
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		serial := c.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
		if _, err := c.Write(req); err != nil {
			return "", serial
		}
		buf := make([]byte, 64)
		n, _ := io.ReadAtLeast(c, buf, 4)
		return string(buf[:n]), serial
	}
	ping := []byte{0xB5, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x07, 0x00, 0x02, 0x00, 0x00, 'h', 'i'}
	pong := string([]byte{0xB5, 0x01, 0x01, 0x01, 0x00, 0x00, 0x00, 0x07, 0x00, 0x02, 0x00, 0x00, 'h', 'i'})
	check := func(wantSerial int64) {
		t.Helper()
		if out, serial := exchange(mc, certs.ClientConfig(true), []byte("version\r\n")); !strings.HasPrefix(out, "VERSION ") || serial != wantSerial {
			t.Fatalf("memcached's port over TLS: %q, certificate %d, want VERSION and certificate %d", out, serial, wantSerial)
		}
		if out, serial := exchange(reb, certs.ClientConfig(true), ping); out != pong || serial != wantSerial {
			t.Fatalf("Rebound's port over TLS: % x, certificate %d, want a PONG and certificate %d", out, serial, wantSerial)
		}
		if out, _ := exchange(mc, certs.ClientConfig(false), []byte("version\r\n")); out != "" {
			t.Fatalf("a client without a certificate was answered %q", out)
		}
	}
	check(2)
	// Plain text and UDP get nothing.
	c, err := net.Dial("udp", mc)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = c.Write(append([]byte{0, 1, 0, 0, 0, 1, 0, 0}, "version\r\n"...))
	_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, err := c.Read(make([]byte, 100)); err == nil {
		t.Fatalf("UDP answered %d bytes while TLS is required", n)
	}
	c.Close()

	hup := func(wantLog string) {
		t.Helper()
		before := strings.Count(s.Log(), wantLog)
		if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for strings.Count(s.Log(), wantLog) == before {
			if time.Now().After(deadline) {
				t.Fatalf("no %q in the log 5s after SIGHUP:\n%s", wantLog, s.Log())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	cert, key := certs.Issue(t, "server-next", 9)
	for from, to := range map[string]string{cert: certs.ServerCert, key: certs.ServerKey} {
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(to, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	hup("SIGHUP: reloaded TLS")
	check(9)

	if err := os.WriteFile(certs.ServerKey, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	hup("SIGHUP: TLS files not reloaded")
	check(9)
}
