package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/rebound-net/rebound/internal/testenv"
)

// RequirePriv skips a test that needs root, loudly, or fails it when
// REBOUND_REQUIRE_PRIV=1 (CI sets it), so that a privileged test can never
// pass by skipping where it matters.
func RequirePriv(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	testenv.Skip(t, "privileged test: needs root (AF_XDP, BPF, network namespaces); run 'sudo -E go test ./...' to include it")
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
	// iproute2 makes the namespace, as lab.sh does: it keeps /run/netns a
	// shared bind mount and mounts the namespace inside it. A namespace
	// mounted there before 'ip' first made that bind mount (which
	// netns.NewNamed would do on a fresh machine) ends up hidden under it
	// and cannot be deleted.
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	h, err := netns.GetFromName(name)
	if err != nil {
		_ = exec.Command("ip", "netns", "del", name).Run()
		t.Fatalf("open netns %s: %v", name, err)
	}
	ns := &NS{Name: name, Handle: h}
	t.Cleanup(func() {
		if ns.Netlink != nil {
			ns.Netlink.Close()
		}
		h.Close()
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
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
	err := inThread(func() {
		if err := netns.Set(ns.Handle); err != nil {
			panic(fmt.Sprintf("enter netns %s: %v", ns.Name, err))
		}
		f()
	})
	if err != nil {
		t.Fatalf("netns %s: %v", ns.Name, err)
	}
}

// inThread runs f on a goroutine locked to an OS thread and puts the
// thread back into its original network namespace afterwards. If that
// fails, the thread stays locked and dies with its goroutine rather than
// serve other goroutines in the wrong namespace.
func inThread(f func()) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		defer func() {
			if err := netns.Set(orig); err != nil {
				errc <- fmt.Errorf("restore thread namespace: %w", err)
				return
			}
			runtime.UnlockOSThread()
			errc <- nil
		}()
		f()
	}()
	return <-errc
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
