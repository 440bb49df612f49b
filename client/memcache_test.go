package client_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rebound-net/rebound/client"
	"github.com/rebound-net/rebound/internal/testutil"
)

func TestMemcacheAgainstMemcached(t *testing.T) {
	addr := testutil.StartMemcached(t)
	ctx := context.Background()
	m, err := client.DialMemcache(ctx, addr, client.MemcacheOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, err := m.Get(ctx, []byte("k")); !errors.Is(err, client.ErrCacheMiss) {
		t.Fatalf("get missing: %v", err)
	}
	if err := m.Set(ctx, []byte("k"), []byte("v1"), 42, time.Minute); err != nil {
		t.Fatal(err)
	}
	if it, err := m.Get(ctx, []byte("k")); err != nil || string(it.Value) != "v1" || it.Flags != 42 {
		t.Fatalf("get: %+v %v", it, err)
	}
	// A value spanning several UDP datagrams, read over UDP.
	big := bytes.Repeat([]byte("0123456789"), 500)
	if err := m.Set(ctx, []byte("big"), big, 0, 0); err != nil {
		t.Fatal(err)
	}
	u, err := client.DialMemcache(ctx, addr, client.MemcacheOptions{UDP: true})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	for _, key := range []string{"big", "k"} {
		it, err := u.Get(ctx, []byte(key))
		if err != nil {
			t.Fatalf("udp get %s: %v", key, err)
		}
		if key == "big" && !bytes.Equal(it.Value, big) || key == "k" && string(it.Value) != "v1" {
			t.Fatalf("udp get %s: %d bytes", key, len(it.Value))
		}
	}
	if _, err := u.Get(ctx, []byte("nobody")); !errors.Is(err, client.ErrCacheMiss) {
		t.Fatalf("udp get missing: %v", err)
	}
	if err := m.Delete(ctx, []byte("k")); err != nil {
		t.Fatal(err)
	}
	if err := m.Delete(ctx, []byte("k")); !errors.Is(err, client.ErrCacheMiss) {
		t.Fatalf("delete missing: %v", err)
	}
	for _, bad := range []string{"", "a b", strings.Repeat("x", 251), "tab\tkey"} {
		if err := m.Set(ctx, []byte(bad), nil, 0, 0); !errors.Is(err, client.ErrMemcacheKey) {
			t.Errorf("key %q: %v", bad, err)
		}
	}
	// Raw: replies as sent, a value holding "MN" lines included.
	if err := m.Set(ctx, []byte("mn"), []byte("MN\r\nMN"), 0, 0); err != nil {
		t.Fatal(err)
	}
	got, err := m.Raw(ctx, "mg mn v", "get mn", "bogus")
	if want := "VA 6\r\nMN\r\nMN\r\nVALUE mn 0 6\r\nMN\r\nMN\r\nEND\r\nERROR\r\n"; err != nil || string(got) != want {
		t.Fatalf("raw: %q %v, want %q", got, err, want)
	}
	// A set whose data block never comes times out with what came.
	short, _ := client.DialMemcache(ctx, addr, client.MemcacheOptions{Timeout: 100 * time.Millisecond})
	defer short.Close()
	if _, err := short.Raw(ctx, "set k 0 0 50"); !errors.Is(err, client.ErrTimeout) {
		t.Fatalf("raw without data: %v", err)
	}
}

// Nothing listens: UDP gets time out after their retries.
func TestMemcacheUDPTimeout(t *testing.T) {
	addr := testutil.FakePingServer(t, func(int64) (bool, time.Duration) { return false, 0 })
	u, err := client.DialMemcache(context.Background(), addr, client.MemcacheOptions{UDP: true, Timeout: 20 * time.Millisecond, Retries: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	start := time.Now()
	if _, err := u.Get(context.Background(), []byte("k")); !errors.Is(err, client.ErrTimeout) {
		t.Fatalf("%v", err)
	}
	if d := time.Since(start); d < 40*time.Millisecond || d > time.Second {
		t.Fatalf("took %v for 2 attempts of 20ms", d)
	}
}
