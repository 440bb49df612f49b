package userspace_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/rebound-net/rebound/internal/testenv"
	"github.com/rebound-net/rebound/internal/testutil"
	"github.com/rebound-net/rebound/userspace"
	"github.com/rebound-net/rebound/userspace/mcserve"
	"github.com/rebound-net/rebound/userspace/store"
)

// tlsDial dials TCP with TLS (conf) and finishes the handshake; other
// networks are dialled plain.
func tlsDial(conf *tls.Config) dialFunc {
	return func(network, addr string) (net.Conn, error) {
		if network != "tcp" {
			return net.Dial(network, addr)
		}
		d := &net.Dialer{Timeout: 5 * time.Second}
		return tls.DialWithDialer(d, network, addr, conf)
	}
}

// startTLS starts a server of both protocols with TLS from certs (client
// certificates required when ca).
func startTLS(t *testing.T, certs *testutil.Certs, ca bool, cfg userspace.Config) (*testServer, *userspace.TLS) {
	t.Helper()
	files := userspace.TLSFiles{Cert: certs.ServerCert, Key: certs.ServerKey}
	if ca {
		files.CA = certs.CA
	}
	tl, err := userspace.NewTLS(files)
	if err != nil {
		t.Fatal(err)
	}
	cfg.TLS = tl
	if cfg.Workers == 0 {
		cfg.Workers = 1
	}
	st := store.New(store.Config{MemoryLimit: 64 << 20})
	cfg.Handler = userspace.NewService(userspace.ServiceConfig{Store: st, MaxValue: maxValue})
	cfg.Memcache = mcserve.New(mcserve.Config{Store: st})
	cfg.MemcacheListen = "127.0.0.1:0"
	return startServer(t, cfg), tl
}

// tlsScript is a memcached session whose replies do not depend on the
// server (no cas values, no version): each request with how its reply
// ends. memcached -Z serves a pipeline over TLS only as far as its socket
// reads go (bytes OpenSSL has decrypted ahead wait for the next read
// event), so the session goes one request at a time.
func tlsScript() [][2]string {
	big := strings.Repeat("0123456789abcdef", 64<<10/16) // several TLS records
	return [][2]string{
		{setCmd("tls:a", 5, "hello"), "\r\n"}, {"get tls:a\r\n", "END\r\n"}, {"add tls:a 0 0 1\r\nx\r\n", "\r\n"},
		{"add tls:b 0 0 1\r\n7\r\n", "\r\n"}, {"incr tls:b 35\r\n", "\r\n"}, {"decr tls:b 50\r\n", "\r\n"},
		{"append tls:a 0 0 3\r\n!!!\r\n", "\r\n"}, {"prepend tls:a 0 0 2\r\n<<\r\n", "\r\n"},
		{"replace tls:c 0 0 1\r\nz\r\n", "\r\n"}, {"get tls:a tls:b tls:c\r\n", "END\r\n"},
		{setCmd("tls:big", 1, big), "\r\n"}, {"get tls:big\r\n", "END\r\n"}, {"touch tls:a 100\r\n", "\r\n"},
		{"delete tls:a\r\n", "\r\n"}, {"delete tls:a\r\n", "\r\n"}, {"mn\r\n", "\r\n"},
		{"get tls:a tls:b\r\n", "END\r\n"}, {"bogus\r\n", "\r\n"},
	}
}

// session runs a tlsScript on one connection and returns every reply.
func session(t *testing.T, dial dialFunc, addr string, script [][2]string) string {
	t.Helper()
	c, err := dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	var all []byte
	buf := make([]byte, 64<<10)
	for _, ex := range script {
		if _, err := io.WriteString(c, ex[0]); err != nil {
			t.Fatal(err)
		}
		var out []byte
		for !bytes.HasSuffix(out, []byte(ex[1])) {
			n, err := c.Read(buf)
			out = append(out, buf[:n]...)
			if err != nil {
				t.Fatalf("%s: read after %.40q: %.200q: %v", addr, ex[0], out, err)
			}
		}
		all = append(all, out...)
	}
	return string(all)
}

