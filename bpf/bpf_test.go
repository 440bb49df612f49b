package bpf_test

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/gopacket/gopacket/layers"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/rebound-net/rebound/bpf"
	"github.com/rebound-net/rebound/codec"
	"github.com/rebound-net/rebound/codec/rebound"
	"github.com/rebound-net/rebound/internal/testutil"
	"github.com/rebound-net/rebound/xdp"
)

const (
	xdpDrop     = 1
	xdpPass     = 2
	xdpRedirect = 4
)

func ping() []byte {
	b := make([]byte, rebound.HeaderLen+4)
	rebound.EncodePing(b, 1, []byte("abcd"))
	return b
}

func load(t *testing.T) *bpf.Program {
	t.Helper()
	testutil.RequirePriv(t)
	p, err := bpf.Load(bpf.Options{Ports: []uint16{7000}})
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// run runs the program once on frame and checks the verdict and that
// exactly the want counter (and Seen) moved by one.
func run(t *testing.T, p *bpf.Program, name string, frame []byte, verdict uint32, want bpf.Counter) {
	t.Helper()
	before, err := p.Counters()
	if err != nil {
		t.Fatal(err)
	}
	got, err := p.Run(frame)
	if err != nil {
		t.Fatalf("%s: run: %v", name, err)
	}
	after, err := p.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if got != verdict {
		t.Errorf("%s: verdict %d, want %d", name, got, verdict)
	}
	for c := bpf.Counter(0); c < bpf.NumCounters; c++ {
		d := after[c] - before[c]
		exp := uint64(0)
		if c == want || c == bpf.Seen {
			exp = 1
		}
		if d != exp {
			t.Errorf("%s: counter %v moved by %d, want %d", name, c, d, exp)
		}
	}
}

func TestVerdicts(t *testing.T) {
	p := load(t)
	msg := ping()
	badMagic := append([]byte{0xB4}, msg[1:]...)
	badVersion := append([]byte{0xB5, 0x02}, msg[2:]...)
	f := func(pk testutil.Packet) []byte { return testutil.Frame(t, pk) }

	// Without a socket for queue 0, our requests go to the kernel.
	ours := []struct {
		name  string
		frame []byte
	}{
		{"ipv4", f(testutil.Packet{Payload: msg})},
		{"ipv6", f(testutil.Packet{IPv6: true, Payload: msg})},
		{"vlan ipv4", f(testutil.Packet{VLAN: 10, Payload: msg})},
		{"vlan ipv6", f(testutil.Packet{VLAN: 10, IPv6: true, Payload: msg})},
		{"ipv4 options", f(testutil.Packet{IPOptions: true, Payload: msg})},
		{"bare header", f(testutil.Packet{Payload: msg[:rebound.HeaderLen]})},
	}
	for _, c := range ours {
		run(t, p, c.name+" no socket", c.frame, xdpPass, bpf.PassNoSocket)
	}

	notOurs := []struct {
		name  string
		frame []byte
		want  bpf.Counter
	}{
		{"other udp port", f(testutil.Packet{DstPort: 7001, Payload: msg}), bpf.PassNotOurs},
		{"tcp to the port", f(testutil.Packet{Proto: layers.IPProtocolTCP, Payload: msg}), bpf.PassNotOurs},
		{"tcp ipv6", f(testutil.Packet{IPv6: true, Proto: layers.IPProtocolTCP, Payload: msg}), bpf.PassNotOurs},
		{"arp", testutil.ARPFrame(t), bpf.PassNotOurs},
		{"wrong magic", f(testutil.Packet{Payload: badMagic}), bpf.PassNotOurs},
		{"wrong version", f(testutil.Packet{Payload: badVersion}), bpf.PassNotOurs},
		{"11-byte payload", f(testutil.Packet{Payload: msg[:11]}), bpf.PassNotOurs},
		{"empty payload", f(testutil.Packet{}), bpf.PassNotOurs},
		{"first fragment", f(testutil.Packet{MoreFragments: true, Payload: msg}), bpf.PassFragment},
		{"later fragment", f(testutil.Packet{FragOffset: 8, Payload: msg}), bpf.PassFragment},
	}
	for _, c := range notOurs {
		run(t, p, c.name, c.frame, xdpPass, c.want)
	}

	// Truncated at every layer: each cut of a valid frame (the kernel runs
	// XDP only on frames of at least 14 bytes) is malformed or, once the
	// headers are whole but the payload is cut, not ours.
	for _, pk := range []testutil.Packet{{Payload: msg}, {IPv6: true, VLAN: 3, Payload: msg}, {IPOptions: true, Payload: msg}} {
		full := f(pk)
		fr, _ := codec.ParseFrame(full)
		end := fr.Payload + fr.PayloadLen
		for n := 14; n < end; n++ {
			before, _ := p.Counters()
			v, err := p.Run(full[:n])
			if err != nil {
				t.Fatalf("run %d bytes: %v", n, err)
			}
			after, _ := p.Counters()
			if v != xdpPass || after[bpf.PassMalformed]+after[bpf.PassNotOurs] != before[bpf.PassMalformed]+before[bpf.PassNotOurs]+1 {
				t.Fatalf("truncated to %d of %d bytes: verdict %d, counters %v -> %v", n, end, v, before, after)
			}
			if n < fr.L4+8 && after[bpf.PassMalformed] != before[bpf.PassMalformed]+1 {
				t.Fatalf("cut inside the headers (%d bytes) not counted as malformed", n)
			}
		}
	}
	// Ethernet padding after a short datagram is fine.
	padded := f(testutil.Packet{Payload: msg[:rebound.HeaderLen]})
	run(t, p, "padded", padded, xdpPass, bpf.PassNoSocket)

	// With a socket on queue 0, the same frames are redirected.
	withSocket(t, p, func() {
		for _, c := range ours {
			run(t, p, c.name+" with socket", c.frame, xdpRedirect, bpf.Redirected)
		}
		// Allow-list: only 198.18.0.0/24 and 2001:2::/64.
		if err := p.SetAllow([]netip.Prefix{netip.MustParsePrefix("198.18.0.0/24"), netip.MustParsePrefix("2001:2::/64")}); err != nil {
			t.Fatal(err)
		}
		run(t, p, "allow-list hit v4", f(testutil.Packet{Payload: msg}), xdpRedirect, bpf.Redirected)
		run(t, p, "allow-list hit v6", f(testutil.Packet{IPv6: true, Payload: msg}), xdpRedirect, bpf.Redirected)
		run(t, p, "allow-list miss v4", f(testutil.Packet{Src: net.IPv4(198, 18, 1, 1), Payload: msg}), xdpDrop, bpf.DropAllowList)
		run(t, p, "allow-list miss v6", f(testutil.Packet{IPv6: true, Src: net.ParseIP("2001:2:0:1::1"), Payload: msg}), xdpDrop, bpf.DropAllowList)
		run(t, p, "allow-list ignores other traffic", f(testutil.Packet{Src: net.IPv4(198, 18, 1, 1), DstPort: 53, Payload: msg}), xdpPass, bpf.PassNotOurs)
		if err := p.SetAllow(nil); err != nil {
			t.Fatal(err)
		}
		run(t, p, "allow-list cleared", f(testutil.Packet{Src: net.IPv4(198, 18, 1, 1), Payload: msg}), xdpRedirect, bpf.Redirected)
		// Ports can change while running.
		if err := p.SetPorts([]uint16{7001}); err != nil {
			t.Fatal(err)
		}
		run(t, p, "old port after SetPorts", f(testutil.Packet{Payload: msg}), xdpPass, bpf.PassNotOurs)
		run(t, p, "new port after SetPorts", f(testutil.Packet{DstPort: 7001, Payload: msg}), xdpRedirect, bpf.Redirected)
		if err := p.UnregisterSocket(0); err != nil {
			t.Fatal(err)
		}
		run(t, p, "after unregister", f(testutil.Packet{DstPort: 7001, Payload: msg}), xdpPass, bpf.PassNoSocket)
	})
}

// withSocket binds an AF_XDP socket to queue 0 of a test veth (the XSKMAP
// takes only bound sockets) and registers it for queue 0 while f runs.
func withSocket(t *testing.T, p *bpf.Program, f func()) {
	ns := testutil.NewNS(t, "rbp")
	a, _ := testutil.NewVeth(t, ns, ns, 1)
	ns.Do(t, func() {
		u, err := xdp.NewUMEM(xdp.UMEMConfig{FrameCount: 64})
		if err != nil {
			t.Fatal(err)
		}
		defer u.Close()
		s, err := xdp.Open(a.Index, 0, u, xdp.Config{RxSize: 64, TxSize: 64, FillSize: 64, CompletionSize: 64})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if err := p.RegisterSocket(0, s.FD()); err != nil {
			t.Fatal(err)
		}
		f()
	})
}

func TestLoadErrors(t *testing.T) {
	testutil.RequirePriv(t)
	if _, err := bpf.Load(bpf.Options{}); err == nil {
		t.Error("Load without ports succeeded")
	}
	if _, err := bpf.Load(bpf.Options{Ports: []uint16{0}}); err == nil {
		t.Error("Load with port 0 succeeded")
	}
	p := load(t)
	if err := p.RegisterSocket(bpf.MaxQueues, 3); err == nil {
		t.Error("queue out of range accepted")
	}
	small, err := bpf.Load(bpf.Options{Ports: []uint16{7000}, Queues: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer small.Close()
	if err := small.RegisterSocket(2, 3); err == nil || !strings.Contains(err.Error(), "0..1") {
		t.Errorf("queue 2 of a 2-queue program: %v", err)
	}
	if _, err := bpf.Load(bpf.Options{Ports: []uint16{7000}, Queues: bpf.MaxQueues + 1}); err == nil {
		t.Error("more queues than the map can hold accepted")
	}
	if _, err := bpf.ParseMode("turbo"); err == nil {
		t.Error("ParseMode accepted turbo")
	}
	p.Close()
	if _, err := p.Counters(); err == nil {
		t.Error("Counters after Close succeeded")
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// xdpState returns the program id and attach mode on the interface, as
// netlink (the 'ip link' view) reports it.
func xdpState(t *testing.T, ns *testutil.NS, iface string) (uint32, uint32) {
	t.Helper()
	l, err := ns.Netlink.LinkByName(iface)
	if err != nil {
		t.Fatal(err)
	}
	if x := l.Attrs().Xdp; x != nil && x.Attached {
		return x.ProgId, x.AttachMode
	}
	return 0, 0
}

func TestAttachDetach(t *testing.T) {
	testutil.RequirePriv(t)
	ns := testutil.NewNS(t, "rbp")
	a, _ := testutil.NewVeth(t, ns, ns, 1)
	for _, mode := range []bpf.Mode{bpf.ModeNative, bpf.ModeGeneric, bpf.ModeAuto} {
		t.Run(mode.String(), func(t *testing.T) {
			p := load(t)
			ns.Do(t, func() {
				if err := p.Attach(a.Name, mode, false); err != nil {
					t.Fatalf("attach: %v", err)
				}
			})
			id, am := xdpState(t, ns, a.Name)
			wantMode := map[bpf.Mode]uint32{bpf.ModeNative: 1, bpf.ModeGeneric: 2, bpf.ModeAuto: 1}[mode]
			if id == 0 || am != wantMode {
				t.Fatalf("after attach: prog id %d mode %d, want mode %d", id, am, wantMode)
			}
			if _, m, ok := p.Attached(); !ok || (mode != bpf.ModeAuto && m != mode) {
				t.Fatalf("Attached() = %v %v", m, ok)
			}
			// A second program is refused with an error naming the first.
			p2 := load(t)
			var err error
			ns.Do(t, func() { err = p2.Attach(a.Name, mode, false) })
			if !errors.Is(err, bpf.ErrAttached) || !strings.Contains(err.Error(), "rebound_steer") {
				t.Fatalf("second attach: %v", err)
			}
			if err := p.Detach(); err != nil {
				t.Fatal(err)
			}
			if id, _ := xdpState(t, ns, a.Name); id != 0 {
				t.Fatalf("program %d still attached after Detach", id)
			}
		})
	}
	var err error
	p := load(t)
	ns.Do(t, func() { err = p.Attach("rbnosuch0", bpf.ModeAuto, false) })
	if err == nil || !strings.Contains(err.Error(), "rbnosuch0 not found") {
		t.Fatalf("missing interface: %v", err)
	}
}

func TestAttachReplacesNetlinkProgramOnlyWhenAsked(t *testing.T) {
	testutil.RequirePriv(t)
	ns := testutil.NewNS(t, "rbp")
	a, _ := testutil.NewVeth(t, ns, ns, 1)
	// Another tool's program, attached the legacy way (ip link set xdp).
	other := passProgram(t)
	var err error
	ns.Do(t, func() {
		l, lerr := netlink.LinkByName(a.Name)
		if lerr == nil {
			lerr = netlink.LinkSetXdpFdWithFlags(l, other.FD(), 4 /* XDP_FLAGS_DRV_MODE */)
		}
		if lerr != nil {
			t.Errorf("attach other program: %v", lerr)
		}
	})
	if t.Failed() {
		t.FailNow()
	}
	p := load(t)
	ns.Do(t, func() { err = p.Attach(a.Name, bpf.ModeAuto, false) })
	if !errors.Is(err, bpf.ErrAttached) || !strings.Contains(err.Error(), "other_pass") {
		t.Fatalf("attach over another program: %v", err)
	}
	ns.Do(t, func() { err = p.Attach(a.Name, bpf.ModeAuto, true) })
	if err != nil {
		t.Fatalf("attach with replace: %v", err)
	}
	if id, _ := xdpState(t, ns, a.Name); id == 0 {
		t.Fatal("nothing attached after replace")
	}
}

func passProgram(t *testing.T) *ebpf.Program {
	t.Helper()
	spec := &ebpf.ProgramSpec{Name: "other_pass", Type: ebpf.XDP, License: "GPL"}
	spec.Instructions = asm.Instructions{asm.Mov.Imm(asm.R0, xdpPass), asm.Return()}
	prog, err := ebpf.NewProgram(spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { prog.Close() })
	return prog
}

// TestDetachOnSIGKILL attaches from a child process, kills it with SIGKILL
// and checks that the kernel detached the program (the bpf_link died with
// the process).
func TestDetachOnSIGKILL(t *testing.T) {
	testutil.RequirePriv(t)
	ns := testutil.NewNS(t, "rbp")
	a, _ := testutil.NewVeth(t, ns, ns, 1)
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperAttachChild$")
	cmd.Env = append(os.Environ(), "REBOUND_ATTACH_CHILD="+ns.Name+":"+a.Name)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	sc := bufio.NewScanner(out)
	ready := make(chan bool, 1)
	go func() {
		for sc.Scan() {
			if strings.Contains(sc.Text(), "ATTACHED") {
				ready <- true
				return
			}
		}
		ready <- false
	}()
	select {
	case ok := <-ready:
		if !ok {
			t.Fatal("child exited without attaching")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("child did not attach within 20s")
	}
	if id, _ := xdpState(t, ns, a.Name); id == 0 {
		t.Fatal("child reported attached, netlink sees nothing")
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for {
		id, _ := xdpState(t, ns, a.Name)
		if id == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("program %d still attached 5s after SIGKILL", id)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestHelperAttachChild is the child of TestDetachOnSIGKILL; it does
// nothing in a normal run.
func TestHelperAttachChild(t *testing.T) {
	spec := os.Getenv("REBOUND_ATTACH_CHILD")
	if spec == "" {
		return
	}
	nsName, iface, _ := strings.Cut(spec, ":")
	runtime.LockOSThread()
	h, err := netns.GetFromName(nsName)
	if err != nil {
		t.Fatal(err)
	}
	if err := netns.Set(h); err != nil {
		t.Fatal(err)
	}
	p, err := bpf.Load(bpf.Options{Ports: []uint16{7000}})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Attach(iface, bpf.ModeNative, false); err != nil {
		t.Fatal(err)
	}
	os.Stdout.WriteString("ATTACHED\n")
	time.Sleep(60 * time.Second) // killed long before
}

// Ports of the memcached and raw tests: 7000 speaks Rebound, 11211
// memcached, 9000 a protocol of the user's own (raw).
const (
	mcPort  = 11211
	rawPort = 9000
)

// rawPayload is a request of a protocol the program cannot parse.
var rawPayload = []byte("HELLO raw protocol")

// mcDatagram builds a memcached UDP request by hand (independently of
// codec/memcache): the 8-byte frame header, big endian, then cmd.
func mcDatagram(id, seq, total, reserved uint16, cmd string) []byte {
	b := make([]byte, 8, 8+len(cmd))
	binary.BigEndian.PutUint16(b[0:], id)
	binary.BigEndian.PutUint16(b[2:], seq)
	binary.BigEndian.PutUint16(b[4:], total)
	binary.BigEndian.PutUint16(b[6:], reserved)
	return append(b, cmd...)
}

// loadMemcache loads the program with a port of each kind.
func loadMemcache(t *testing.T) *bpf.Program {
	t.Helper()
	testutil.RequirePriv(t)
	p, err := bpf.Load(bpf.Options{Ports: []uint16{7000}, MemcachePorts: []uint16{mcPort}, RawPorts: []uint16{rawPort}})
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func TestMemcacheVerdicts(t *testing.T) {
	p := loadMemcache(t)
	get := mcDatagram(0x1234, 0, 1, 0, "get foo\r\n")
	f := func(pk testutil.Packet) []byte {
		if pk.DstPort == 0 {
			pk.DstPort = mcPort
		}
		return testutil.Frame(t, pk)
	}

	// Without a socket for queue 0, memcached requests go to the kernel.
	ours := []struct {
		name  string
		frame []byte
	}{
		{"memcached get ipv4", f(testutil.Packet{Payload: get})},
		{"memcached get ipv6", f(testutil.Packet{IPv6: true, Payload: get})},
		{"memcached get vlan ipv4", f(testutil.Packet{VLAN: 10, Payload: get})},
		{"memcached get vlan ipv6", f(testutil.Packet{VLAN: 10, IPv6: true, Payload: get})},
		{"memcached get ipv4 options", f(testutil.Packet{IPOptions: true, Payload: get})},
		{"memcached one command byte", f(testutil.Packet{Payload: get[:9]})},
		{"memcached any request id and seq", f(testutil.Packet{Payload: mcDatagram(0xB501, 7, 1, 0, "version\r\n")})},
		// memcached ignores the reserved field, and memcaslap sends 0x0100.
		{"memcached reserved 1", f(testutil.Packet{Payload: mcDatagram(1, 0, 1, 1, "get foo\r\n")})},
		{"memcached reserved 0x100", f(testutil.Packet{Payload: mcDatagram(1, 0, 1, 0x100, "get foo\r\n")})},
	}
	for _, c := range ours {
		run(t, p, c.name+" no socket", c.frame, xdpPass, bpf.PassNoSocket)
	}

	notOurs := []struct {
		name  string
		frame []byte
		want  bpf.Counter
	}{
		{"memcached total 2", f(testutil.Packet{Payload: mcDatagram(1, 0, 2, 0, "set k 0 0 1\r\n")}), bpf.PassNotOurs},
		{"memcached total 0", f(testutil.Packet{Payload: mcDatagram(1, 0, 0, 0, "get foo\r\n")}), bpf.PassNotOurs},
		{"memcached total 256", f(testutil.Packet{Payload: mcDatagram(1, 0, 0x100, 0, "get foo\r\n")}), bpf.PassNotOurs},
		{"memcached total 257", f(testutil.Packet{Payload: mcDatagram(1, 0, 0x101, 0, "get foo\r\n")}), bpf.PassNotOurs},
		{"memcached 7-byte payload", f(testutil.Packet{Payload: get[:7]}), bpf.PassNotOurs},
		{"memcached header only", f(testutil.Packet{Payload: get[:8]}), bpf.PassNotOurs},
		{"memcached empty payload", f(testutil.Packet{}), bpf.PassNotOurs},
		{"rebound ping to the memcached port", f(testutil.Packet{Payload: ping()}), bpf.PassNotOurs},
		{"memcached get to the rebound port", f(testutil.Packet{DstPort: 7000, Payload: get}), bpf.PassNotOurs},
		{"memcached get to another port", f(testutil.Packet{DstPort: mcPort + 1, Payload: get}), bpf.PassNotOurs},
		{"tcp to the memcached port", f(testutil.Packet{Proto: layers.IPProtocolTCP, Payload: get}), bpf.PassNotOurs},
		{"memcached first fragment", f(testutil.Packet{MoreFragments: true, Payload: get}), bpf.PassFragment},
		{"memcached later fragment", f(testutil.Packet{FragOffset: 8, Payload: get}), bpf.PassFragment},
	}
	for _, c := range notOurs {
		run(t, p, c.name, c.frame, xdpPass, c.want)
	}
	// The Rebound port still serves Rebound.
	run(t, p, "rebound ping to the rebound port", f(testutil.Packet{DstPort: 7000, Payload: ping()}), xdpPass, bpf.PassNoSocket)

	// Truncated memcached frames: a cut anywhere leaves the IP length
	// claiming more than the frame holds, so each is malformed.
	for _, pk := range []testutil.Packet{{Payload: get}, {IPv6: true, VLAN: 3, Payload: get}} {
		full := f(pk)
		fr, _ := codec.ParseFrame(full)
		for n := 14; n < fr.Payload+fr.PayloadLen; n++ {
			run(t, p, fmt.Sprintf("memcached truncated to %d bytes", n), full[:n], xdpPass, bpf.PassMalformed)
		}
	}
	// Ethernet padding after a bare one-byte command is fine.
	run(t, p, "memcached padded", f(testutil.Packet{Payload: get[:9]}), xdpPass, bpf.PassNoSocket)

	withSocket(t, p, func() {
		for _, c := range ours {
			run(t, p, c.name+" with socket", c.frame, xdpRedirect, bpf.Redirected)
		}
		for _, c := range notOurs {
			run(t, p, c.name+" with socket", c.frame, xdpPass, c.want)
		}
		// The allow-list applies to memcached requests as to Rebound ones.
		if err := p.SetAllow([]netip.Prefix{netip.MustParsePrefix("198.18.0.0/24"), netip.MustParsePrefix("2001:2::/64")}); err != nil {
			t.Fatal(err)
		}
		run(t, p, "memcached allow-list hit v4", f(testutil.Packet{Payload: get}), xdpRedirect, bpf.Redirected)
		run(t, p, "memcached allow-list hit v6", f(testutil.Packet{IPv6: true, Payload: get}), xdpRedirect, bpf.Redirected)
		run(t, p, "memcached allow-list miss v4", f(testutil.Packet{Src: net.IPv4(198, 18, 1, 1), Payload: get}), xdpDrop, bpf.DropAllowList)
		run(t, p, "memcached allow-list miss v6", f(testutil.Packet{IPv6: true, Src: net.ParseIP("2001:2:0:1::1"), Payload: get}), xdpDrop, bpf.DropAllowList)
		run(t, p, "memcached allow-list miss, total 2", f(testutil.Packet{Src: net.IPv4(198, 18, 1, 1), Payload: mcDatagram(1, 0, 2, 0, "get foo\r\n")}), xdpPass, bpf.PassNotOurs)
		if err := p.SetAllow(nil); err != nil {
			t.Fatal(err)
		}
		run(t, p, "memcached allow-list cleared", f(testutil.Packet{Src: net.IPv4(198, 18, 1, 1), Payload: get}), xdpRedirect, bpf.Redirected)

		// Memcached ports can change while running.
		if err := p.SetMemcachePorts([]uint16{mcPort + 1}); err != nil {
			t.Fatal(err)
		}
		run(t, p, "old port after SetMemcachePorts", f(testutil.Packet{Payload: get}), xdpPass, bpf.PassNotOurs)
		run(t, p, "new port after SetMemcachePorts", f(testutil.Packet{DstPort: mcPort + 1, Payload: get}), xdpRedirect, bpf.Redirected)
		run(t, p, "rebound port after SetMemcachePorts", f(testutil.Packet{DstPort: 7000, Payload: ping()}), xdpRedirect, bpf.Redirected)

		// A port speaks one protocol: a conflicting update is refused and
		// changes nothing.
		err := p.SetMemcachePorts([]uint16{mcPort, 7000})
		if err == nil || !strings.Contains(err.Error(), "port 7000") || !strings.Contains(err.Error(), "Rebound") {
			t.Errorf("SetMemcachePorts with a Rebound port: %v", err)
		}
		err = p.SetPorts([]uint16{7000, mcPort + 1})
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("port %d", mcPort+1)) || !strings.Contains(err.Error(), "memcached") {
			t.Errorf("SetPorts with a memcached port: %v", err)
		}
		run(t, p, "memcached port after refused updates", f(testutil.Packet{DstPort: mcPort + 1, Payload: get}), xdpRedirect, bpf.Redirected)
		run(t, p, "unset port after refused update", f(testutil.Packet{Payload: get}), xdpPass, bpf.PassNotOurs)
		run(t, p, "rebound port after refused updates", f(testutil.Packet{DstPort: 7000, Payload: ping()}), xdpRedirect, bpf.Redirected)

		// Moving a port from Rebound to memcached: out of one set, then
		// into the other.
		if err := p.SetPorts([]uint16{7001}); err != nil {
			t.Fatal(err)
		}
		if err := p.SetMemcachePorts([]uint16{7000}); err != nil {
			t.Fatal(err)
		}
		run(t, p, "memcached get to a port moved to memcached", f(testutil.Packet{DstPort: 7000, Payload: get}), xdpRedirect, bpf.Redirected)
		run(t, p, "rebound ping to a port moved to memcached", f(testutil.Packet{DstPort: 7000, Payload: ping()}), xdpPass, bpf.PassNotOurs)
		run(t, p, "previous memcached port", f(testutil.Packet{DstPort: mcPort + 1, Payload: get}), xdpPass, bpf.PassNotOurs)
		run(t, p, "new rebound port", f(testutil.Packet{DstPort: 7001, Payload: ping()}), xdpRedirect, bpf.Redirected)

		// No memcached port at all.
		if err := p.SetMemcachePorts(nil); err != nil {
			t.Fatal(err)
		}
		run(t, p, "memcached after SetMemcachePorts(nil)", f(testutil.Packet{DstPort: 7000, Payload: get}), xdpPass, bpf.PassNotOurs)
	})
}

func TestMemcacheLoadErrors(t *testing.T) {
	testutil.RequirePriv(t)
	_, err := bpf.Load(bpf.Options{Ports: []uint16{7000, mcPort}, MemcachePorts: []uint16{mcPort}})
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("port %d", mcPort)) {
		t.Errorf("Load with a port of both kinds: %v", err)
	}
	if _, err := bpf.Load(bpf.Options{MemcachePorts: []uint16{0}}); err == nil {
		t.Error("Load with memcached port 0 succeeded")
	}
	// Memcached ports alone are enough.
	p, err := bpf.Load(bpf.Options{MemcachePorts: []uint16{mcPort}})
	if err != nil {
		t.Fatalf("Load with memcached ports only: %v", err)
	}
	defer p.Close()
	run(t, p, "memcached only", testutil.Frame(t, testutil.Packet{DstPort: mcPort, Payload: mcDatagram(1, 0, 1, 0, "get a\r\n")}), xdpPass, bpf.PassNoSocket)
	run(t, p, "rebound port not configured", testutil.Frame(t, testutil.Packet{Payload: ping()}), xdpPass, bpf.PassNotOurs)
	p.Close()
	if err := p.SetMemcachePorts([]uint16{mcPort}); err == nil {
		t.Error("SetMemcachePorts after Close succeeded")
	}
}

// TestSetAllowAtomic switches the allow-list between two lists while
// another goroutine runs the program: a source in both lists is never
// dropped, and a source in neither is never served, at any moment.
func TestSetAllowAtomic(t *testing.T) {
	for _, proto := range protocols {
		t.Run(proto.name, func(t *testing.T) {
			p := loadMemcache(t)
			frame := func(src net.IP, v6 bool) []byte {
				return testutil.Frame(t, testutil.Packet{IPv6: v6, Src: src, DstPort: proto.port, Payload: proto.payload})
			}
			// The client (198.18.0.1, 2001:2::1) is in both lists; 198.18.9.9
			// and 2001:2:9::9 are in neither.
			listA := []netip.Prefix{netip.MustParsePrefix("198.18.0.0/24"), netip.MustParsePrefix("2001:2::/64"), netip.MustParsePrefix("10.0.0.0/8")}
			listB := []netip.Prefix{netip.MustParsePrefix("198.18.0.1/32"), netip.MustParsePrefix("2001:2::1/128"), netip.MustParsePrefix("fd00::/8")}
			in4, in6 := frame(nil, false), frame(nil, true)
			out4, out6 := frame(net.IPv4(198, 18, 9, 9), false), frame(net.ParseIP("2001:2:9::9"), true)
			withSocket(t, p, func() {
				if err := p.SetAllow(listA); err != nil {
					t.Fatal(err)
				}
				stop := make(chan struct{})
				errc := make(chan error, 1)
				go func() {
					runs := 0
					defer func() { t.Logf("%d runs during the switches", runs) }()
					for {
						select {
						case <-stop:
							errc <- nil
							return
						default:
						}
						for _, c := range []struct {
							name  string
							frame []byte
							want  uint32
						}{{"listed v4", in4, xdpRedirect}, {"listed v6", in6, xdpRedirect}, {"unlisted v4", out4, xdpDrop}, {"unlisted v6", out6, xdpDrop}} {
							v, err := p.Run(c.frame)
							runs++
							if err == nil && v != c.want {
								err = fmt.Errorf("%s source: verdict %d during SetAllow, want %d", c.name, v, c.want)
							}
							if err != nil {
								errc <- err
								return
							}
						}
					}
				}()
				for i := 0; i < 100; i++ {
					l := listA
					if i%2 == 0 {
						l = listB
					}
					if err := p.SetAllow(l); err != nil {
						close(stop)
						<-errc
						t.Fatal(err)
					}
				}
				close(stop)
				if err := <-errc; err != nil {
					t.Fatal(err)
				}
			})
		})
	}
}

// TestSetAllowBadPrefix checks that a list with a bad prefix is refused
// whole and the list in force stays enforced.
func TestSetAllowBadPrefix(t *testing.T) {
	p := load(t)
	msg := ping()
	if err := p.SetAllow([]netip.Prefix{netip.MustParsePrefix("198.18.0.0/24")}); err != nil {
		t.Fatal(err)
	}
	bad := []netip.Prefix{netip.MustParsePrefix("198.18.1.0/24"), {}, netip.MustParsePrefix("2001:2::/64")}
	if err := p.SetAllow(bad); err == nil {
		t.Fatal("SetAllow with an invalid prefix succeeded")
	}
	run(t, p, "old list still allows", testutil.Frame(t, testutil.Packet{Payload: msg}), xdpPass, bpf.PassNoSocket)
	run(t, p, "old list still drops v4", testutil.Frame(t, testutil.Packet{Src: net.IPv4(198, 18, 1, 1), Payload: msg}), xdpDrop, bpf.DropAllowList)
	run(t, p, "old list still drops v6", testutil.Frame(t, testutil.Packet{IPv6: true, Payload: msg}), xdpDrop, bpf.DropAllowList)
	// Too many prefixes: refused whole as well.
	many := make([]netip.Prefix, 0, bpf.MaxAllow+1)
	for i := 0; i <= bpf.MaxAllow; i++ {
		many = append(many, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 0}), 24))
	}
	if err := p.SetAllow(many); err == nil {
		t.Fatalf("SetAllow with %d prefixes succeeded", len(many))
	}
	run(t, p, "old list after too many", testutil.Frame(t, testutil.Packet{Src: net.IPv4(198, 18, 1, 1), Payload: msg}), xdpDrop, bpf.DropAllowList)
}

// withMACs returns a copy of frame with its destination and source MACs
// replaced (nil keeps one). MACs are in no checksum.
func withMACs(frame []byte, dst, src net.HardwareAddr) []byte {
	b := append([]byte(nil), frame...)
	if dst != nil {
		copy(b[0:6], dst)
	}
	if src != nil {
		copy(b[6:12], src)
	}
	return b
}

var (
	broadcastMAC = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	mcastMAC4    = net.HardwareAddr{0x01, 0x00, 0x5e, 0x00, 0x00, 0x01}
	mcastMAC6    = net.HardwareAddr{0x33, 0x33, 0x00, 0x00, 0x00, 0x01}
	otherMAC     = net.HardwareAddr{0x02, 0x00, 0x00, 0x00, 0x00, 0x99}
	groupSrcMAC  = net.HardwareAddr{0x03, 0x00, 0x00, 0x00, 0x00, 0x01}
)

// serverAddrs are the lab server's addresses, as SetLocal takes them.
func serverAddrs() []netip.Addr {
	a4, _ := netip.AddrFromSlice(testutil.ServerIP4)
	a6, _ := netip.AddrFromSlice(testutil.ServerIP6)
	return []netip.Addr{a4, a6}
}

// The requests of every port kind, with the port each is sent to.
var protocols = []struct {
	name    string
	port    uint16
	payload []byte
}{
	{"rebound", 7000, ping()},
	{"memcached", mcPort, mcDatagram(1, 0, 1, 0, "get foo\r\n")},
	{"raw", rawPort, rawPayload},
}

// TestLocalVerdicts checks that only requests addressed to the interface's
// MAC and a local address, from a source that can be answered, are
// steered; the rest go to the kernel, counted as PassNotLocal.
func TestLocalVerdicts(t *testing.T) {
	testutil.RequirePriv(t)
	p, err := bpf.Load(bpf.Options{Ports: []uint16{7000}, MemcachePorts: []uint16{mcPort}, RawPorts: []uint16{rawPort},
		LocalMAC: testutil.ServerMAC, LocalAddrs: serverAddrs()})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	withSocket(t, p, func() {
		for _, proto := range protocols {
			f := func(pk testutil.Packet) []byte {
				pk.DstPort, pk.Payload = proto.port, proto.payload
				return testutil.Frame(t, pk)
			}
			v4, v6 := f(testutil.Packet{}), f(testutil.Packet{IPv6: true})
			for _, c := range []struct {
				name  string
				frame []byte
			}{
				{"to us v4", v4},
				{"to us v6", v6},
				{"to us vlan v4", f(testutil.Packet{VLAN: 10})},
				{"to us vlan v6", f(testutil.Packet{VLAN: 10, IPv6: true})},
			} {
				run(t, p, proto.name+" "+c.name, c.frame, xdpRedirect, bpf.Redirected)
			}
			for _, c := range []struct {
				name  string
				frame []byte
			}{
				{"to broadcast MAC v4", withMACs(v4, broadcastMAC, nil)},
				{"to broadcast MAC v6", withMACs(v6, broadcastMAC, nil)},
				{"to multicast MAC v4", withMACs(v4, mcastMAC4, nil)},
				{"to multicast MAC v6", withMACs(v6, mcastMAC6, nil)},
				{"to another unicast MAC v4", withMACs(v4, otherMAC, nil)},
				{"to another unicast MAC v6", withMACs(v6, otherMAC, nil)},
				{"to a non-local IP v4", f(testutil.Packet{Dst: net.IPv4(198, 18, 0, 3)})},
				{"to a non-local IP v6", f(testutil.Packet{IPv6: true, Dst: net.ParseIP("2001:2::3")})},
				{"to 255.255.255.255", f(testutil.Packet{Dst: net.IPv4bcast})},
				{"to 198.18.0.255", f(testutil.Packet{Dst: net.IPv4(198, 18, 0, 255)})},
				{"to multicast IP v4", f(testutil.Packet{Dst: net.IPv4(239, 1, 1, 1)})},
				{"to multicast IP v6", f(testutil.Packet{IPv6: true, Dst: net.ParseIP("ff02::1")})},
				{"vlan to a non-local IP", f(testutil.Packet{VLAN: 10, Dst: net.IPv4(198, 18, 0, 3)})},
				{"from multicast v4", f(testutil.Packet{Src: net.IPv4(224, 0, 0, 5)})},
				{"from multicast v4 top", f(testutil.Packet{Src: net.IPv4(239, 255, 255, 255)})},
				{"from multicast v6", f(testutil.Packet{IPv6: true, Src: net.ParseIP("ff02::1")})},
				{"from 255.255.255.255", f(testutil.Packet{Src: net.IPv4bcast})},
				{"from 0.0.0.0", f(testutil.Packet{Src: net.IPv4zero})},
				{"from ::", f(testutil.Packet{IPv6: true, Src: net.IPv6unspecified})},
				{"from a group source MAC v4", withMACs(v4, nil, groupSrcMAC)},
				{"from a group source MAC v6", withMACs(v6, nil, groupSrcMAC)},
				{"from broadcast MAC", withMACs(v4, nil, broadcastMAC)},
			} {
				run(t, p, proto.name+" "+c.name, c.frame, xdpPass, bpf.PassNotLocal)
			}
			// Sources next to the refused ranges are served.
			run(t, p, proto.name+" from 223.255.255.255", f(testutil.Packet{Src: net.IPv4(223, 255, 255, 255)}), xdpRedirect, bpf.Redirected)
			run(t, p, proto.name+" from 240.0.0.1", f(testutil.Packet{Src: net.IPv4(240, 0, 0, 1)}), xdpRedirect, bpf.Redirected)
			run(t, p, proto.name+" from fe80::1", f(testutil.Packet{IPv6: true, Src: net.ParseIP("fe80::1")}), xdpRedirect, bpf.Redirected)
			// Sources that are ours (the destination, loopback; for
			// other local addresses see TestOwnSource) are dropped: no host sends them on a
			// wire, and an answer could loop between our own sockets.
			for _, c := range []struct {
				name string
				pk   testutil.Packet
			}{
				{"the destination v4", testutil.Packet{Src: net.IPv4(198, 18, 0, 2)}},
				{"the destination v6", testutil.Packet{IPv6: true, Src: net.ParseIP("2001:2::2")}},
				{"127.0.0.1", testutil.Packet{Src: net.IPv4(127, 0, 0, 1)}},
				{"127.1.2.3", testutil.Packet{Src: net.IPv4(127, 1, 2, 3)}},
				{"::1", testutil.Packet{IPv6: true, Src: net.IPv6loopback}},
			} {
				run(t, p, proto.name+" from "+c.name, f(c.pk), xdpDrop, bpf.DropOwnSource)
			}
			run(t, p, proto.name+" from ::2", f(testutil.Packet{IPv6: true, Src: net.ParseIP("::2")}), xdpRedirect, bpf.Redirected)
			run(t, p, proto.name+" from 126.255.255.255", f(testutil.Packet{Src: net.IPv4(126, 255, 255, 255)}), xdpRedirect, bpf.Redirected)

			// Traffic that is not a request stays "not ours" wherever it goes.
			other := testutil.Frame(t, testutil.Packet{DstPort: 53, Payload: proto.payload})
			run(t, p, proto.name+" other port to broadcast MAC", withMACs(other, broadcastMAC, nil), xdpPass, bpf.PassNotOurs)
			// A request not addressed to us is passed, not dropped, by the
			// allow-list; one addressed to us is dropped as before.
			if err := p.SetAllow([]netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}); err != nil {
				t.Fatal(err)
			}
			run(t, p, proto.name+" not local, outside the allow-list", f(testutil.Packet{Dst: net.IPv4(198, 18, 0, 3)}), xdpPass, bpf.PassNotLocal)
			run(t, p, proto.name+" local, outside the allow-list v4", v4, xdpDrop, bpf.DropAllowList)
			run(t, p, proto.name+" local, outside the allow-list v6", v6, xdpDrop, bpf.DropAllowList)
			if err := p.SetAllow(nil); err != nil {
				t.Fatal(err)
			}
		}
	})
	// ARP (broadcast, not a request) is still not ours.
	run(t, p, "arp", testutil.ARPFrame(t), xdpPass, bpf.PassNotOurs)
}

// TestLocalUnset checks the behaviour without LocalMAC and LocalAddrs: any
// unicast destination MAC and any destination IP are served; the group
// MAC and source checks stay on.
func TestLocalUnset(t *testing.T) {
	p := loadMemcache(t)
	withSocket(t, p, func() {
		for _, proto := range protocols {
			f := func(pk testutil.Packet) []byte {
				pk.DstPort, pk.Payload = proto.port, proto.payload
				return testutil.Frame(t, pk)
			}
			v4, v6 := f(testutil.Packet{}), f(testutil.Packet{IPv6: true})
			run(t, p, proto.name+" to another unicast MAC", withMACs(v4, otherMAC, nil), xdpRedirect, bpf.Redirected)
			run(t, p, proto.name+" to a non-local IP v4", f(testutil.Packet{Dst: net.IPv4(198, 18, 0, 3)}), xdpRedirect, bpf.Redirected)
			run(t, p, proto.name+" to a non-local IP v6", f(testutil.Packet{IPv6: true, Dst: net.ParseIP("2001:2::3")}), xdpRedirect, bpf.Redirected)
			run(t, p, proto.name+" to broadcast MAC", withMACs(v4, broadcastMAC, nil), xdpPass, bpf.PassNotLocal)
			run(t, p, proto.name+" to multicast MAC", withMACs(v6, mcastMAC6, nil), xdpPass, bpf.PassNotLocal)
			run(t, p, proto.name+" from a group source MAC", withMACs(v4, nil, groupSrcMAC), xdpPass, bpf.PassNotLocal)
			run(t, p, proto.name+" from multicast v4", f(testutil.Packet{Src: net.IPv4(224, 0, 0, 5)}), xdpPass, bpf.PassNotLocal)
			run(t, p, proto.name+" from multicast v6", f(testutil.Packet{IPv6: true, Src: net.ParseIP("ff05::2")}), xdpPass, bpf.PassNotLocal)
			run(t, p, proto.name+" from 255.255.255.255", f(testutil.Packet{Src: net.IPv4bcast}), xdpPass, bpf.PassNotLocal)
			run(t, p, proto.name+" from 0.0.0.0", f(testutil.Packet{Src: net.IPv4zero}), xdpPass, bpf.PassNotLocal)
		}
	})
}

// TestSetLocal changes the local MAC and addresses while running, and
// checks that a refused update changes nothing.
func TestSetLocal(t *testing.T) {
	p := load(t)
	msg := ping()
	f := func(pk testutil.Packet) []byte { pk.Payload = msg; return testutil.Frame(t, pk) }
	toUs := f(testutil.Packet{})
	toOther4 := f(testutil.Packet{Dst: net.IPv4(198, 18, 0, 3)})
	toOther6 := f(testutil.Packet{IPv6: true, Dst: net.ParseIP("2001:2::3")})
	run(t, p, "unset: other MAC", withMACs(toUs, otherMAC, nil), xdpPass, bpf.PassNoSocket)
	run(t, p, "unset: other IP", toOther4, xdpPass, bpf.PassNoSocket)

	if err := p.SetLocal(testutil.ServerMAC, serverAddrs()); err != nil {
		t.Fatal(err)
	}
	run(t, p, "set: to us", toUs, xdpPass, bpf.PassNoSocket)
	run(t, p, "set: other MAC", withMACs(toUs, otherMAC, nil), xdpPass, bpf.PassNotLocal)
	run(t, p, "set: other IP v4", toOther4, xdpPass, bpf.PassNotLocal)
	run(t, p, "set: other IP v6", toOther6, xdpPass, bpf.PassNotLocal)

	// Move to other addresses and MAC: the old ones stop being ours.
	if err := p.SetLocal(otherMAC, []netip.Addr{netip.MustParseAddr("198.18.0.3"), netip.MustParseAddr("2001:2::3")}); err != nil {
		t.Fatal(err)
	}
	run(t, p, "moved: old MAC", toOther4, xdpPass, bpf.PassNotLocal)
	run(t, p, "moved: new MAC and IP v4", withMACs(toOther4, otherMAC, nil), xdpPass, bpf.PassNoSocket)
	run(t, p, "moved: new MAC and IP v6", withMACs(toOther6, otherMAC, nil), xdpPass, bpf.PassNoSocket)
	run(t, p, "moved: new MAC, old IP", withMACs(toUs, otherMAC, nil), xdpPass, bpf.PassNotLocal)

	// IPv4 only: every IPv6 destination is not local. A v4-mapped
	// address counts as IPv4. The MAC check off.
	if err := p.SetLocal(nil, []netip.Addr{netip.MustParseAddr("::ffff:198.18.0.2")}); err != nil {
		t.Fatal(err)
	}
	run(t, p, "v4 only: to us", toUs, xdpPass, bpf.PassNoSocket)
	run(t, p, "v4 only: other MAC", withMACs(toUs, otherMAC, nil), xdpPass, bpf.PassNoSocket)
	run(t, p, "v4 only: v6", f(testutil.Packet{IPv6: true}), xdpPass, bpf.PassNotLocal)

	// Refused updates change nothing.
	for _, c := range []struct {
		name  string
		mac   net.HardwareAddr
		addrs []netip.Addr
	}{
		{"short MAC", net.HardwareAddr{2, 0, 0, 0, 0}, nil},
		{"multicast MAC", mcastMAC4, nil},
		{"invalid address", nil, []netip.Addr{netip.MustParseAddr("198.18.0.3"), {}}},
		{"multicast address", nil, []netip.Addr{netip.MustParseAddr("198.18.0.3"), netip.MustParseAddr("ff02::1")}},
		{"unspecified address", nil, []netip.Addr{netip.IPv6Unspecified()}},
		{"broadcast address", nil, []netip.Addr{netip.MustParseAddr("255.255.255.255")}},
	} {
		if err := p.SetLocal(c.mac, c.addrs); err == nil {
			t.Errorf("SetLocal with a %s succeeded", c.name)
		}
	}
	run(t, p, "after refused: to us", toUs, xdpPass, bpf.PassNoSocket)
	run(t, p, "after refused: other IP", toOther4, xdpPass, bpf.PassNotLocal)
	run(t, p, "after refused: v6", f(testutil.Packet{IPv6: true}), xdpPass, bpf.PassNotLocal)

	// Both unset: the old behaviour.
	if err := p.SetLocal(nil, nil); err != nil {
		t.Fatal(err)
	}
	run(t, p, "cleared: other IP v4", toOther4, xdpPass, bpf.PassNoSocket)
	run(t, p, "cleared: other IP v6", toOther6, xdpPass, bpf.PassNoSocket)
	p.Close()
	if err := p.SetLocal(nil, nil); err == nil {
		t.Error("SetLocal after Close succeeded")
	}
}

// TestRawVerdicts checks raw ports: any datagram with at least one byte of
// payload is a request, whatever it holds, steered like the others.
func TestRawVerdicts(t *testing.T) {
	p := loadMemcache(t)
	f := func(pk testutil.Packet) []byte {
		if pk.DstPort == 0 {
			pk.DstPort = rawPort
		}
		return testutil.Frame(t, pk)
	}
	get := mcDatagram(1, 0, 1, 0, "get foo\r\n")

	// Without a socket for queue 0, raw requests go to the kernel.
	ours := []struct {
		name  string
		frame []byte
	}{
		{"raw ipv4", f(testutil.Packet{Payload: rawPayload})},
		{"raw ipv6", f(testutil.Packet{IPv6: true, Payload: rawPayload})},
		{"raw vlan ipv4", f(testutil.Packet{VLAN: 10, Payload: rawPayload})},
		{"raw vlan ipv6", f(testutil.Packet{VLAN: 10, IPv6: true, Payload: rawPayload})},
		{"raw ipv4 options", f(testutil.Packet{IPOptions: true, Payload: rawPayload})},
		{"raw one byte", f(testutil.Packet{Payload: rawPayload[:1]})},
		{"raw one zero byte v6", f(testutil.Packet{IPv6: true, Payload: []byte{0}})},
		// A raw port is not parsed: other protocols' requests, or what
		// would not be one, are raw requests there.
		{"rebound ping to the raw port", f(testutil.Packet{Payload: ping()})},
		{"rebound wrong magic to the raw port", f(testutil.Packet{Payload: append([]byte{0xB4}, ping()[1:]...)})},
		{"memcached get to the raw port", f(testutil.Packet{Payload: get})},
		{"memcached total 2 to the raw port", f(testutil.Packet{Payload: mcDatagram(1, 0, 2, 0, "get foo\r\n")})},
	}
	for _, c := range ours {
		run(t, p, c.name+" no socket", c.frame, xdpPass, bpf.PassNoSocket)
	}

	notOurs := []struct {
		name  string
		frame []byte
		want  bpf.Counter
	}{
		{"raw empty payload v4", f(testutil.Packet{}), bpf.PassNotOurs},
		{"raw empty payload v6", f(testutil.Packet{IPv6: true}), bpf.PassNotOurs},
		{"raw empty payload vlan", f(testutil.Packet{VLAN: 10}), bpf.PassNotOurs},
		{"raw payload to the rebound port", f(testutil.Packet{DstPort: 7000, Payload: rawPayload}), bpf.PassNotOurs},
		{"raw payload to the memcached port", f(testutil.Packet{DstPort: mcPort, Payload: rawPayload}), bpf.PassNotOurs},
		{"raw payload to another port", f(testutil.Packet{DstPort: rawPort + 1, Payload: rawPayload}), bpf.PassNotOurs},
		{"tcp to the raw port", f(testutil.Packet{Proto: layers.IPProtocolTCP, Payload: rawPayload}), bpf.PassNotOurs},
		{"tcp ipv6 to the raw port", f(testutil.Packet{IPv6: true, Proto: layers.IPProtocolTCP, Payload: rawPayload}), bpf.PassNotOurs},
		{"raw first fragment", f(testutil.Packet{MoreFragments: true, Payload: rawPayload}), bpf.PassFragment},
		{"raw later fragment", f(testutil.Packet{FragOffset: 8, Payload: rawPayload}), bpf.PassFragment},
	}
	for _, c := range notOurs {
		run(t, p, c.name, c.frame, xdpPass, c.want)
	}

	// Truncated raw frames: a cut anywhere leaves the IP length claiming
	// more than the frame holds, so each is malformed, never steered.
	for _, pk := range []testutil.Packet{{Payload: rawPayload}, {IPv6: true, VLAN: 3, Payload: rawPayload}} {
		full := f(pk)
		fr, _ := codec.ParseFrame(full)
		for n := 14; n < fr.Payload+fr.PayloadLen; n++ {
			run(t, p, fmt.Sprintf("raw truncated to %d bytes", n), full[:n], xdpPass, bpf.PassMalformed)
		}
	}
	// A UDP length of 8 (no payload) in a padded frame is empty, whatever
	// the padding holds.
	padded := f(testutil.Packet{Payload: rawPayload[:1]})
	fr, _ := codec.ParseFrame(padded)
	binary.BigEndian.PutUint16(padded[fr.L4+4:], 8)
	binary.BigEndian.PutUint16(padded[fr.L4+6:], 0) // no checksum: not checked here anyway
	run(t, p, "raw udp length 8 with a byte after", padded, xdpPass, bpf.PassNotOurs)

	withSocket(t, p, func() {
		for _, c := range ours {
			run(t, p, c.name+" with socket", c.frame, xdpRedirect, bpf.Redirected)
		}
		for _, c := range notOurs {
			run(t, p, c.name+" with socket", c.frame, xdpPass, c.want)
		}
		// The allow-list applies to raw requests as to the others.
		if err := p.SetAllow([]netip.Prefix{netip.MustParsePrefix("198.18.0.0/24"), netip.MustParsePrefix("2001:2::/64")}); err != nil {
			t.Fatal(err)
		}
		run(t, p, "raw allow-list hit v4", f(testutil.Packet{Payload: rawPayload}), xdpRedirect, bpf.Redirected)
		run(t, p, "raw allow-list hit v6", f(testutil.Packet{IPv6: true, Payload: rawPayload}), xdpRedirect, bpf.Redirected)
		run(t, p, "raw allow-list miss v4", f(testutil.Packet{Src: net.IPv4(198, 18, 1, 1), Payload: rawPayload}), xdpDrop, bpf.DropAllowList)
		run(t, p, "raw allow-list miss v6", f(testutil.Packet{IPv6: true, Src: net.ParseIP("2001:2:0:1::1"), Payload: rawPayload}), xdpDrop, bpf.DropAllowList)
		run(t, p, "raw allow-list miss vlan", f(testutil.Packet{VLAN: 10, Src: net.IPv4(198, 18, 1, 1), Payload: rawPayload}), xdpDrop, bpf.DropAllowList)
		run(t, p, "raw allow-list miss, empty", f(testutil.Packet{Src: net.IPv4(198, 18, 1, 1)}), xdpPass, bpf.PassNotOurs)
		if err := p.SetAllow(nil); err != nil {
			t.Fatal(err)
		}
		run(t, p, "raw allow-list cleared", f(testutil.Packet{Src: net.IPv4(198, 18, 1, 1), Payload: rawPayload}), xdpRedirect, bpf.Redirected)

		// Raw ports can change while running.
		if err := p.SetRawPorts([]uint16{rawPort + 1, rawPort + 2}); err != nil {
			t.Fatal(err)
		}
		run(t, p, "old port after SetRawPorts", f(testutil.Packet{Payload: rawPayload}), xdpPass, bpf.PassNotOurs)
		run(t, p, "new port after SetRawPorts", f(testutil.Packet{DstPort: rawPort + 1, Payload: rawPayload}), xdpRedirect, bpf.Redirected)
		run(t, p, "second new port after SetRawPorts", f(testutil.Packet{DstPort: rawPort + 2, IPv6: true, Payload: rawPayload}), xdpRedirect, bpf.Redirected)
		run(t, p, "rebound port after SetRawPorts", f(testutil.Packet{DstPort: 7000, Payload: ping()}), xdpRedirect, bpf.Redirected)
		run(t, p, "memcached port after SetRawPorts", f(testutil.Packet{DstPort: mcPort, Payload: get}), xdpRedirect, bpf.Redirected)

		// A port speaks one protocol: a conflicting update is refused
		// whole and changes nothing.
		for _, c := range []struct {
			name  string
			set   func([]uint16) error
			ports []uint16
			port  uint16
			kind  string
		}{
			{"SetRawPorts with a Rebound port", p.SetRawPorts, []uint16{rawPort + 3, 7000}, 7000, "Rebound"},
			{"SetRawPorts with a memcached port", p.SetRawPorts, []uint16{rawPort + 3, mcPort}, mcPort, "memcached"},
			{"SetPorts with a raw port", p.SetPorts, []uint16{7000, rawPort + 3, rawPort + 1}, rawPort + 1, "raw"},
			{"SetMemcachePorts with a raw port", p.SetMemcachePorts, []uint16{mcPort, rawPort + 3, rawPort + 2}, rawPort + 2, "raw"},
		} {
			err := c.set(c.ports)
			if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("port %d is already a %s port", c.port, c.kind)) {
				t.Errorf("%s: %v", c.name, err)
			}
		}
		if err := p.SetRawPorts([]uint16{0}); err == nil {
			t.Error("SetRawPorts with port 0 succeeded")
		}
		run(t, p, "raw port after refused updates", f(testutil.Packet{DstPort: rawPort + 1, Payload: rawPayload}), xdpRedirect, bpf.Redirected)
		run(t, p, "raw ping on a raw port after refused updates", f(testutil.Packet{DstPort: rawPort + 2, Payload: ping()}), xdpRedirect, bpf.Redirected)
		run(t, p, "port of the refused updates", f(testutil.Packet{DstPort: rawPort + 3, Payload: ping()}), xdpPass, bpf.PassNotOurs)
		run(t, p, "rebound port after refused updates", f(testutil.Packet{DstPort: 7000, Payload: rawPayload}), xdpPass, bpf.PassNotOurs)
		run(t, p, "memcached port after refused updates", f(testutil.Packet{DstPort: mcPort, Payload: rawPayload}), xdpPass, bpf.PassNotOurs)

		// Moving a port from Rebound to raw: out of one set, then into
		// the other.
		if err := p.SetPorts([]uint16{7001}); err != nil {
			t.Fatal(err)
		}
		if err := p.SetRawPorts([]uint16{7000}); err != nil {
			t.Fatal(err)
		}
		run(t, p, "raw payload to a port moved to raw", f(testutil.Packet{DstPort: 7000, Payload: rawPayload}), xdpRedirect, bpf.Redirected)
		run(t, p, "previous raw port", f(testutil.Packet{DstPort: rawPort + 1, Payload: rawPayload}), xdpPass, bpf.PassNotOurs)
		if err := p.SetRawPorts(nil); err != nil {
			t.Fatal(err)
		}
		run(t, p, "raw after SetRawPorts(nil)", f(testutil.Packet{DstPort: 7000, Payload: rawPayload}), xdpPass, bpf.PassNotOurs)
		// And a former raw port can now speak Rebound.
		if err := p.SetPorts([]uint16{7001, rawPort + 1}); err != nil {
			t.Fatal(err)
		}
		run(t, p, "raw payload to a port moved to Rebound", f(testutil.Packet{DstPort: rawPort + 1, Payload: rawPayload}), xdpPass, bpf.PassNotOurs)
		run(t, p, "rebound ping to a port moved to Rebound", f(testutil.Packet{DstPort: rawPort + 1, Payload: ping()}), xdpRedirect, bpf.Redirected)
	})
}

func TestRawLoadErrors(t *testing.T) {
	testutil.RequirePriv(t)
	for _, c := range []struct {
		name string
		opts bpf.Options
		want string
	}{
		{"rebound and raw", bpf.Options{Ports: []uint16{7000, rawPort}, RawPorts: []uint16{rawPort}}, fmt.Sprintf("port %d cannot be both a Rebound and a raw port", rawPort)},
		{"memcached and raw", bpf.Options{MemcachePorts: []uint16{mcPort}, RawPorts: []uint16{rawPort, mcPort}}, fmt.Sprintf("port %d cannot be both a memcached and a raw port", mcPort)},
		{"raw port 0", bpf.Options{RawPorts: []uint16{0}}, "port 0"},
	} {
		if _, err := bpf.Load(c.opts); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Load with %s: %v, want %q", c.name, err, c.want)
		}
	}
	// Raw ports alone are enough.
	p, err := bpf.Load(bpf.Options{RawPorts: []uint16{rawPort}})
	if err != nil {
		t.Fatalf("Load with raw ports only: %v", err)
	}
	defer p.Close()
	run(t, p, "raw only", testutil.Frame(t, testutil.Packet{DstPort: rawPort, Payload: rawPayload}), xdpPass, bpf.PassNoSocket)
	run(t, p, "rebound port not configured", testutil.Frame(t, testutil.Packet{Payload: ping()}), xdpPass, bpf.PassNotOurs)
	p.Close()
	if err := p.SetRawPorts([]uint16{rawPort}); err == nil {
		t.Error("SetRawPorts after Close succeeded")
	}
}
