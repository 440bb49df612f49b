package main

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"net"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rebound-net/rebound/internal/testutil"
	"github.com/rebound-net/rebound/userspace"
	"github.com/rebound-net/rebound/userspace/mcserve"
	"github.com/rebound-net/rebound/userspace/store"
)

// lockedBuffer is a bytes.Buffer that watch writes while the test reads.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitFor polls until the output has n lines of rates, or fails.
func (b *lockedBuffer) waitFor(t *testing.T, n int, within time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(within); len(rateLines(b.String())) < n; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no %d lines of rates after %s:\n%s", n, within, b.String())
		}
	}
}

// rateLines returns the rate lines of watch's output, each as the header's
// column name to value.
func rateLines(out string) []map[string]float64 {
	var header []string
	var rows []map[string]float64
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) > 0 && f[0] == "time":
			header = f
		case header != nil && len(f) == len(header) && strings.Count(f[0], ":") == 2:
			row := map[string]float64{}
			for i := 1; i < len(f); i++ {
				row[header[i]], _ = strconv.ParseFloat(f[i], 64)
			}
			rows = append(rows, row)
		}
	}
	return rows
}

// totals parses watch's last line: "total over 3.0s: req 12, replies 12, ...".
func totals(t *testing.T, out string) map[string]float64 {
	t.Helper()
	i := strings.LastIndex(out, "total over ")
	if i < 0 {
		t.Fatalf("no totals line:\n%s", out)
	}
	_, list, _ := strings.Cut(strings.TrimSpace(out[i:]), ": ")
	m := map[string]float64{}
	for _, kv := range strings.Split(list, ", ") {
		k, v, _ := strings.Cut(kv, " ")
		n, err := strconv.ParseFloat(v, 64)
		if err != nil {
			t.Fatalf("totals %q: %v", kv, err)
		}
		m[k] = n
	}
	return m
}

// TestStatsWatch runs 'rebound stats --watch' against a live server with
// memcached's protocol for three 1-second intervals; between the first
// and the second line a client sends a known set of commands. The totals
// are those commands exactly; the rates add up to them; the first line,
// before the load, is all zeros.
func TestStatsWatch(t *testing.T) {
	st := store.New(store.Config{MemoryLimit: 8 << 20})
	svc := userspace.NewService(userspace.ServiceConfig{Store: st})
	srv, err := userspace.NewServer(userspace.Config{Mode: userspace.ModeUDP, Listen: "127.0.0.1:0", Workers: 1,
		MemcacheListen: "127.0.0.1:0", Handler: svc,
		Memcache: mcserve.New(mcserve.Config{Store: st})})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	hs := httptest.NewServer(userspace.MetricsHandler(srv, svc))
	t.Cleanup(hs.Close)
	metrics := strings.TrimPrefix(hs.URL, "http://")
	conn, err := net.Dial("tcp", srv.MemcacheAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })

	const sets, hits, misses = 40, 25, 15
	var cmds bytes.Buffer
	for i := range sets {
		fmt.Fprintf(&cmds, "set k%d 0 0 5\r\nvalue\r\n", i)
	}
	for i := range hits {
		fmt.Fprintf(&cmds, "get k%d\r\n", i)
	}
	for i := range misses {
		fmt.Fprintf(&cmds, "get nope%d\r\n", i)
	}
	cmds.WriteString("mn\r\n")
	wantOut := sets*len("STORED\r\n") + hits*len("VALUE k0 0 5\r\nvalue\r\nEND\r\n") + misses*len("END\r\n") + len("MN\r\n")
	for i := 10; i < hits; i++ { // two-digit keys
		wantOut++
	}

	var out, errb lockedBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	go func() { done <- watch(ctx, metrics, time.Second, 3, &out, &errb) }()
	out.waitFor(t, 1, 10*time.Second)
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write(cmds.Bytes()); err != nil {
		t.Fatal(err)
	}
	var got []byte
	buf := make([]byte, 64<<10)
	for !bytes.HasSuffix(got, []byte("MN\r\n")) {
		n, err := conn.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			t.Fatalf("after %d bytes: %v", len(got), err)
		}
	}
	if len(got) != wantOut {
		t.Fatalf("the server answered %d bytes, want %d", len(got), wantOut)
	}
	var code int
	select {
	case code = <-done:
	case <-time.After(15 * time.Second):
		t.Fatalf("watch --count 3 still running:\n%s", out.String())
	}
	text := out.String()
	if code != exitOK || errb.String() != "" {
		t.Fatalf("exit %d, stderr %q\n%s", code, errb.String(), text)
	}
	t.Logf("\n%s", text)
	rows := rateLines(text)
	if len(rows) != 3 {
		t.Fatalf("%d lines of rates, want 3:\n%s", len(rows), text)
	}
	for k, v := range rows[0] {
		if strings.HasSuffix(k, "/s") && v != 0 {
			t.Errorf("first line, before any load: %s %v, want 0", k, v)
		}
	}
	tot := totals(t, text)
	want := map[string]float64{"sets": sets, "hits": hits, "misses": misses, "bytes-in": float64(cmds.Len()),
		"bytes-out": float64(wantOut), "drops": 0, "errors": 0, "evict": 0}
	for k, v := range want {
		if tot[k] != v {
			t.Errorf("total %s %v, want %v", k, tot[k], v)
		}
	}
	// The TCP transport counts a request per read of the stream: one
	// pipelined write is read in one to a few.
	if tot["req"] < 1 || tot["req"] > sets+hits+misses || tot["replies"] < 1 {
		t.Errorf("totals: %v requests and %v replies for %d commands in one write", tot["req"], tot["replies"], sets+hits+misses)
	}
	// The rates are per second over 1-second intervals: they add up to
	// the totals, within the timer's slack.
	for k, v := range want {
		if v == 0 {
			continue
		}
		sum := 0.0
		for _, r := range rows {
			sum += r[k+"/s"]
		}
		if math.Abs(sum-v) > 0.25*v+1 {
			t.Errorf("%s/s adds up to %v over three 1s lines, the total is %v", k, sum, v)
		}
	}
	if last := rows[2]; last["items"] != sets || last["bytes"] == 0 || last["conns"] != 1 {
		t.Errorf("last line: items %v (want %d), bytes %v, conns %v (want 1)", last["items"], sets, last["bytes"], last["conns"])
	}
}

