package client_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/rebound-net/rebound/client"
	"github.com/rebound-net/rebound/codec/rebound"
)

var fastRetry = client.Options{Timeout: 50 * time.Millisecond, Retries: 3, Backoff: time.Millisecond}

// A DEL that deleted the key but whose reply was lost is resent; the
// resend finds NOT_FOUND, and Del reports the success it was.
func TestDelRetryAfterLostReply(t *testing.T) {
	s := startKV(t, func(n int, _ rebound.Op) bool { return n == 0 })
	s.put("k", "v")
	c, err := client.Dial(context.Background(), s.addr, fastRetry)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Del(context.Background(), []byte("k")); err != nil {
		t.Fatalf("DEL whose first reply was lost: %v, want success", err)
	}
	if got := s.count(rebound.OpDel); got != 2 {
		t.Fatalf("server saw %d DELs, want 2 (the first and its resend)", got)
	}
	// Answered at once, a DEL of a missing key is still NOT_FOUND.
	if err := c.Del(context.Background(), []byte("k")); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("DEL of a missing key: %v", err)
	}
	// Do gives the raw reply and says it was sent twice.
	s2 := startKV(t, func(n int, _ rebound.Op) bool { return n == 0 })
	c2, _ := client.Dial(context.Background(), s2.addr, fastRetry)
	defer c2.Close()
	r, err := c2.Do(context.Background(), rebound.OpDel, []byte{1, 'x'})
	if err != nil || r.Status != rebound.StatusNotFound || r.Attempts != 2 {
		t.Fatalf("Do(DEL) after a lost reply: %+v %v", r, err)
	}
}

// SET, GET and PING are resent after a lost reply; a SET's resend
// leaves the value it stored.
func TestIdempotentOpsRetry(t *testing.T) {
	s := startKV(t, func(n int, _ rebound.Op) bool { return n%2 == 0 }) // every first copy's reply is lost
	c, err := client.Dial(context.Background(), s.addr, fastRetry)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	if err := c.Set(ctx, []byte("k"), []byte("v"), 0); err != nil {
		t.Fatalf("SET: %v", err)
	}
	if v, err := c.Get(ctx, []byte("k")); err != nil || string(v) != "v" {
		t.Fatalf("GET: %q %v", v, err)
	}
	if v, err := c.Ping(ctx, []byte("p")); err != nil || string(v) != "p" {
		t.Fatalf("PING: %q %v", v, err)
	}
	for _, op := range []rebound.Op{rebound.OpSet, rebound.OpGet, rebound.OpPing} {
		if got := s.count(op); got != 2 {
			t.Errorf("%v sent %d times, want 2", op, got)
		}
	}
}

// An op the client does not know is sent once: it may not be idempotent.
func TestUnknownOpNotResent(t *testing.T) {
	s := startKV(t, func(int, rebound.Op) bool { return true })
	c, err := client.Dial(context.Background(), s.addr, fastRetry)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Do(context.Background(), 0x33, nil); !errors.Is(err, client.ErrTimeout) {
		t.Fatalf("unanswered unknown op: %v", err)
	}
	if got := s.total(); got != 1 {
		t.Fatalf("unknown op sent %d times, want once", got)
	}
}
