package client_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/rebound-net/rebound/client"
	"github.com/rebound-net/rebound/codec/rebound"
	"github.com/rebound-net/rebound/internal/testutil"
)

func TestEveryOp(t *testing.T) {
	addr := testutil.LoopbackServer(t)
	ctx := context.Background()
	for _, tcp := range []bool{false, true} {
		c, err := client.Dial(ctx, addr, client.Options{TCP: tcp})
		if err != nil {
			t.Fatal(err)
		}
		key := []byte("key")
		if tcp {
			key = []byte("tcp-key")
		}
		if got, err := c.Ping(ctx, []byte("hi")); err != nil || string(got) != "hi" {
			t.Fatalf("tcp=%v ping: %q %v", tcp, got, err)
		}
		if _, err := c.Get(ctx, key); !errors.Is(err, client.ErrNotFound) {
			t.Fatalf("tcp=%v get missing: %v", tcp, err)
		}
		if err := c.Set(ctx, key, []byte("v1"), 0); err != nil {
			t.Fatal(err)
		}
		if got, err := c.Get(ctx, key); err != nil || string(got) != "v1" {
			t.Fatalf("tcp=%v get: %q %v", tcp, got, err)
		}
		if err := c.Del(ctx, key); err != nil {
			t.Fatal(err)
		}
		if err := c.Del(ctx, key); !errors.Is(err, client.ErrNotFound) {
			t.Fatalf("tcp=%v del missing: %v", tcp, err)
		}
		r, err := c.Do(ctx, 0x33, nil)
		if err != nil || r.Status != rebound.StatusUnknownOp {
			t.Fatalf("tcp=%v unknown op: %+v %v", tcp, r, err)
		}
		if err := c.Set(ctx, nil, nil, 0); !errors.Is(err, rebound.ErrKeyLength) {
			t.Fatalf("empty key: %v", err)
		}
		c.Close()
		if _, err := c.Ping(ctx, nil); !errors.Is(err, client.ErrClosed) {
			t.Fatalf("after Close: %v", err)
		}
	}
}

func TestConcurrentCalls(t *testing.T) {
	addr := testutil.LoopbackServer(t)
	for _, tcp := range []bool{false, true} {
		c, err := client.Dial(context.Background(), addr, client.Options{TCP: tcp, Conns: 2})
		if err != nil {
			t.Fatal(err)
		}
		errc := make(chan error, 16)
		for g := 0; g < 16; g++ {
			go func() {
				for i := 0; i < 200; i++ {
					want := []byte{byte(g), byte(i)}
					got, err := c.Ping(context.Background(), want)
					if err != nil || !bytes.Equal(got, want) {
						errc <- errors.Join(err, errors.New("reply mismatched its request"))
						return
					}
				}
				errc <- nil
			}()
		}
		for g := 0; g < 16; g++ {
			if err := <-errc; err != nil {
				t.Fatalf("tcp=%v: %v", tcp, err)
			}
		}
		c.Close()
	}
}

func TestRetryAfterLoss(t *testing.T) {
	// Drop the first two datagrams: the third attempt is answered.
	addr := testutil.FakePingServer(t, func(n int64) (bool, time.Duration) { return n >= 2, 0 })
	c, err := client.Dial(context.Background(), addr, client.Options{Timeout: 50 * time.Millisecond, Retries: 3, Backoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got, err := c.Ping(context.Background(), []byte("x")); err != nil || string(got) != "x" {
		t.Fatalf("ping after two losses: %q %v", got, err)
	}
	// No retries: a loss is a timeout.
	addr2 := testutil.FakePingServer(t, func(int64) (bool, time.Duration) { return false, 0 })
	c2, _ := client.Dial(context.Background(), addr2, client.Options{Timeout: 30 * time.Millisecond, Retries: -1})
	defer c2.Close()
	start := time.Now()
	if _, err := c2.Ping(context.Background(), nil); !errors.Is(err, client.ErrTimeout) || time.Since(start) > time.Second {
		t.Fatalf("no retries: %v after %v", err, time.Since(start))
	}
}

func TestCancellation(t *testing.T) {
	addr := testutil.FakePingServer(t, func(int64) (bool, time.Duration) { return false, 0 })
	c, _ := client.Dial(context.Background(), addr, client.Options{Timeout: 10 * time.Second})
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(50 * time.Millisecond); cancel() }()
	start := time.Now()
	if _, err := c.Ping(ctx, nil); !errors.Is(err, context.Canceled) || time.Since(start) > 2*time.Second {
		t.Fatalf("cancelled call: %v after %v", err, time.Since(start))
	}
}

func TestTruncatedFallsBackToTCP(t *testing.T) {
	addr := testutil.LoopbackServer(t)
	ctx := context.Background()
	big := bytes.Repeat([]byte("z"), 1000)
	c, _ := client.Dial(ctx, addr, client.Options{})
	defer c.Close()
	if err := c.Set(ctx, []byte("big"), big, 0); err != nil {
		t.Fatal(err)
	}
	r, err := c.Do(ctx, rebound.OpGet, []byte{3, 'b', 'i', 'g'})
	if err != nil || !bytes.Equal(r.Payload, big) || r.Via != "tcp-after-truncated" {
		t.Fatalf("GET of 1000 bytes: via %q, %d bytes, %v", r.Via, len(r.Payload), err)
	}
	// Padded GETs get it over UDP first.
	p, _ := client.Dial(ctx, addr, client.Options{PadGets: true})
	defer p.Close()
	r, err = p.Do(ctx, rebound.OpGet, []byte{3, 'b', 'i', 'g'})
	if err != nil || !bytes.Equal(r.Payload, big) || r.Via != "udp-padded" {
		t.Fatalf("padded GET: via %q, %d bytes, %v", r.Via, len(r.Payload), err)
	}
	n, _ := client.Dial(ctx, addr, client.Options{NoTCPRetry: true})
	defer n.Close()
	if _, err := n.Get(ctx, []byte("big")); !errors.Is(err, client.ErrTruncated) {
		t.Fatalf("without fallback: %v", err)
	}
}
