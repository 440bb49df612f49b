package client_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rebound-net/rebound/client"
	"github.com/rebound-net/rebound/codec/rebound"
	"github.com/rebound-net/rebound/internal/testutil"
)

// Bad arguments are typed errors, and nothing reaches the server.
func TestBadArgumentsNotSent(t *testing.T) {
	s := startKV(t, nil)
	ctx := context.Background()
	c, err := client.Dial(ctx, s.addr, client.Options{NoTCPRetry: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	long := bytes.Repeat([]byte("k"), 251)
	cases := []struct {
		name string
		err  error
		want error
	}{
		{"set negative ttl", c.Set(ctx, []byte("k"), nil, -time.Second), client.ErrNegativeTTL},
		{"set empty key", c.Set(ctx, nil, nil, 0), client.ErrKeyLength},
		{"set long key", c.Set(ctx, long, nil, 0), client.ErrKeyLength},
		{"get long key", func() error { _, err := c.Get(ctx, long); return err }(), client.ErrKeyLength},
		{"get empty key", func() error { _, err := c.Get(ctx, nil); return err }(), rebound.ErrKeyLength},
		{"del long key", c.Del(ctx, long), client.ErrKeyLength},
		// 1473 bytes of request: over one datagram of a 1500-byte MTU.
		{"set over a datagram", c.Set(ctx, []byte("k"), make([]byte, 1473-rebound.HeaderLen-6), 0), client.ErrValueTooLarge},
		{"set over 64 KiB", c.Set(ctx, []byte("k"), make([]byte, 65536), 0), client.ErrValueTooLarge},
	}
	for _, tc := range cases {
		var ae *client.ArgError
		if !errors.Is(tc.err, tc.want) || !errors.As(tc.err, &ae) {
			t.Errorf("%s: %v, want an *ArgError matching %v", tc.name, tc.err, tc.want)
		}
	}
	// The largest SET that fits a datagram goes; the server sees only it.
	if err := c.Set(ctx, []byte("k"), make([]byte, 1472-rebound.HeaderLen-6), 0); err != nil {
		t.Fatalf("set of one full datagram: %v", err)
	}
	if n := s.total(); n != 1 {
		t.Fatalf("server saw %d requests, want only the valid one", n)
	}
}

// A UDP client sends a SET too large for one datagram over TCP; a TCP
// client refuses only what a header cannot announce.
func TestLargeSetOverTCP(t *testing.T) {
	addr := testutil.LoopbackServer(t)
	ctx := context.Background()
	big := bytes.Repeat([]byte("b"), 3000)
	for _, tcp := range []bool{false, true} {
		c, err := client.Dial(ctx, addr, client.Options{TCP: tcp})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Set(ctx, []byte("big"), big, 0); err != nil {
			t.Fatalf("tcp=%v set of 3000 bytes: %v", tcp, err)
		}
		if err := c.Set(ctx, []byte("big"), make([]byte, 65531), 0); !errors.Is(err, client.ErrValueTooLarge) {
			t.Fatalf("tcp=%v set of 65536 bytes of payload: %v", tcp, err)
		}
		c.Close()
	}
}

// lineServer is a fake memcached on loopback TCP that records every line
// it receives and answers "mn" with "MN".
func lineServer(t *testing.T) (addr string, lines func() []string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var mu sync.Mutex
	var got []string
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					l, err := r.ReadString('\n')
					if err != nil {
						return
					}
					l = strings.TrimRight(l, "\r\n")
					mu.Lock()
					got = append(got, l)
					mu.Unlock()
					if l == "mn" {
						_, _ = c.Write([]byte("MN\r\n"))
					}
				}
			}()
		}
	}()
	return ln.Addr().String(), func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), got...)
	}
}

func TestMemcacheBadArgumentsNotSent(t *testing.T) {
	addr, lines := lineServer(t)
	ctx := context.Background()
	m, err := client.DialMemcache(ctx, addr, client.MemcacheOptions{MaxValue: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	cases := []struct {
		name string
		err  error
		want error
	}{
		{"negative ttl", m.Set(ctx, []byte("k"), nil, 0, -time.Minute), client.ErrNegativeTTL},
		{"value over MaxValue", m.Set(ctx, []byte("k"), make([]byte, 101), 0, 0), client.ErrValueTooLarge},
		{"space", m.Set(ctx, []byte("a b"), nil, 0, 0), client.ErrMemcacheKey},
		{"newline", m.Delete(ctx, []byte("a\r\nflush_all")), client.ErrMemcacheKey},
		{"DEL byte", m.Delete(ctx, []byte("a\x7f")), client.ErrMemcacheKey},
		{"NUL", func() error { _, err := m.Get(ctx, []byte("a\x00")); return err }(), client.ErrMemcacheKey},
		{"empty", func() error { _, err := m.Get(ctx, nil); return err }(), client.ErrMemcacheKey},
		{"251 bytes", m.Set(ctx, bytes.Repeat([]byte("k"), 251), nil, 0, 0), client.ErrMemcacheKey},
	}
	for _, tc := range cases {
		var ae *client.ArgError
		if !errors.Is(tc.err, tc.want) || !errors.As(tc.err, &ae) {
			t.Errorf("%s: %v, want an *ArgError matching %v", tc.name, tc.err, tc.want)
		}
	}
	if _, err := m.Raw(ctx); err != nil {
		t.Fatal(err)
	}
	if got := lines(); len(got) != 1 || got[0] != "mn" {
		t.Fatalf("the server received %q, want only the mn of Raw", got)
	}
}