// memcached's protocol over TLS: the same session gets the same bytes from
// memcached -Z and from Rebound with --tls-cert, on a TLS connection.
func TestTLSMemcacheMatchesMemcached(t *testing.T) {
	certs := testutil.NewCerts(t)
	oracle := testutil.StartMemcachedTLS(t, certs, false)
	ts, _ := startTLS(t, certs, false, userspace.Config{Mode: userspace.ModeUDP})
	dial := tlsDial(certs.ClientConfig(false))
	want := session(t, dial, oracle, tlsScript())
	got := session(t, dial, ts.srv.MemcacheAddr().String(), tlsScript())
	if got != want {
		t.Fatalf("over TLS, rebound answered\n%.600q\nmemcached -Z answered\n%.600q", got, want)
	}
	if !strings.Contains(got, "VALUE tls:a 5 10\r\n<<hello!!!\r\n") {
		t.Fatalf("the session did not run: %.300q", got)
	}
	// A plain-text client on a TLS port is answered by neither.
	for name, addr := range map[string]string{"memcached": oracle, "rebound": ts.srv.MemcacheAddr().String()} {
		if out := plainExchange(t, addr, "version\r\n"); strings.Contains(out, "VERSION") {
			t.Errorf("%s answered a plain-text client on its TLS port: %q", name, out)
		}
	}
}

// plainExchange writes req on a plain TCP connection and returns what came
// back before the server closed it (or 5s passed).
func plainExchange(t *testing.T, addr, req string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	_, _ = io.WriteString(c, req)
	out, err := io.ReadAll(c)
	if err != nil && !isReset(err) {
		t.Fatalf("plain client on a TLS port: the server did not close the connection: %v", err)
	}
	return string(out)
}

func isReset(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "reset by peer") || strings.Contains(err.Error(), "broken pipe"))
}

// Rebound's protocol over TLS: the TCP conformance cases, byte for byte;
// UDP is off while TLS is required (no reply, a log line, the mode says
// why), and xdp mode, which serves UDP, is refused.
func TestTLSReboundAndUDPOff(t *testing.T) {
	certs := testutil.NewCerts(t)
	ts, _ := startTLS(t, certs, false, userspace.Config{Mode: userspace.ModeAuto})
	addr := ts.srv.Addr().String()
	runTCP(t, tlsDial(certs.ClientConfig(false)), addr, udpCases("t"))

	if m, why := ts.srv.Mode(); m != userspace.ModeUDP || !strings.Contains(why, "TLS") {
		t.Fatalf("mode %s (%s): want udp with UDP off because of TLS", m, why)
	}
	if !strings.Contains(ts.log.String(), "UDP is off") {
		t.Fatalf("no log line says UDP is off:\n%s", ts.log.String())
	}
	for name, a := range map[string]string{"rebound": addr, "memcache": ts.srv.MemcacheAddr().String()} {
		c, err := net.Dial("udp", a)
		if err != nil {
			t.Fatal(err)
		}
		req := raw(1, 0, 1, -1, 0, nil) // a Rebound PING
		if name == "memcache" {
			req = append([]byte{0, 1, 0, 0, 0, 1, 0, 0}, "mn\r\n"...)
		}
		_, _ = c.Write(req)
		_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		if n, err := c.Read(make([]byte, 1500)); err == nil {
			t.Errorf("%s over UDP answered %d bytes while TLS is required", name, n)
		}
		c.Close()
	}

	tl, err := userspace.NewTLS(userspace.TLSFiles{Cert: certs.ServerCert, Key: certs.ServerKey})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := userspace.NewServer(userspace.Config{Mode: userspace.ModeXDP, Iface: "lo", Listen: "127.0.0.1:0", TLS: tl,
		Handler: userspace.NewService(userspace.ServiceConfig{KVMemory: 8 << 20})})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "UDP is off") {
		srv.Stop()
		t.Fatalf("xdp mode with TLS: %v, want an error saying UDP is off", err)
	}
}

// --tls-ca: a client without a certificate the CA signed is refused in
// the handshake, by memcached (ssl_verify_mode=2) as by Rebound; one with
// it is served.
func TestTLSClientCertRequired(t *testing.T) {
	certs := testutil.NewCerts(t)
	oracle := testutil.StartMemcachedTLS(t, certs, true)
	ts, tl := startTLS(t, certs, true, userspace.Config{Mode: userspace.ModeUDP})
	other := testutil.NewCerts(t) // a client certificate from another CA
	otherConf := certs.ClientConfig(false)
	otherConf.Certificates = []tls.Certificate{other.Client}
	for name, addr := range map[string]string{"memcached": oracle, "rebound": ts.srv.MemcacheAddr().String(),
		"rebound's protocol": ts.srv.Addr().String()} {
		req, reply := "version\r\n", "VERSION "
		if name == "rebound's protocol" {
			req, reply = string(raw(1, 0, 1, -1, 0, nil)), string(reply1(1))
		}
		for _, c := range []struct {
			what   string
			conf   *tls.Config
			served bool
		}{{"no certificate", certs.ClientConfig(false), false}, {"another CA's", otherConf, false}, {"the CA's", certs.ClientConfig(true), true}} {
			out, err := tlsExchange(addr, c.conf, req)
			if got := strings.HasPrefix(out, reply); got != c.served {
				t.Errorf("%s, client with %s certificate: served %v (%q, %v), want %v", name, c.what, got, out, err, c.served)
			}
		}
	}
	if tl.Failed() == 0 {
		t.Fatal("refused handshakes not counted")
	}
	if !tl.ClientCerts() {
		t.Fatal("ClientCerts false with a CA")
	}
}

