package e2e

import (
	"encoding/binary"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	mc "github.com/rebound-net/rebound/codec/memcache"
)

// rebound serve --auth-file, the real binary: text clients log in as
// memcached -Y's do, binary clients through SASL PLAIN; nothing else is
// served before; UDP is off, with a log line saying why; SIGHUP re-reads
// the file (a bad file leaves the users in force, with a log line).
func TestAuthServeAndReload(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "auth")
	if err := os.WriteFile(file, []byte("alice:wonder\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	port, mcPort := mcFreePort(t), mcFreePort(t)
	mcAddr := "127.0.0.1:" + strconv.Itoa(mcPort)
	s, err := startLocalServer(t, "--listen", "127.0.0.1:"+strconv.Itoa(port), "--memcache-listen", mcAddr,
		"--workers", "1", "--auth-file", file)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(s.Log(), "UDP is off: memcached authentication is required") {
		t.Fatalf("no log line says UDP is off and why:\n%s", s.Log())
	}

	// text: one request at a time, its reply read
	text := func(steps ...string) string {
		t.Helper()
		c, err := net.Dial("tcp", mcAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		var all strings.Builder
		buf := make([]byte, 4096)
		for _, req := range steps {
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := c.Write([]byte(req)); err != nil {
				t.Fatal(err)
			}
			n, err := c.Read(buf)
			if err != nil && err != io.EOF {
				t.Fatalf("%q: %v", req, err)
			}
			all.Write(buf[:n])
		}
		return all.String()
	}
	login := func(user, pass string) string {
		data := user + " " + pass
		return "set x 0 0 " + strconv.Itoa(len(data)) + "\r\n" + data + "\r\n"
	}
	if got := text("get k\r\n"); got != "CLIENT_ERROR unauthenticated\r\n" {
		t.Fatalf("before login: %q", got)
	}
	if got := text(login("alice", "wonder"), "set k 0 0 1\r\nv\r\n", "get k\r\n"); got != "STORED\r\nSTORED\r\nVALUE k 0 1\r\nv\r\nEND\r\n" {
		t.Fatalf("after login: %q", got)
	}
	if got := text(login("alice", "wrong"), "get k\r\n"); got != "CLIENT_ERROR authentication failure\r\nCLIENT_ERROR unauthenticated\r\n" {
		t.Fatalf("wrong password: %q", got)
	}

	// binary: SASL PLAIN, then a get
	pkt := func(op mc.BinaryOp, key, value string) []byte {
		b := mc.AppendBinaryHeader(nil, mc.BinaryHeader{Magic: mc.BinaryRequest, Op: op, KeyLen: uint16(len(key)), BodyLen: uint32(len(key) + len(value))})
		return append(append(b, key...), value...)
	}
	statuses := func(user, pass string) []mc.BinaryStatus {
		t.Helper()
		c, err := net.Dial("tcp", mcAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		req := append(pkt(mc.OpSASLAuth, "PLAIN", "\x00"+user+"\x00"+pass), pkt(mc.OpGet, "k", "")...)
		if _, err := c.Write(req); err != nil {
			t.Fatal(err)
		}
		var st []mc.BinaryStatus
		for range 2 {
			hdr := make([]byte, 24)
			if _, err := io.ReadFull(c, hdr); err != nil {
				return st
			}
			h, _ := mc.ParseBinaryHeader(hdr)
			if _, err := io.CopyN(io.Discard, c, int64(h.BodyLen)); err != nil {
				return st
			}
			st = append(st, h.Status)
		}
		return st
	}
	if got := statuses("alice", "wonder"); len(got) != 2 || got[0] != mc.StatusOK || got[1] != mc.StatusOK {
		t.Fatalf("binary login and get: %v", got)
	}
	if got := statuses("alice", "nope"); len(got) != 2 || got[0] != mc.StatusAuthError || got[1] != mc.StatusAuthError {
		t.Fatalf("binary wrong password: %v", got)
	}

	// UDP gets nothing
	u, err := net.Dial("udp", mcAddr)
	if err != nil {
		t.Fatal(err)
	}
	var frame [8]byte
	binary.BigEndian.PutUint16(frame[4:], 1)
	_, _ = u.Write(append(frame[:], "version\r\n"...))
	_ = u.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, err := u.Read(make([]byte, 100)); err == nil {
		t.Fatalf("UDP answered %d bytes while authentication is required", n)
	}
	u.Close()

	hup := func(wantLog string) {
		t.Helper()
		before := strings.Count(s.Log(), wantLog)
		if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(5 * time.Second); strings.Count(s.Log(), wantLog) == before; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("no %q in the log 5s after SIGHUP:\n%s", wantLog, s.Log())
			}
		}
	}
	if err := os.WriteFile(file, []byte("bob:builder\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	hup("SIGHUP: reloaded the auth file")
	if got := text(login("alice", "wonder")); got != "CLIENT_ERROR authentication failure\r\n" {
		t.Fatalf("old user after reload: %q", got)
	}
	if got := text(login("bob", "builder")); got != "STORED\r\n" {
		t.Fatalf("new user after reload: %q", got)
	}
	if err := os.WriteFile(file, []byte("no colon\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	hup("SIGHUP: auth file not reloaded")
	if got := text(login("bob", "builder")); got != "STORED\r\n" {
		t.Fatalf("a bad file on SIGHUP changed the users in force: %q", got)
	}
}
