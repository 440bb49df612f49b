package testenv

import (
	"fmt"
	"testing"
)

// recorder stands in for a test: it records whether Skip skipped or failed.
type recorder struct {
	testing.TB
	skipped, failed bool
}

func (r *recorder) Helper()                   {}
func (r *recorder) Skipf(string, ...any)      { r.skipped = true }
func (r *recorder) Fatalf(f string, a ...any) { r.failed = true; _ = fmt.Sprintf(f, a...) }

func TestSkipFailsInAStrictRun(t *testing.T) {
	for _, c := range []struct {
		ci, priv string
		fail     bool
	}{{"", "", false}, {"true", "", true}, {"", "1", true}, {"false", "0", false}} {
		t.Setenv("CI", c.ci)
		t.Setenv("REBOUND_REQUIRE_PRIV", c.priv)
		r := &recorder{TB: t}
		Skip(r, "missing %s", "thing")
		if r.failed != c.fail || r.skipped == c.fail {
			t.Errorf("CI=%q REBOUND_REQUIRE_PRIV=%q: failed %v skipped %v, want fail %v", c.ci, c.priv, r.failed, r.skipped, c.fail)
		}
		r = &recorder{TB: t}
		Tool(r, "/no/such/tool", "nowhere")
		if r.failed != c.fail || r.skipped == c.fail {
			t.Errorf("Tool with CI=%q REBOUND_REQUIRE_PRIV=%q: failed %v skipped %v", c.ci, c.priv, r.failed, r.skipped)
		}
	}
}
