package mcserve_test

import (
	"testing"

	"github.com/rebound-net/rebound/internal/testutil"
	"github.com/rebound-net/rebound/userspace/mcserve"
	"github.com/rebound-net/rebound/userspace/store"
)

// TestStaleFlowBesideMemcached: the meta protocol's stampede protection as
// memcached 1.6 answers it, over two client connections, byte for byte
// (CAS values numbered in the order each server shows them): mg N creates
// a missing item and tells its creator to fill it (W), the others Z; md I
// leaves the item stale (X) with a new CAS and tells the next reader to
// recache it (W), the others Z; ms I with an older C stores the value
// still stale; a plain set makes it fresh; mg R wins the recache of an
// item about to expire, once; ma T and J; the key echoed as stored.
func TestStaleFlowBesideMemcached(t *testing.T) {
	oracle := testutil.StartMemcached(t)
	h := mcserve.New(mcserve.Config{Store: store.New(store.Config{}), Version: oracleVersion(t, oracle)})
	ours := serveTCP(t, h)
	type step struct {
		conn int // 0 or 1: which client sends it
		cmd  string
	}
	steps := []step{
		{0, "mg k1 N30 v c t\r\n"},
		{1, "mg k1 N30 v c t\r\n"},
		{0, "mg k1 v\r\n"},
		{0, "ms k1 3 T60\r\nabc\r\n"},
		{0, "mg k1 v c\r\n"},
		{0, "md k1 I T30\r\n"},
		{0, "mg k1 v c t\r\n"},
		{1, "mg k1 v c t\r\n"},
		{0, "ms k1 3 C1 I\r\nxyz\r\n"},
		{0, "mg k1 v c t\r\n"},
		{0, "ms k1 3\r\nnew\r\n"},
		{0, "mg k1 v c t\r\n"},
		{0, "md k1 I q\r\nmg k1 c\r\n"},
		{0, "md k1 I\r\nmg k1 c t\r\n"},
		{1, "mg k1 c\r\n"},
		{0, "get k1\r\n"},
		{0, "ms k2 1 T10\r\na\r\n"},
		{0, "mg k2 R30 v t\r\n"},
		{1, "mg k2 R30 v t\r\n"},
		{0, "mg k2 R5 v t\r\n"},
		{0, "ms k2 1 T100\r\nb\r\n"},
		{0, "mg k2 R30 v t\r\n"},
		{0, "mg k3 N30 q\r\n"},
		{1, "mg k3 N30\r\n"},
		{0, "md k9 I\r\n"},
		{0, "md k8 q\r\n"},
		{0, "ma k4 N0 J13 T99 v t\r\n"},
		{0, "ma k4 T50 v t\r\n"},
		{0, "mg k5 N30 s f k O1 h l t\r\n"},
		{0, "ms k6 2 I\r\nhi\r\n"},
		{0, "mg k6 v\r\n"},
		{0, "ms k7 2 T100\r\nhi\r\n"},
		{0, "mg k7 c\r\n"},
		{0, "ms k7 2 C999999 I\r\nho\r\n"},
		{0, "md k7 I C1\r\n"},
		{0, "md k7 I C{CAS}\r\n"},
		{0, "mg k7 v c\r\n"},
		{1, "mg k7 v c q\r\n"},
		{0, "ms a2V5 3 b\r\nbin\r\n"},
		{0, "mg a2V5 b k v\r\n"},
		{0, "mg key k v\r\n"},
		{0, "me key\r\n"},
		{0, "me a2V5 b\r\n"},
		{0, "ms plain 1\r\np\r\n"},
		{0, "mg cGxhaW4= b k v\r\n"},
	}
	peers := [2][2]*peer{
		{{name: "memcached", addr: oracle}, {name: "memcached 2", addr: oracle}},
		{{name: "rebound", addr: ours}, {name: "rebound 2", addr: ours}},
	}
	for _, p := range peers {
		p[0].dial(t)
		p[1].dial(t)
	}
	oa, ob := casOrder{}, casOrder{}
	for _, st := range steps {
		want, _ := peers[0][st.conn].exchange(t, st.cmd)
		got, _ := peers[1][st.conn].exchange(t, st.cmd)
		// the other client of each server follows the CAS seen
		peers[0][1-st.conn].lastCAS, peers[1][1-st.conn].lastCAS = peers[0][st.conn].lastCAS, peers[1][st.conn].lastCAS
		nw, ng := oa.normalise(meSize.ReplaceAllString(want, "size=N")), ob.normalise(meSize.ReplaceAllString(got, "size=N"))
		if !fuzzSame(nw, ng) { // t may differ by one: a second may tick between the two
			t.Errorf("client %d %q:\n got %q\nwant %q", st.conn, st.cmd, got, want)
		} else if testing.Verbose() {
			t.Logf("client %d %q: %q", st.conn, st.cmd, got)
		}
	}
}