func reply1(seq uint32) []byte { return reply(1, 0, seq, 0, nil) }

// tlsExchange shakes hands, writes req and returns the first read's bytes.
// In TLS 1.3 a refused client certificate shows on the client's first
// read, not in its handshake.
func tlsExchange(addr string, conf *tls.Config, req string) (string, error) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, conf)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		return "", err
	}
	buf := make([]byte, 256)
	n, err := c.Read(buf)
	return string(buf[:n]), err
}

// A client that connects and never shakes hands is cut off after the
// request timeout, and its connection no longer counts.
func TestTLSHandshakeTimeout(t *testing.T) {
	certs := testutil.NewCerts(t)
	ts, tl := startTLS(t, certs, false, userspace.Config{Mode: userspace.ModeUDP, RequestTimeout: 300 * time.Millisecond})
	c, err := net.Dial("tcp", ts.srv.MemcacheAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 16)); err != io.EOF && !isReset(err) {
		t.Fatalf("a silent client: read %v, want the server to close it", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("a silent client was cut off after %v, want about 300ms", d)
	}
	deadline := time.Now().Add(5 * time.Second)
	for curr, _ := ts.srv.MemcacheConns(); curr != 0; curr, _ = ts.srv.MemcacheConns() {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections still counted", curr)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if tl.Failed() != 1 {
		t.Fatalf("failed handshakes %d, want 1", tl.Failed())
	}
}

