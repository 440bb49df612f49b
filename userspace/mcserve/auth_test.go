package mcserve_test

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	mc "github.com/rebound-net/rebound/codec/memcache"
	"github.com/rebound-net/rebound/internal/testenv"
	"github.com/rebound-net/rebound/internal/testutil"
	"github.com/rebound-net/rebound/userspace/mcserve"
	"github.com/rebound-net/rebound/userspace/store"
)

const authFileText = "user:pass\nother:s3cret\n"

func writeAuthFile(t *testing.T, text string) string {
	p := filepath.Join(t.TempDir(), "auth")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// startMemcachedAuth starts memcached with authentication (-Y or -S), TCP
// only, and waits until its port accepts; it is stopped by its pid.
func startMemcachedAuth(t *testing.T, env []string, args ...string) string {
	t.Helper()
	testutil.StartMemcached(t) // skips (or fails in CI) without the oracle
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	argv := append([]string{"-l", "127.0.0.1", "-p", port, "-U", "0", "-t", "1"}, args...)
	if os.Geteuid() == 0 {
		argv = append(argv, "-u", "root")
	}
	cmd := exec.Command(testutil.MemcachedPath, argv...)
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addr := "127.0.0.1:" + port
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			return addr
		}
	}
	t.Fatalf("memcached %v did not listen: %s", args, stderr.String())
	return ""
}

// rawExchange writes req on a new connection, closes its write side and
// reads everything until the server closes.
func rawExchange(t *testing.T, addr string, req []byte) []byte {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(req); err != nil && !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE) {
		t.Fatal(err)
	}
	_ = c.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(c)
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("read: %v after %q", err, got)
	}
	return got
}

func authHandler(t *testing.T, path, version string) *mcserve.Handler {
	a, err := mcserve.LoadAuth(path)
	if err != nil {
		t.Fatal(err)
	}
	return mcserve.New(mcserve.Config{Store: store.New(store.Config{}), Version: version, Auth: a})
}

// TestAuthTextDifferential: text clients against memcached -Y, byte for
// byte: nothing but the login is served before it (t/ascii-auth.t).
func TestAuthTextDifferential(t *testing.T) {
	path := writeAuthFile(t, authFileText)
	oracle := startMemcachedAuth(t, nil, "-Y", path)
	ours := serveTCP(t, authHandler(t, path, "1.6.18"))
	// memcached -Y keeps only the last reply of the commands it reads at
	// once before the login (one response object, overwritten): t/ascii-auth.t
	// sends one command at a time, and so does this test.
	for _, script := range [][]string{
		{"version\r\n", "get foo\r\n", "stats\r\n"},
		{"set foo 0 0 9\r\nuser pass\r\n", "set foo 0 0 1\r\nv\r\n", "get foo\r\n"},
		{"set a 0 0 10\r\nuser wrong\r\n", "get a\r\n", "set a 0 0 9\r\nuser pass\r\n", "get a\r\n"},
		{"set a 0 0 12\r\nother s3cret\r\n", "set k 5 0 1\r\nv\r\n", "get k\r\n", "delete k\r\n"},
		{"set a 0 0 8\r\nuserpass\r\n", "get a\r\n"},
		{"set a 0 0 3\r\nuserX", "get a\r\n"},
		{"setx a 0 0 9\r\n", "user pass\r\n"},
		{"set a 0 0\r\n", "user pass\r\n"},
		{"set  a  0  0  9\r\nuser pass\r\n", "version\r\n"},
		{"set a 0 0 15\r\nuser pass extra\r\n", "version\r\n"},
		{"set a 0 0 10\r\n user pass\r\n", "version\r\n"},
		{"set a 0 0 -1\r\n", "set a 0 0 x\r\n", "\r\n"},
		{"set a 0 0 9\r\n", "user pass\r\n", "version\r\n"},
		{"quit\r\n"},
		{"set a 0 0 9\r\nuser pass\r\n", "quit\r\n"},
	} {
		want := scriptExchange(t, oracle, script)
		got := scriptExchange(t, ours, script)
		for i := range want {
			if strings.HasPrefix(want[i], "VERSION ") && strings.HasPrefix(got[i], "VERSION ") {
				continue // the version strings differ
			}
			if want[i] != got[i] {
				t.Errorf("%q, step %d:\nmemcached %q\nrebound   %q", script, i, want, got)
				break
			}
		}
	}
	// Both counted the same logins, and failures, and say auth is on.
	stats := []string{"set a 0 0 9\r\nuser pass\r\n", "stats\r\n", "stats settings\r\n"}
	want, got := scriptExchange(t, oracle, stats), scriptExchange(t, ours, stats)
	for _, f := range []string{"STAT auth_cmds ", "STAT auth_errors ", "STAT auth_enabled_ascii "} {
		if w, g := findStat(want[1]+want[2], f), findStat(got[1]+got[2], f); w == "" || w != g {
			t.Errorf("%q: memcached %q, rebound %q", f, w, g)
		}
	}
}

