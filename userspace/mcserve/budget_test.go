package mcserve_test

import (
	"strings"
	"testing"

	mc "github.com/rebound-net/rebound/codec/memcache"
	"github.com/rebound-net/rebound/internal/testutil"
	"github.com/rebound-net/rebound/userspace/mcserve"
	"github.com/rebound-net/rebound/userspace/store"
)

func datagram(payload string) []byte {
	return append(mc.AppendUDPHeader(nil, mc.UDPHeader{RequestID: 3, Total: 1}), payload...)
}

// TestServeDatagramBudget: a datagram's reply budget is fixed before it
// runs. A request whose reply would pass it stops at the first value that
// would, having copied none of it, and says so; one within it is answered
// whole, byte for byte as without a budget.
func TestServeDatagramBudget(t *testing.T) {
	st := store.New(store.Config{})
	h := mcserve.New(mcserve.Config{Store: st})
	c := h.NewConn()
	big := strings.Repeat("v", 100_000)
	if _, out, _, _ := c.Serve([]byte("set big 0 0 100000\r\n"+big+"\r\nset s 0 0 1\r\nx\r\n"), nil); string(out) != "STORED\r\nSTORED\r\n" {
		t.Fatalf("load: %q", out)
	}
	cases := []struct {
		name   string
		req    string
		budget int
		over   bool
	}{
		{"many large values", "get" + strings.Repeat(" big", 300) + "\r\n", 4 * 1213, true},
		{"gat of large values", "gat 0" + strings.Repeat(" big", 300) + "\r\n", 4 * 1213, true},
		{"meta get of a large value", "mg big v\r\nmg big v\r\n", 1000, true},
		{"within, exactly", "get s\r\n", len("VALUE s 0 1\r\nx\r\nEND\r\n"), false},
		{"one byte short", "get s\r\n", len("VALUE s 0 1\r\nx\r\nEND\r\n") - 1, true},
		{"no budget", "get big big\r\n", 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			want, _, _, _ := c.ServeDatagram(datagram(tc.req), nil)
			out, ends, _, ok, over := c.ServeDatagramWithin(datagram(tc.req), make([]byte, 0, 64), tc.budget)
			if !ok || over != tc.over {
				t.Fatalf("ok %v over %v, want over %v", ok, over, tc.over)
			}
			if over {
				if len(out) != 0 || len(ends) != 0 {
					t.Fatalf("over the budget, yet %d bytes of reply in %d messages", len(out), len(ends))
				}
				// At most one value is built past the budget (a meta get's,
				// or a gat's, which the store copies while it touches).
				if cap(out) > 2*(tc.budget+len(big)) {
					t.Fatalf("the reply grew to %d bytes for a budget of %d", cap(out), tc.budget)
				}
				return
			}
			if string(out) != string(want) {
				t.Fatalf("within the budget: %q, without one: %q", out, want)
			}
		})
	}
}

// TestUDPNotARequestUnanswered: over UDP, what is not a request gets no
// reply: an unknown command (memcached 1.6 answers ERROR, which a peer
// that answers ERROR to ERROR bounces back forever) and an HTTP-looking
// line. Over TCP both keep memcached's answers.
func TestUDPNotARequestUnanswered(t *testing.T) {
	oracle := testutil.StartMemcached(t)
	h := mcserve.New(mcserve.Config{Store: store.New(store.Config{})})
	ours := serveUDP(t, h)
	for _, payload := range []string{"bogus\r\n", "ERROR\r\n", "GET / HTTP/1.1\r\n"} {
		dg := datagram(payload)
		if got := udpExchange(t, ours, dg); len(got) != 0 {
			t.Errorf("%q: %s, want no reply", payload, describe(got))
		}
		t.Logf("%q: memcached 1.6 answers %s", payload, describe(udpExchange(t, oracle, dg)))
	}
	// A known command still gets its reply after an unknown one.
	if got := udpExchange(t, ours, datagram("bogus\r\nmn\r\n")); len(got) != 1 || string(got[0][8:]) != "MN\r\n" {
		t.Errorf("unknown command then mn: %s", describe(got))
	}
}
