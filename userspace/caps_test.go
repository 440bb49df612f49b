package userspace

import (
	"os"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/rebound-net/rebound/internal/testenv"
)

// Root has every capability xdp mode needs; a process that dropped
// CAP_PERFMON is told exactly that one is missing.
func TestMissingXDPCaps(t *testing.T) {
	if os.Geteuid() != 0 {
		if got := missingXDPCaps(); got == "" {
			t.Fatal("not root and no capability reported missing")
		}
		testenv.Skip(t, "the drop half needs root")
	}
	if got := missingXDPCaps(); got != "" {
		t.Fatalf("root is missing %s", got)
	}
	// Drop CAP_PERFMON from this thread's effective set only (capset acts
	// per thread), check, and let the thread die with the test's
	// goroutine so no other test runs without it.
	done := make(chan string)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		var data [2]unix.CapUserData
		if err := unix.Capget(&hdr, &data[0]); err != nil {
			done <- "capget: " + err.Error()
			return
		}
		data[unix.CAP_PERFMON/32].Effective &^= 1 << (unix.CAP_PERFMON % 32)
		if err := unix.Capset(&hdr, &data[0]); err != nil {
			done <- "capset: " + err.Error()
			return
		}
		done <- missingXDPCaps()
	}()
	if got := <-done; got != "CAP_PERFMON" {
		t.Fatalf("missing after dropping CAP_PERFMON: %q", got)
	}
}