// findStat returns the line of stats that starts with prefix.
func findStat(stats, prefix string) string {
	for _, l := range strings.Split(stats, "\r\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}

// scriptExchange sends each request of a script on one connection and
// reads its reply (a line, or a get's lines to END; "<EOF>" if closed;
// "" when none comes within 300ms, the data of a login still to come).
func scriptExchange(t *testing.T, addr string, script []string) []string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var replies []string
	buf := make([]byte, 4096)
	for _, req := range script {
		if _, err := c.Write([]byte(req)); err != nil {
			replies = append(replies, "<EOF>")
			continue
		}
		var got []byte
		deadline := time.Now().Add(300 * time.Millisecond)
		for {
			_ = c.SetReadDeadline(deadline)
			n, err := c.Read(buf)
			got = append(got, buf[:n]...)
			s := string(got)
			if strings.HasSuffix(s, "\r\n") && (!strings.HasPrefix(s, "VALUE ") && !strings.HasPrefix(s, "STAT ") || strings.HasSuffix(s, "END\r\n")) {
				break
			}
			if err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) {
					break
				}
				got = append(got, "<EOF>"...)
				break
			}
		}
		replies = append(replies, string(got))
	}
	return replies
}

// TestAuthBinaryDifferential: binary clients against memcached -S with a
// password file (its SASL PLAIN), byte for byte.
func TestAuthBinaryDifferential(t *testing.T) {
	path := writeAuthFile(t, authFileText)
	// Debian's memcached checks SASL passwords in a Cyrus sasldb: the
	// same users, put there with saslpasswd2.
	saslpasswd := testenv.Tool(t, "/usr/sbin/saslpasswd2", "Debian: sasl2-bin")
	conf := t.TempDir()
	db := filepath.Join(conf, "sasldb2")
	for _, up := range [][2]string{{"user", "pass"}, {"other", "s3cret"}} {
		cmd := exec.Command(saslpasswd, "-p", "-c", "-a", "memcached", "-f", db, up[0])
		cmd.Stdin = strings.NewReader(up[1])
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("saslpasswd2: %v: %s", err, out)
		}
	}
	if err := os.WriteFile(filepath.Join(conf, "memcached.conf"), []byte("mech_list: plain\nsasldb_path: "+db+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	oracle := startMemcachedAuth(t, []string{"SASL_CONF_PATH=" + conf}, "-S")
	ver := rawExchange(t, oracle, packet(mc.OpVersion, 1, 0, nil, "", ""))
	h := authHandler(t, path, string(ver[24:]))
	ours := serveTCP(t, h)
	auth := func(mech, data string) []byte { return packet(mc.OpSASLAuth, 2, 0, nil, mech, data) }
	step := func(mech, data string) []byte { return packet(mc.OpSASLStep, 3, 0, nil, mech, data) }
	get := packet(mc.OpGetK, 4, 0, nil, "k", "")
	set := packet(mc.OpSet, 5, 0, setExt(1, 0), "k", "v")
	for i, req := range [][]byte{
		packet(mc.OpSASLListMechs, 1, 0, nil, "", ""),
		get,
		packet(mc.OpNoop, 1, 0, nil, "", ""),
		packet(mc.OpVersion, 1, 0, nil, "", ""),
		packet(mc.OpStat, 1, 0, nil, "", ""),
		bytes.Join([][]byte{auth("PLAIN", "\x00user\x00pass"), set, get}, nil),
		bytes.Join([][]byte{auth("PLAIN", "\x00other\x00s3cret"), get}, nil),
		bytes.Join([][]byte{auth("PLAIN", "\x00user\x00wrong"), get}, nil),
		bytes.Join([][]byte{auth("PLAIN", "\x00nobody\x00pass"), auth("PLAIN", "\x00user\x00pass"), get}, nil),
		bytes.Join([][]byte{auth("PLAIN", "user\x00user\x00pass"), get}, nil),
		bytes.Join([][]byte{auth("PLAIN", "other\x00user\x00pass"), get}, nil),
		bytes.Join([][]byte{auth("PLAIN", "garbage"), get}, nil),
		bytes.Join([][]byte{auth("CRAM-MD5", ""), get}, nil),
		bytes.Join([][]byte{step("PLAIN", "\x00user\x00pass"), get}, nil),
		bytes.Join([][]byte{auth("PLAIN", ""), step("PLAIN", "\x00user\x00pass"), get}, nil),
		bytes.Join([][]byte{auth("PLAIN", "\x00user\x00pass"), step("PLAIN", "\x00user\x00pass"), get}, nil),
		bytes.Join([][]byte{packet(mc.OpSASLListMechs, 1, 0, nil, "", ""), packet(mc.OpQuit, 1, 0, nil, "", "")}, nil),
		bytes.Join([][]byte{auth("PLAIN", "\x00user\x00pass"), packet(mc.OpSASLListMechs, 1, 0, nil, "", ""), get}, nil),
		bytes.Join([][]byte{auth("PLAIN", "\x00user\x00pass"), auth("PLAIN", "\x00user\x00bad"), get}, nil),
		bytes.Join([][]byte{auth("PLAIN", "\x00user\x00pass"), packet(mc.OpQuitQ, 1, 0, nil, "", "")}, nil),
	} {
		want := (&binPeer{casIDs: map[uint64]uint64{}}).number(t, rawExchange(t, oracle, req))
		got := (&binPeer{casIDs: map[uint64]uint64{}}).number(t, rawExchange(t, ours, req))
		if !bytes.Equal(want, got) {
			t.Errorf("request %d:\nmemcached % x\nrebound   % x", i, want[:min(len(want), 200)], got[:min(len(got), 200)])
		}
	}
}

// TestAuthUDPSilent: with authentication on, a datagram is never answered.
func TestAuthUDPSilent(t *testing.T) {
	h := authHandler(t, writeAuthFile(t, authFileText), "")
	c := h.NewConn()
	for _, p := range []string{"version\r\n", "set a 0 0 9\r\nuser pass\r\n", string(packet(mc.OpVersion, 1, 0, nil, "", ""))} {
		out, ends, _, ok := c.ServeDatagram(datagram(p), nil)
		if ok && (len(out) != 0 || len(ends) != 0) {
			t.Fatalf("%q answered over UDP: %q", p, out)
		}
	}
}

// TestAuthReload: the file is re-read whole, or not at all.
func TestAuthReload(t *testing.T) {
	path := writeAuthFile(t, authFileText)
	a, err := mcserve.LoadAuth(path)
	if err != nil {
		t.Fatal(err)
	}
	if !a.Check([]byte("user"), []byte("pass")) || a.Check([]byte("user"), []byte("pas")) || a.Check([]byte("new"), []byte("pw")) {
		t.Fatal("check before reload")
	}
	if err := os.WriteFile(path, []byte("new:pw\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	if a.Check([]byte("user"), []byte("pass")) || !a.Check([]byte("new"), []byte("pw")) {
		t.Fatal("check after reload")
	}
	if err := os.WriteFile(path, []byte("no colon here\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := a.Reload(); !errors.Is(err, mcserve.ErrAuthFile) {
		t.Fatalf("malformed file: %v", err)
	}
	if !a.Check([]byte("new"), []byte("pw")) {
		t.Fatal("a failed reload changed the users in force")
	}
	if _, err := mcserve.LoadAuth(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Fatal("a missing file loaded")
	}
	// a password may hold ':' and spaces; the user ends at the first ':'
	if err := os.WriteFile(path, []byte("u:p:w x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := a.Reload(); err != nil || !a.Check([]byte("u"), []byte("p:w x")) {
		t.Fatalf("reload: %v", err)
	}
}
