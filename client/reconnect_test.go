package client_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/rebound-net/rebound/client"
	"github.com/rebound-net/rebound/userspace"
	"github.com/rebound-net/rebound/userspace/mcserve"
	"github.com/rebound-net/rebound/userspace/store"
)

const shortIdle = 200 * time.Millisecond

// idleServer starts a server (Rebound and memcached protocols) that closes
// TCP connections idle for shortIdle.
func idleServer(t *testing.T) (rb, mc string) {
	t.Helper()
	st := store.New(store.Config{MemoryLimit: 8 << 20})
	srv, err := userspace.NewServer(userspace.Config{Mode: userspace.ModeUDP, Listen: "127.0.0.1:0", Workers: 1,
		IdleTimeout: shortIdle, MemcacheListen: "127.0.0.1:0",
		Handler:  userspace.NewService(userspace.ServiceConfig{Store: st}),
		Memcache: mcserve.New(mcserve.Config{Store: st})})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	return srv.Addr().String(), srv.MemcacheAddr().String()
}

// waitIdleClose returns once the server has closed, as idle, connections
// last used before the call: it opens a witness connection to addr and
// waits (at most 10 s) for the server to close that one, which it does
// after closing every connection idle since before.
func waitIdleClose(t *testing.T, addr string) {
	t.Helper()
	w, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	_ = w.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := w.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("witness connection: %v, want the server to close it as idle", err)
	}
}

// A TCP connection the server closed as idle is dialled again by the next
// call, which succeeds: for a TCP client, and for the TCP fallback of a
// UDP client.
func TestReconnectAfterIdle(t *testing.T) {
	rb, _ := idleServer(t)
	ctx := context.Background()
	tc, err := client.Dial(ctx, rb, client.Options{TCP: true, Conns: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	big := bytes.Repeat([]byte("z"), 1000)
	if err := tc.Set(ctx, []byte("big"), big, 0); err != nil {
		t.Fatal(err)
	}
	uc, err := client.Dial(ctx, rb, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	if v, err := uc.Get(ctx, []byte("big")); err != nil || !bytes.Equal(v, big) {
		t.Fatalf("UDP get of 1000 bytes (TCP fallback): %d bytes, %v", len(v), err)
	}
	for round := range 2 {
		waitIdleClose(t, rb)
		for i := range 4 { // both connections of the pool
			if got, err := tc.Ping(ctx, []byte("hi")); err != nil || string(got) != "hi" {
				t.Fatalf("round %d: TCP ping %d after the server closed idle connections: %q %v", round, i, got, err)
			}
		}
		if err := tc.Del(ctx, []byte("nobody")); !errors.Is(err, client.ErrNotFound) {
			t.Fatalf("round %d: TCP del: %v", round, err)
		}
		r, err := uc.Do(ctx, 0x02, []byte{3, 'b', 'i', 'g'})
		if err != nil || !bytes.Equal(r.Payload, big) || r.Via != "tcp-after-truncated" {
			t.Fatalf("round %d: UDP get after idle: via %q, %d bytes, %v", round, r.Via, len(r.Payload), err)
		}
	}
}

// A dial that fails is the call's error; the next call dials again.
func TestReconnectDialError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	c, err := client.Dial(context.Background(), addr, client.Options{TCP: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	(<-accepted).Close()
	ln.Close() // nothing listens now: the redial fails
	if _, err := c.Ping(context.Background(), nil); err == nil || errors.Is(err, client.ErrTimeout) {
		t.Fatalf("ping with the server gone: %v, want a connection or dial error", err)
	}
	var oe *net.OpError
	if _, err := c.Ping(context.Background(), nil); !errors.As(err, &oe) || oe.Op != "dial" {
		t.Fatalf("second ping: %v, want the dial's error", err)
	}
}

// The memcached client's TCP connection, closed as idle, is dialled again
// by the next call, whatever the call.
func TestMemcacheReconnectAfterIdle(t *testing.T) {
	_, mc := idleServer(t)
	ctx := context.Background()
	m, err := client.DialMemcache(ctx, mc, client.MemcacheOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.Set(ctx, []byte("k"), []byte("v"), 7, 0); err != nil {
		t.Fatal(err)
	}
	calls := []struct {
		name string
		do   func() error
	}{
		{"get", func() error {
			it, err := m.Get(ctx, []byte("k"))
			if err == nil && string(it.Value) != "v" {
				err = errors.New("wrong value " + string(it.Value))
			}
			return err
		}},
		{"set", func() error { return m.Set(ctx, []byte("k2"), []byte("v2"), 0, 0) }},
		{"delete", func() error { return m.Delete(ctx, []byte("k2")) }},
		{"raw", func() error {
			out, err := m.Raw(ctx, "get k")
			if err == nil && string(out) != "VALUE k 7 1\r\nv\r\nEND\r\n" {
				err = errors.New("raw reply " + string(out))
			}
			return err
		}},
	}
	for _, call := range calls {
		waitIdleClose(t, mc)
		if err := call.do(); err != nil {
			t.Fatalf("%s after the server closed the idle connection: %v", call.name, err)
		}
	}
}
