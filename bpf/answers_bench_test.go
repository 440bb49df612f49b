package bpf_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rebound-net/rebound/codec/memcache"
	"github.com/rebound-net/rebound/internal/testutil"
)

// BenchmarkAnswer measures the program's own time per request, as the
// kernel's test run clocks it (prog-ns/op; ns/op adds the system call and
// the copies around it): requests answered in XDP, and the same requests
// passed on to AF_XDP with answering off, for the difference.
func BenchmarkAnswer(b *testing.B) {
	long := strings.Repeat("L", 100)
	mcGet := append(memcache.AppendUDPHeader(nil, memcache.UDPHeader{RequestID: 9, Total: 1}), "get key:1234\r\n"...)
	cases := []struct {
		name string
		req  []byte
		port uint16
	}{
		{"ping", pingReq(1, value(52, 1)), 7000},
		{"get-short-key", getReq(2, "key:1234", 64-13-8), 7000},
		{"get-long-key", getReq(3, long, 0), 7000},
		{"mc-get", mcGet, mcPort},
	}
	for _, on := range []bool{true, false} {
		for _, tc := range cases {
			name := tc.name
			if !on {
				name += "/answers-off"
			}
			b.Run(name, func(b *testing.B) {
				p, items := loadAnswers(b, 100)
				configure(b, items, on, 0, ansMTU)
				put(items, "key:1234", value(64, 3), 0, 1)
				put(items, long, value(64, 4), 0, 2)
				in := testutil.Frame(b, testutil.Packet{DstPort: tc.port, Payload: tc.req})
				var total time.Duration
				for b.Loop() {
					v, d, err := p.RunTimed(in)
					if err != nil || (v == xdpTX) != on {
						b.Fatalf("run: verdict %d, %v; answered in XDP: want %v", v, err, on)
					}
					total += d
				}
				b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "prog-ns/op")
			})
		}
	}
}

// BenchmarkItemsPut measures the Mirror's cost per set of a held key (a
// 32-byte key and a 64-byte value, as in the bench's memcached mix): what
// every set that reaches the store pays when answers are on.
func BenchmarkItemsPut(b *testing.B) {
	_, items := loadAnswers(b, 4096)
	keys := make([]string, 4096)
	for i := range keys {
		keys[i] = fmt.Sprintf("%032d", i)
		put(items, keys[i], value(64, byte(i)), 0, uint64(i+1))
	}
	v := value(64, 9)
	now := time.Now().UnixNano()
	i := 0
	for b.Loop() {
		items.Put(keys[i&4095], v, 0, uint64(i+5000), 0, now)
		i++
	}
}
