package testutil

import (
	"fmt"
	"os"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// RequirePriv skips a test that needs root, loudly, or fails it when
// REBOUND_REQUIRE_PRIV=1 (CI sets it), so that a privileged test can never
// pass by skipping where it matters.
func RequirePriv(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	msg := "needs root (AF_XDP, BPF, network namespaces); run 'sudo -E go test ./...' to include it"
	if os.Getenv("REBOUND_REQUIRE_PRIV") == "1" {
		t.Fatalf("REBOUND_REQUIRE_PRIV=1 but not root: %s", msg)
	}
	t.Skipf("SKIP privileged test: %s", msg)
}

var nameSeq atomic.Uint32

// UniqueName returns prefix followed by the pid and a counter: test
// binaries run in parallel on one kernel, so every namespace and link they
// make needs a name of its own. Interface names have at most 15 bytes.
func UniqueName(prefix string) string {
	return fmt.Sprintf("%s%d%c", prefix, os.Getpid()%100000, 'a'+rune(nameSeq.Add(1)%26))
}

// NS is a named network namespace made by a test.
type NS struct {
	Name   string
	Handle netns.NsHandle
	// Netlink is a netlink handle that works inside the namespace.
	Netlink *netlink.Handle
}

// NewNS creates a named network namespace with loopback up, and removes it
// when the test ends.
func NewNS(t testing.TB, prefix string) *NS {
	t.Helper()
	name := UniqueName(prefix)
	var h netns.NsHandle
	var err error
	withThread(func() error {
		orig, gerr := netns.Get()
		if gerr != nil {
			err = gerr
			return nil
		}
		defer orig.Close()
		h, err = netns.NewNamed(name) // switches this thread into it
		return netns.Set(orig)
	})
	if err != nil {
		t.Fatalf("create netns %s: %v", name, err)
	}
	ns := &NS{Name: name, Handle: h}
	t.Cleanup(func() {
		if ns.Netlink != nil {
			ns.Netlink.Close()
		}
		h.Close()
		if err := netns.DeleteNamed(name); err != nil {
			t.Errorf("delete netns %s: %v", name, err)
		}
	})
	ns.Netlink, err = netlink.NewHandleAt(h)
	if err != nil {
		t.Fatalf("netlink in %s: %v", name, err)
	}
	lo, err := ns.Netlink.LinkByName("lo")
	if err == nil {
		err = ns.Netlink.LinkSetUp(lo)
	}
	if err != nil {
		t.Fatalf("lo up in %s: %v", name, err)
	}
	return ns
}

// Do runs f on an OS thread that is inside the namespace. Sockets and BPF
// links made in f belong to the namespace and keep working from any thread
// afterwards.
func (ns *NS) Do(t testing.TB, f func()) {
	t.Helper()
	var err error
	withThread(func() error {
		orig, gerr := netns.Get()
		if gerr != nil {
			err = gerr
			return nil
		}
		defer orig.Close()
		if err = netns.Set(ns.Handle); err != nil {
			return nil
		}
		f()
		return netns.Set(orig)
	})
	if err != nil {
		t.Fatalf("enter netns %s: %v", ns.Name, err)
	}
}

// withThread runs f locked to an OS thread. If f fails to restore the
// thread's namespace (it returns an error), the thread stays locked and
// dies with its goroutine rather than serving other goroutines in the wrong
// namespace.
func withThread(f func() error) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		if f() == nil {
			runtime.UnlockOSThread()
		}
	}()
	<-done
}

// Veth is one end of a veth pair.
type Veth struct {
	Name  string
	Index int
	NS    *NS
}

// NewVeth creates a veth pair with the given number of queues, a in ns a
// and b in ns b (which may be the same), both up. It is removed when the
// test ends (and with its namespaces in any case).
func NewVeth(t testing.TB, na, nb *NS, queues int) (a, b Veth) {
	t.Helper()
	an, bn := UniqueName("rba"), UniqueName("rbb")
	v := &netlink.Veth{
		LinkAttrs:       netlink.LinkAttrs{Name: an, NumTxQueues: queues, NumRxQueues: queues, MTU: 1500},
		PeerName:        bn,
		PeerNumTxQueues: uint32(queues),
		PeerNumRxQueues: uint32(queues),
		PeerNamespace:   netlink.NsFd(nb.Handle),
	}
	if err := na.Netlink.LinkAdd(v); err != nil {
		t.Fatalf("add veth %s/%s: %v", an, bn, err)
	}
	t.Cleanup(func() {
		if l, err := na.Netlink.LinkByName(an); err == nil {
			_ = na.Netlink.LinkDel(l)
		}
	})
	for _, e := range []struct {
		ns   *NS
		name string
		out  *Veth
	}{{na, an, &a}, {nb, bn, &b}} {
		l, err := e.ns.Netlink.LinkByName(e.name)
		if err != nil {
			t.Fatalf("find %s: %v", e.name, err)
		}
		if err := e.ns.Netlink.LinkSetUp(l); err != nil {
			t.Fatalf("up %s: %v", e.name, err)
		}
		*e.out = Veth{Name: e.name, Index: l.Attrs().Index, NS: e.ns}
	}
	return a, b
}