// Reload puts new files in force for new handshakes; open connections go
// on; a file that does not read leaves the setup in force.
func TestTLSReload(t *testing.T) {
	certs := testutil.NewCerts(t)
	ts, tl := startTLS(t, certs, false, userspace.Config{Mode: userspace.ModeUDP})
	addr := ts.srv.MemcacheAddr().String()
	serial := func() int64 {
		t.Helper()
		c, err := tls.Dial("tcp", addr, certs.ClientConfig(false))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
	}
	if s := serial(); s != 2 {
		t.Fatalf("serial %d before the reload, want 2", s)
	}
	open, err := tls.Dial("tcp", addr, certs.ClientConfig(false))
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()

	cert, key := certs.Issue(t, "server-next", 9)
	copyFile(t, cert, certs.ServerCert)
	copyFile(t, key, certs.ServerKey)
	if err := tl.Reload(); err != nil {
		t.Fatal(err)
	}
	if s := serial(); s != 9 || tl.Leaf().SerialNumber.Int64() != 9 {
		t.Fatalf("serial %d after the reload, want 9", s)
	}
	// The connection opened before the reload is still served.
	_ = open.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(open, "mn\r\n"); err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(io.LimitReader(open, 4)); err != nil || string(b) != "MN\r\n" {
		t.Fatalf("a connection from before the reload: %q, %v", b, err)
	}

	if err := os.WriteFile(certs.ServerCert, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := tl.Reload(); err == nil {
		t.Fatal("Reload of a bad certificate file: no error")
	}
	if s := serial(); s != 9 {
		t.Fatalf("serial %d after a failed reload, want 9 (the setup in force)", s)
	}
	if _, err := userspace.NewTLS(userspace.TLSFiles{Cert: certs.ServerCert, Key: certs.ServerKey}); err == nil {
		t.Fatal("NewTLS with a bad certificate: no error")
	}
	if _, err := userspace.NewTLS(userspace.TLSFiles{Cert: cert, Key: key, CA: key}); err == nil {
		t.Fatal("NewTLS with a CA file holding no certificate: no error")
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// pymemcache (python3-pymemcache) with its tls_context against memcached
// -Z and against Rebound: the same results, client certificate presented.
const pymemcacheTLS = `
import ssl, sys, json
from pymemcache.client.base import Client
host, port, ca, cert, key = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
ctx = ssl.create_default_context(cafile=ca)
ctx.load_cert_chain(cert, key)
c = Client((host, port), tls_context=ctx, timeout=5, connect_timeout=5)
out = []
out.append(c.set("py:a", b"hello", noreply=False))
out.append(c.get("py:a").decode())
out.append(c.add("py:a", b"x", noreply=False))
out.append(c.set_many({"py:b": b"1", "py:c": b"two"}, noreply=False))
out.append(sorted((k, v.decode()) for k, v in c.get_many(["py:a", "py:b", "py:c", "py:none"]).items()))
out.append(c.incr("py:b", 41))
out.append(c.decr("py:b", 2))
out.append(c.append("py:a", b"!", noreply=False))
out.append(c.get("py:a").decode())
out.append(c.replace("py:none", b"z", noreply=False))
out.append(c.touch("py:a", 100, noreply=False))
out.append(c.delete("py:a", noreply=False))
out.append(c.get("py:a"))
big = b"v" * 200000
out.append(c.set("py:big", big, noreply=False))
out.append(c.get("py:big") == big)
print(json.dumps(out))
`

func TestTLSPymemcache(t *testing.T) {
	py := testenv.Tool(t, "/usr/bin/python3", "Debian: python3")
	if err := exec.Command(py, "-c", "import pymemcache").Run(); err != nil {
		testenv.Skip(t, "pymemcache not importable (Debian: python3-pymemcache): %v", err)
	}
	certs := testutil.NewCerts(t)
	oracle := testutil.StartMemcachedTLS(t, certs, true)
	ts, _ := startTLS(t, certs, true, userspace.Config{Mode: userspace.ModeUDP})
	run := func(addr string) string {
		t.Helper()
		host, port, _ := net.SplitHostPort(addr)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, py, "-c", pymemcacheTLS, host, port, certs.CA, certs.ClientCert, certs.ClientKey).CombinedOutput()
		if err != nil {
			t.Fatalf("pymemcache against %s: %v\n%s", addr, err, out)
		}
		return string(bytes.TrimSpace(out))
	}
	want, got := run(oracle), run(ts.srv.MemcacheAddr().String())
	if got != want {
		t.Fatalf("pymemcache over TLS:\nrebound   %s\nmemcached %s", got, want)
	}
	if !strings.Contains(got, `"hello!"`) || !strings.HasSuffix(got, "true]") {
		t.Fatalf("pymemcache's session did not run as it should: %s", got)
	}
	t.Logf("pymemcache over TLS, both servers: %s", got)
}

// TLS against plain TCP over loopback, memcached's protocol: one get
// (32-byte key, 64-byte value) a round trip, and 32 pipelined.
func BenchmarkTLS(b *testing.B) {
	certs := testutil.NewCerts(b)
	for _, mode := range []string{"plain", "tls"} {
		cfg := userspace.Config{Mode: userspace.ModeUDP, Workers: 1}
		if mode == "tls" {
			tl, err := userspace.NewTLS(userspace.TLSFiles{Cert: certs.ServerCert, Key: certs.ServerKey})
			if err != nil {
				b.Fatal(err)
			}
			cfg.TLS = tl
		}
		ts := startMCB(b, cfg)
		addr := ts.MemcacheAddr().String()
		var c net.Conn
		var err error
		if mode == "tls" {
			c, err = tls.Dial("tcp", addr, certs.ClientConfig(false))
		} else {
			c, err = net.Dial("tcp", addr)
		}
		if err != nil {
			b.Fatal(err)
		}
		key := strings.Repeat("k", 32)
		val := strings.Repeat("v", 64)
		_, _ = io.WriteString(c, setCmd(key, 0, val))
		one := "VALUE " + key + " 0 64\r\n" + val + "\r\nEND\r\n"
		if _, err := io.ReadFull(c, make([]byte, len("STORED\r\n"))); err != nil {
			b.Fatal(err)
		}
		for _, depth := range []int{1, 32} {
			req := []byte(strings.Repeat("get "+key+"\r\n", depth))
			buf := make([]byte, depth*len(one))
			b.Run(fmt.Sprintf("%s/depth=%d", mode, depth), func(b *testing.B) {
				b.SetBytes(int64(len(buf)))
				for b.Loop() {
					if _, err := c.Write(req); err != nil {
						b.Fatal(err)
					}
					if _, err := io.ReadFull(c, buf); err != nil {
						b.Fatal(err)
					}
				}
				if !bytes.HasSuffix(buf, []byte(one)) {
					b.Fatalf("reply %.100q", buf)
				}
			})
		}
		c.Close()
	}
}

// startMCB is startMC for a benchmark.
func startMCB(b *testing.B, cfg userspace.Config) *userspace.Server {
	b.Helper()
	st := store.New(store.Config{MemoryLimit: 64 << 20})
	cfg.Handler = userspace.NewService(userspace.ServiceConfig{Store: st})
	cfg.Memcache = mcserve.New(mcserve.Config{Store: st})
	cfg.Listen, cfg.MemcacheListen = "127.0.0.1:0", "127.0.0.1:0"
	srv, err := userspace.NewServer(cfg)
	if err != nil {
		b.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(srv.Stop)
	return srv
}
