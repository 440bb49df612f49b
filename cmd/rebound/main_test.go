package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rebound-net/rebound/internal/testutil"
	"github.com/rebound-net/rebound/userspace"
)

// freeAddr returns a loopback UDP address where nothing listens.
func freeAddr(t *testing.T) string {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close()
	return addr
}

func TestCallExitCodes(t *testing.T) {
	addr := testutil.LoopbackServer(t)
	cases := []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"call", "--target", addr, "ping", "hello"}, exitOK, "hello"},
		{[]string{"call", "--target", addr, "set", "k", "v", "--ttl", "60"}, exitOK, "SET OK"},
		{[]string{"call", "--target", addr, "--tcp", "get", "k"}, exitOK, "GET OK"},
		{[]string{"call", "--target", addr, "get", "missing"}, exitStatus, "NOT_FOUND"},
		{[]string{"call", "--target", addr, "del", "missing"}, exitStatus, "NOT_FOUND"},
		{[]string{"call", "--target", addr, "fly"}, exitUsage, ""},
		{[]string{"call", "--target", addr, "set", "onlykey"}, exitUsage, ""},
		{[]string{"call", "--target", addr, "--ttl", "soon", "set", "k", "v"}, exitUsage, ""},
		{[]string{"call", "--target", freeAddr(t), "--timeout", "50ms", "--retries", "-1", "ping"}, exitFailure, ""},
		{[]string{"nonsense"}, exitUsage, ""},
		{[]string{"serve", "--mode", "fast"}, exitUsage, ""},
		{[]string{"serve", "--kv-memory", "lots"}, exitUsage, ""},
		{[]string{"bench", "--op", "fly"}, exitUsage, ""},
		{[]string{"help"}, exitOK, "rebound serve"},
	}
	for _, c := range cases {
		var out, errb bytes.Buffer
		code := run(c.args, &out, &errb)
		if code != c.code || !strings.Contains(out.String(), c.out) {
			t.Errorf("%v: exit %d (want %d), stdout %q, stderr %q", c.args, code, c.code, out.String(), errb.String())
		}
	}
}

func TestCallJSON(t *testing.T) {
	addr := testutil.LoopbackServer(t)
	var out, errb bytes.Buffer
	if code := run([]string{"call", "--target", addr, "--json", "ping", "hi"}, &out, &errb); code != exitOK {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var m map[string]any
	if err := json.Unmarshal(out.Bytes(), &m); err != nil {
		t.Fatalf("not JSON: %q", out.String())
	}
	if m["status"] != "OK" || m["payload"] != "hi" || m["op"] != "PING" {
		t.Fatalf("json: %v", m)
	}
}

func TestBenchCommand(t *testing.T) {
	addr := testutil.LoopbackServer(t)
	var out, errb bytes.Buffer
	code := run([]string{"bench", "--target", addr, "--duration", "300ms", "--warmup", "0s", "--json", "--quiet", "--op", "mix=get:50,set:50"}, &out, &errb)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var m map[string]any
	if err := json.Unmarshal(out.Bytes(), &m); err != nil || m["throughput"].(float64) <= 0 {
		t.Fatalf("bench json: %q %v", out.String(), err)
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int{"256MiB": 256 << 20, "1GiB": 1 << 30, "64K": 64 << 10, "1000": 1000} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v", in, got, err)
		}
	}
	if _, err := parseSize("-1MiB"); err == nil {
		t.Error("negative size accepted")
	}
}

func TestStatsCommand(t *testing.T) {
	svc := userspace.NewService(userspace.ServiceConfig{KVMemory: 8 << 20})
	srv, err := userspace.NewServer(userspace.Config{Mode: userspace.ModeUDP, Listen: "127.0.0.1:0", Workers: 1, Handler: svc})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	hs := httptest.NewServer(userspace.MetricsHandler(srv, svc))
	defer hs.Close()
	var out, errb bytes.Buffer
	if code := run([]string{"call", "--target", srv.Addr().String(), "--tcp", "set", "k", "v"}, &out, &errb); code != exitOK {
		t.Fatalf("set: %s", errb.String())
	}
	metricsAddr := strings.TrimPrefix(hs.URL, "http://")
	// The tcp row counts the SET: 1 request, 1 reply. The server counts a
	// reply once its write returns, which may be just after the client
	// has read it: poll.
	tcpRow := regexp.MustCompile(`tcp\s+0\s+ok\s+1\s+1\s`)
	var summary string
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		out.Reset()
		if code := run([]string{"stats", "--metrics", metricsAddr}, &out, &errb); code != exitOK {
			t.Fatalf("stats: exit %d %s", code, errb.String())
		}
		summary = out.String()
		if tcpRow.MatchString(summary) || time.Now().After(deadline) {
			break
		}
	}
	if !tcpRow.MatchString(summary) {
		t.Fatalf("tcp row does not count the request:\n%s", summary)
	}
	for _, want := range []string{"transport", "kv store:", "items"} {
		if !strings.Contains(summary, want) {
			t.Fatalf("summary lacks %q:\n%s", want, summary)
		}
	}
	out.Reset()
	if code := run([]string{"stats", "--metrics", metricsAddr, "--raw"}, &out, &errb); code != exitOK || !strings.Contains(out.String(), `rebound_requests_total{queue="0",transport="tcp"} 1`) {
		t.Fatalf("stats --raw: %s", out.String())
	}
	if code := run([]string{"stats", "--metrics", freeAddr(t)}, &out, &errb); code != exitFailure {
		t.Fatalf("stats against nothing: exit %d", code)
	}
}

func TestParseSamples(t *testing.T) {
	in := "# TYPE rebound_drops_total counter\n" +
		`rebound_drops_total{queue="3",reason="bad_ip",transport="xdp"} 42` + "\n" +
		"# TYPE rebound_kv_items gauge\nrebound_kv_items 7\n" +
		"# TYPE go_goroutines gauge\ngo_goroutines 9\n"
	got, err := parseSamples(strings.NewReader(in))
	if err != nil || len(got) != 2 {
		t.Fatalf("%+v %v", got, err)
	}
	for _, s := range got {
		switch s.name {
		case "rebound_drops_total":
			if s.labels["reason"] != "bad_ip" || s.labels["queue"] != "3" || s.value != 42 {
				t.Fatalf("%+v", s)
			}
		case "rebound_kv_items":
			if s.value != 7 {
				t.Fatalf("%+v", s)
			}
		default:
			t.Fatalf("unexpected %+v", s)
		}
	}
	if _, err := parseSamples(strings.NewReader("garbage{\n")); err == nil {
		t.Fatal("garbage parsed")
	}
}