// TestStatsWatchInterrupted: without --count, watch runs until its
// context ends (the interrupt), then prints the totals.
func TestStatsWatchInterrupted(t *testing.T) {
	srv := testutil.StartLoopbackServer(t)
	hs := httptest.NewServer(userspace.MetricsHandler(srv, nil))
	t.Cleanup(hs.Close)
	var out, errb lockedBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { done <- watch(ctx, strings.TrimPrefix(hs.URL, "http://"), 50*time.Millisecond, 0, &out, &errb) }()
	out.waitFor(t, 2, 10*time.Second)
	cancel()
	select {
	case code := <-done:
		if code != exitOK || !strings.Contains(out.String(), "total over ") {
			t.Fatalf("exit %d, stderr %q:\n%s", code, errb.String(), out.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("watch did not stop when its context ended")
	}
	// Interrupted before its first line: it stops at once, with totals.
	out = lockedBuffer{}
	go func() { done <- watch(ctx, strings.TrimPrefix(hs.URL, "http://"), time.Hour, 0, &out, &errb) }()
	select {
	case code := <-done:
		if code != exitOK || !strings.Contains(out.String(), "total over 0.0s: req 0,") {
			t.Fatalf("interrupted before the first line: exit %d, stderr %q:\n%s", code, errb.String(), out.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("watch interrupted before its first line did not stop")
	}

	for _, args := range [][]string{
		{"stats", "--watch", "1ms"}, {"stats", "--watch", "1s", "--count", "-1"}, {"stats", "--watch", "1s", "--raw"},
		{"stats", "--count", "3"},
	} {
		var o, e bytes.Buffer
		if code := run(args, &o, &e); code != exitUsage {
			t.Errorf("%v: exit %d, want usage", args, code)
		}
	}
	var o, e bytes.Buffer
	if code := run([]string{"stats", "--metrics", freeAddr(t), "--watch", "1s", "--count", "1"}, &o, &e); code != exitFailure {
		t.Errorf("watch against nothing: exit %d", code)
	}
}
