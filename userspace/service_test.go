package userspace

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/rebound-net/rebound/codec/rebound"
	"github.com/rebound-net/rebound/userspace/store"
)

// testClock is a settable clock for store.Config.Now.
type testClock struct{ ns atomic.Int64 }

func (c *testClock) Now() time.Time { return time.Unix(0, c.ns.Load()) }

// serveOne runs one request through svc and returns its reply.
func serveOne(t *testing.T, svc *Service, op rebound.Op, payload []byte, out int) Message {
	t.Helper()
	batch := []Message{{Op: op, Payload: payload, Out: make([]byte, 0, out)}}
	svc.Serve(batch)
	return batch[0]
}

// payload encodes a request with enc and returns its payload.
func payload(t *testing.T, enc func(b []byte) (int, error)) []byte {
	t.Helper()
	b := make([]byte, 1<<17)
	n, err := enc(b)
	if err != nil {
		t.Fatal(err)
	}
	r := rebound.ParseDatagram(b[:n])
	return r.Payload
}

func setPayload(t *testing.T, key string, ttl uint32, value []byte) []byte {
	return payload(t, func(b []byte) (int, error) { return rebound.EncodeSet(b, 1, []byte(key), ttl, value) })
}

func getPayload(t *testing.T, key string) []byte {
	return payload(t, func(b []byte) (int, error) { return rebound.EncodeGet(b, 1, []byte(key), 0) })
}

func delPayload(t *testing.T, key string) []byte {
	return payload(t, func(b []byte) (int, error) { return rebound.EncodeDel(b, 1, []byte(key)) })
}

func TestServiceSharedStore(t *testing.T) {
	clk := &testClock{}
	clk.ns.Store(1_700_000_000e9)
	st := store.New(store.Config{MemoryLimit: 8 << 20, Now: clk.Now})
	t.Cleanup(func() { st.FlushAll(0) })
	svc := NewService(ServiceConfig{Store: st})
	if svc.Store() != st {
		t.Fatal("service does not serve the given store")
	}
	if svc.MaxValue() != rebound.MaxPayload {
		t.Fatalf("MaxValue %d", svc.MaxValue())
	}

	// Stored as memcached would (flags 5): read over Rebound.
	st.Set([]byte("mc"), []byte("from memcached"), store.ModeSet, 5, 0, 0)
	if m := serveOne(t, svc, rebound.OpGet, getPayload(t, "mc"), 100); m.Status != rebound.StatusOK || string(m.Out) != "from memcached" {
		t.Fatalf("get: %v %q", m.Status, m.Out)
	}
	// Too big for the reply: truncated, not copied.
	if m := serveOne(t, svc, rebound.OpGet, getPayload(t, "mc"), 4); !m.Truncated || len(m.Out) != 0 {
		t.Fatalf("small reply: %+v", m)
	}

	// Set over Rebound with a TTL: read from the store, flags 0.
	if m := serveOne(t, svc, rebound.OpSet, setPayload(t, "rb", 10, []byte("from rebound")), 0); m.Status != rebound.StatusOK {
		t.Fatalf("set: %v", m.Status)
	}
	v, meta, ok := st.Get([]byte("rb"), nil)
	if !ok || string(v) != "from rebound" || meta.Flags != 0 || meta.Exptime != clk.Now().Unix()+10 {
		t.Fatalf("store view: %q %+v %v", v, meta, ok)
	}
	// A Rebound SET over a memcached item resets its flags.
	serveOne(t, svc, rebound.OpSet, setPayload(t, "mc", 0, []byte("x")), 0)
	if _, meta, _ := st.Get([]byte("mc"), nil); meta.Flags != 0 {
		t.Fatalf("flags after a Rebound SET: %d", meta.Flags)
	}

	// Expired: GET and DEL answer NOT_FOUND.
	clk.ns.Add(int64(10 * time.Second))
	if m := serveOne(t, svc, rebound.OpGet, getPayload(t, "rb"), 100); m.Status != rebound.StatusNotFound {
		t.Fatalf("get expired: %v", m.Status)
	}
	serveOne(t, svc, rebound.OpSet, setPayload(t, "rb2", 1, []byte("v")), 0)
	clk.ns.Add(int64(time.Second))
	if m := serveOne(t, svc, rebound.OpDel, delPayload(t, "rb2"), 0); m.Status != rebound.StatusNotFound {
		t.Fatalf("del expired: %v", m.Status)
	}
	if m := serveOne(t, svc, rebound.OpDel, delPayload(t, "mc"), 0); m.Status != rebound.StatusOK {
		t.Fatalf("del: %v", m.Status)
	}
	if s := svc.StoreStats(); s.Items != 0 || s.Expired != 2 {
		t.Fatalf("stats: %+v", s)
	}
}

func TestServiceMaxValue(t *testing.T) {
	tests := []struct {
		name string
		cfg  ServiceConfig
		want int
	}{
		{"default", ServiceConfig{KVMemory: 8 << 20}, rebound.MaxPayload},
		{"configured", ServiceConfig{KVMemory: 8 << 20, MaxValue: 2000}, 2000},
		{"store bound", ServiceConfig{Store: store.New(store.Config{MaxItemSize: 1000})}, 1000},
		{"over the store", ServiceConfig{Store: store.New(store.Config{MaxItemSize: 1000}), MaxValue: 5000}, 1000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc := NewService(tt.cfg)
			if got := svc.MaxValue(); got != tt.want {
				t.Fatalf("MaxValue %d, want %d", got, tt.want)
			}
			if tt.want >= rebound.MaxPayload-300 {
				return // no request can carry a bigger value
			}
			big := make([]byte, tt.want+1)
			if m := serveOne(t, svc, rebound.OpSet, setPayload(t, "k", 0, big), 0); m.Status != rebound.StatusTooLarge {
				t.Fatalf("set over MaxValue: %v", m.Status)
			}
		})
	}
}
