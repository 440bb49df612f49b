package loadgen_test

import (
	"context"
	"testing"
	"time"

	"github.com/rebound-net/rebound/codec/memcache"
	"github.com/rebound-net/rebound/codec/rebound"
	"github.com/rebound-net/rebound/internal/testutil"
	"github.com/rebound-net/rebound/loadgen"
)

// Against the real memcached: every reply checks out, GETs of preloaded
// keys hit, over UDP (one and several datagrams a reply) and TCP.
func TestBenchMemcached(t *testing.T) {
	addr := testutil.StartMemcached(t)
	mix := []loadgen.OpShare{{Op: rebound.OpGet, Weight: 90}, {Op: rebound.OpSet, Weight: 10}}
	for _, c := range []struct {
		name      string
		tcp       bool
		flows     int
		valueSize int
	}{{"udp", false, 2, 64}, {"udp-multi-datagram", false, 1, 3000}, {"tcp", true, 2, 64}} {
		t.Run(c.name, func(t *testing.T) {
			res, err := loadgen.Bench(context.Background(), loadgen.BenchConfig{Target: addr, Protocol: loadgen.Memcache, TCP: c.tcp,
				Mix: mix, Keys: 500, ValueSize: c.valueSize, Window: 32, Flows: c.flows, Duration: 300 * time.Millisecond,
				Warmup: 50 * time.Millisecond, Preload: true})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%d replies, %d hits, %d misses, %d bad, %d lost, %.0f/s", res.Received, res.Hits, res.Misses, res.Bad, res.Lost, res.Throughput)
			if res.Bad != 0 || res.Hits == 0 || res.Misses != 0 || res.Received == 0 || res.Hist.TotalCount() == 0 {
				t.Fatalf("received %d hits %d misses %d bad %d", res.Received, res.Hits, res.Misses, res.Bad)
			}
			if c.tcp && res.Lost != 0 {
				t.Fatalf("TCP lost %d", res.Lost)
			}
		})
	}
}

// fakeMemcacheUDP answers every datagram with its frame header and reply.
func fakeMemcacheUDP(t *testing.T, reply string) string {
	return testutil.AnswerUDP(t, func(req []byte) []byte {
		if len(req) < memcache.UDPHeaderLen {
			return nil
		}
		return append(append([]byte(nil), req[:memcache.UDPHeaderLen]...), reply...)
	})
}

// Wrong replies are counted bad, END is a miss.
func TestBenchMemcacheChecksReplies(t *testing.T) {
	for reply, want := range map[string]string{
		"END\r\n": "miss",
		"VALUE other 0 32\r\nabcdefghijklmnopqrstuvwxyzabcdef\r\nEND\r\n": "bad", // not the key asked for
		"SERVER_ERROR busy\r\n": "bad",
	} {
		addr := fakeMemcacheUDP(t, reply)
		res, err := loadgen.Bench(context.Background(), loadgen.BenchConfig{Target: addr, Protocol: loadgen.Memcache, Keys: 100,
			Window: 4, Duration: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		ok := res.Received > 0 && res.Hits == 0
		if want == "miss" {
			ok = ok && res.Misses == res.Received && res.Bad == 0
		} else {
			ok = ok && res.Bad == res.Received && res.Misses == 0
		}
		if !ok {
			t.Errorf("reply %q: received %d hits %d misses %d bad %d, want all %s", reply, res.Received, res.Hits, res.Misses, res.Bad, want)
		}
	}
}

func TestBenchMemcacheRefusesPing(t *testing.T) {
	_, err := loadgen.Bench(context.Background(), loadgen.BenchConfig{Target: "127.0.0.1:1", Protocol: loadgen.Memcache,
		Mix: []loadgen.OpShare{{Op: rebound.OpPing, Weight: 1}}})
	if err == nil {
		t.Fatal("ping accepted")
	}
	_, err = loadgen.Bench(context.Background(), loadgen.BenchConfig{Target: "127.0.0.1:1", Protocol: loadgen.Memcache, Keys: 1000, KeySize: 6})
	if err == nil {
		t.Fatal("1000 keys in 6 bytes accepted")
	}
}
