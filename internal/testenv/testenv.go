// Package testenv decides, in one place, what a test does when this machine
// lacks something it needs (root, a tool, a kernel behaviour): skip with a
// message saying so, or, in a run that promises everything (CI=true, or
// REBOUND_REQUIRE_PRIV=1 as .ci/run sets), fail, so that a skip can never
// hide a failure where it matters. Standard library only, so that any
// package's tests can use it.
package testenv

import (
	"fmt"
	"os"
	"testing"
)

// Strict reports whether this run promises every privilege and tool.
func Strict() bool {
	return os.Getenv("CI") == "true" || os.Getenv("REBOUND_REQUIRE_PRIV") == "1"
}

// Skip skips t loudly with the message, or fails it in a strict run.
func Skip(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if Strict() {
		t.Fatalf("cannot run here, and this run must not skip (CI=true or REBOUND_REQUIRE_PRIV=1): %s", msg)
		return
	}
	t.Skipf("SKIP: %s", msg)
}

// Tool returns path when it exists; otherwise it skips (or fails) t,
// naming what installs it.
func Tool(t testing.TB, path, install string) string {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		Skip(t, "%s not found (%s; .ci/run installs it): %v", path, install, err)
	}
	return path
}
