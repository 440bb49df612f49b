package mcserve_test

import (
	"regexp"
	"strings"
	"testing"

	"github.com/rebound-net/rebound/internal/testutil"
	"github.com/rebound-net/rebound/userspace/mcserve"
	"github.com/rebound-net/rebound/userspace/store"
)

// meSize and meExp are the fields of "me" that differ on purpose: size is
// what each server's memory holds for the item, and memcached 1.6.18
// prints a remaining TTL negated (its own bug, fixed in later versions):
// a TTL other than -1 is compared by its presence only (a second may tick
// between the two servers), and so is la.
var (
	meSize = regexp.MustCompile(`size=\d+`)
	meExp  = regexp.MustCompile(`exp=-?(\d\d+|[02-9])`)
	meLA   = regexp.MustCompile(`la=\d+`)
)

// TestMetaDebugBesideMemcached: "me" answers as memcached 1.6 does: the
// item's TTL, seconds since access, CAS, whether fetched, its class; EN
// for a miss; a bad command line for no key, a long key or a b key that
// does not decode; and it does not count as a fetch.
func TestMetaDebugBesideMemcached(t *testing.T) {
	oracle := testutil.StartMemcached(t)
	h := mcserve.New(mcserve.Config{Store: store.New(store.Config{}), Version: oracleVersion(t, oracle)})
	ours := serveTCP(t, h)
	steps := []string{
		"set foo 0 0 3\r\nbar\r\n",
		"me foo\r\n",
		"me foo\r\n", // still not fetched: me is no fetch
		"get foo\r\n",
		"me foo\r\n",
		"me nope\r\n",
		"me\r\n",
		"me " + strings.Repeat("k", 251) + "\r\n",
		"set t 0 100 1\r\nx\r\n",
		"me t\r\n",
		"me foo b\r\n",
		"me foo x y\r\n",
	}
	a, b := &peer{name: "memcached", addr: oracle}, &peer{name: "rebound", addr: ours}
	a.dial(t)
	b.dial(t)
	for _, step := range steps {
		want, _ := a.exchange(t, step)
		got, _ := b.exchange(t, step)
		norm := func(s string) string {
			return meLA.ReplaceAllString(meExp.ReplaceAllString(meSize.ReplaceAllString(s, "size=N"), "exp=T"), "la=L")
		}
		if norm(got) != norm(want) {
			t.Errorf("%q:\n got %q\nwant %q", step, got, want)
		}
		if strings.HasPrefix(got, "ME ") && !strings.Contains(got, "cls=1 size=") {
			t.Errorf("%q: %q: want class 1 and a size", step, got)
		}
	}
}
