package xdp_test

import (
	"encoding/binary"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/rebound-net/rebound/internal/testutil"
	"github.com/rebound-net/rebound/xdp"
)

// testPort is the UDP destination port the test program redirects.
const testPort = 9999

// redirectProgram returns an XDP program, built here with the asm package
// so the test needs no clang, that redirects IPv4 UDP frames to testPort
// (IHL 5) into xsks at the rx queue index, and passes everything else.
func redirectProgram(t testing.TB) (*ebpf.Program, *ebpf.Map) {
	t.Helper()
	xsks, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.XSKMap, KeySize: 4, ValueSize: 4, MaxEntries: 64})
	if err != nil {
		t.Fatalf("xskmap: %v", err)
	}
	t.Cleanup(func() { xsks.Close() })
	be16 := func(v uint16) int32 { return int32(v>>8 | v<<8&0xFF00) } // load of a network-order u16
	insns := asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.LoadMem(asm.R2, asm.R1, 0, asm.Word), // data
		asm.LoadMem(asm.R3, asm.R1, 4, asm.Word), // data_end
		asm.Mov.Reg(asm.R4, asm.R2),
		asm.Add.Imm(asm.R4, 38),
		asm.JGT.Reg(asm.R4, asm.R3, "pass"),
		asm.LoadMem(asm.R5, asm.R2, 12, asm.Half),
		asm.JNE.Imm(asm.R5, be16(0x0800), "pass"),
		asm.LoadMem(asm.R5, asm.R2, 14, asm.Byte),
		asm.JNE.Imm(asm.R5, 0x45, "pass"),
		asm.LoadMem(asm.R5, asm.R2, 23, asm.Byte),
		asm.JNE.Imm(asm.R5, 17, "pass"),
		asm.LoadMem(asm.R5, asm.R2, 36, asm.Half),
		asm.JNE.Imm(asm.R5, be16(testPort), "pass"),
		asm.LoadMem(asm.R2, asm.R6, 16, asm.Word), // rx_queue_index
		asm.LoadMapPtr(asm.R1, xsks.FD()),
		asm.Mov.Imm(asm.R3, 2), // XDP_PASS when no socket is bound
		asm.FnRedirectMap.Call(),
		asm.Return(),
		asm.Mov.Imm(asm.R0, 2).WithSymbol("pass"),
		asm.Return(),
	}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.XDP, Instructions: insns, License: "GPL"})
	if err != nil {
		t.Fatalf("load program: %v", err)
	}
	t.Cleanup(func() { prog.Close() })
	return prog, xsks
}

// peer is an AF_PACKET socket on the other end of the veth.
type peer struct {
	fd      int
	ifindex int
}

func newPeer(t testing.TB, ns *testutil.NS, ifindex int) *peer {
	t.Helper()
	p := &peer{fd: -1, ifindex: ifindex}
	ns.Do(t, func() {
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_IP)))
		if err != nil {
			t.Errorf("packet socket: %v", err)
			return
		}
		p.fd = fd
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IP), Ifindex: ifindex}); err != nil {
			t.Errorf("bind packet socket: %v", err)
		}
		tv := unix.Timeval{Usec: 100000}
		_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	})
	if p.fd < 0 || t.Failed() {
		t.FailNow()
	}
	t.Cleanup(func() { unix.Close(p.fd) })
	return p
}

// recv reads one frame without blocking and without allocating (Recvfrom
// builds a Sockaddr per call); ok is false when nothing is waiting.
func (p *peer) recv(buf []byte) (int, bool) {
	n, _, e := unix.Syscall6(unix.SYS_RECVFROM, uintptr(p.fd), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), unix.MSG_DONTWAIT, 0, 0)
	return int(n), e == 0
}

func htons(v uint16) uint16 { return v>>8 | v<<8 }

// frame builds test frame i: IPv4 UDP to testPort from a source port that
// varies with i, so RSS-like queue selection spreads the frames.
func frame(t testing.TB, i int) []byte {
	payload := make([]byte, 32)
	binary.BigEndian.PutUint32(payload, uint32(i))
	copy(payload[4:], "rebound-xdp-test")
	return testutil.Frame(t, testutil.Packet{SrcPort: uint16(20000 + i), DstPort: testPort, Payload: payload})
}

func frameSeq(b []byte) (int, bool) {
	if len(b) < 42+20 || binary.BigEndian.Uint16(b[36:]) != testPort || string(b[46:62]) != "rebound-xdp-test" {
		return 0, false
	}
	return int(binary.BigEndian.Uint32(b[42:])), true
}

type queueSock struct {
	sock *xdp.Socket
	pool *xdp.Pool
	rx   int
}

func (q *queueSock) refill() { q.sock.Refill(q.pool) }

// reflect moves what the rx ring has to the tx ring unchanged (same frame,
// same length), and recycles completed frames into the fill ring.
func (q *queueSock) reflect(t testing.TB, umem *xdp.UMEM, seen map[int]int) {
	for {
		v := q.sock.Rx.Peek(64)
		if len(v) == 0 {
			break
		}
		tx := q.sock.Tx.Reserve(len(v))
		for i, d := range v[:len(tx)] {
			pkt := umem.Packet(d.Addr, d.Len)
			if pkt == nil {
				t.Fatalf("queue %d: descriptor %+v outside the umem", q.sock.Queue(), d)
			}
			if seq, ok := frameSeq(pkt); ok && seen != nil {
				seen[seq]++
			}
			tx[i] = d
		}
		q.rx += len(tx)
		q.sock.Rx.Release(len(tx))
		q.sock.Tx.Submit(len(tx))
	}
	// Copy mode sends at most a budget of descriptors per kick: kick as
	// long as the tx ring holds any.
	if q.sock.Tx.Outstanding() > 0 {
		if err := q.sock.KickTx(); err != nil {
			t.Fatalf("kick: %v", err)
		}
	}
	q.sock.Reclaim(q.pool)
	q.refill()
	if err := q.sock.WakeRx(); err != nil {
		t.Fatalf("wake rx: %v", err)
	}
}

type lab struct {
	ns         *testutil.NS
	a, b       testutil.Veth
	queues     []*queueSock
	peer       *peer
	frameCount int
}

// newLab makes a namespace with a veth pair of the given queue count, the
// redirect program on end a (mode: link.XDPGenericMode or XDPDriverMode),
// one AF_XDP socket per queue on a, and an AF_PACKET peer on end b.
func newLab(t testing.TB, queues int, mode link.XDPAttachFlags, frames int) *lab {
	testutil.RequirePriv(t)
	ns := testutil.NewNS(t, "rbx")
	a, b := testutil.NewVeth(t, ns, ns, queues)
	l := &lab{ns: ns, a: a, b: b, frameCount: frames}
	prog, xsks := redirectProgram(t)
	ns.Do(t, func() {
		lk, err := link.AttachXDP(link.XDPOptions{Program: prog, Interface: a.Index, Flags: mode})
		if err != nil {
			t.Errorf("attach xdp to %s: %v", a.Name, err)
			return
		}
		t.Cleanup(func() { lk.Close() })
		for q := 0; q < queues; q++ {
			u, err := xdp.NewUMEM(xdp.UMEMConfig{FrameCount: frames, FrameSize: 2048})
			if err != nil {
				t.Errorf("umem: %v", err)
				return
			}
			s, err := xdp.Open(a.Index, q, u, xdp.Config{RxSize: 256, TxSize: 256, FillSize: 256, CompletionSize: 256})
			if err != nil {
				u.Close()
				t.Errorf("open queue %d: %v", q, err)
				return
			}
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("close socket: %v", err)
				}
				if err := u.Close(); err != nil {
					t.Errorf("close umem: %v", err)
				}
			})
			pool, err := u.NewPool(frames)
			if err != nil {
				t.Errorf("pool: %v", err)
				return
			}
			if err := xsks.Put(uint32(q), uint32(s.FD())); err != nil {
				t.Errorf("xskmap put: %v", err)
				return
			}
			qs := &queueSock{sock: s, pool: pool}
			qs.refill()
			l.queues = append(l.queues, qs)
		}
	})
	if t.Failed() {
		t.FailNow()
	}
	l.peer = newPeer(t, ns, b.Index)
	return l
}

func TestReflectThroughVeth(t *testing.T) {
	for _, tc := range []struct {
		queues int
		mode   link.XDPAttachFlags
		name   string
	}{
		{1, link.XDPGenericMode, "1 queue generic"},
		{1, link.XDPDriverMode, "1 queue native"},
		{4, link.XDPDriverMode, "4 queues native"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const n = 200
			l := newLab(t, tc.queues, tc.mode, 512)
			seen := map[int]int{}
			for i := 0; i < n; i++ {
				if _, err := unix.Write(l.peer.fd, frame(t, i)); err != nil {
					t.Fatalf("inject frame %d: %v", i, err)
				}
			}
			back := map[int]int{}
			buf := make([]byte, 2048)
			deadline := time.Now().Add(10 * time.Second)
			for len(back) < n && time.Now().Before(deadline) {
				for _, q := range l.queues {
					q.reflect(t, q.sock.UMEM(), seen)
				}
				for {
					m, ok := l.peer.recv(buf)
					if !ok {
						break
					}
					if seq, ok := frameSeq(buf[:m]); ok {
						back[seq]++
					}
				}
			}
			if len(seen) != n || len(back) != n {
				t.Fatalf("sent %d frames: the sockets read %d distinct, the peer got %d back", n, len(seen), len(back))
			}
			for seq, c := range seen {
				if c != 1 {
					t.Fatalf("frame %d read %d times", seq, c)
				}
			}
			per := make([]int, len(l.queues))
			for i, q := range l.queues {
				per[i] = q.rx
			}
			t.Logf("frames per queue: %v", per)
			if tc.queues > 1 {
				for i, c := range per {
					if c == 0 {
						t.Errorf("queue %d received nothing: flows were not spread", i)
					}
				}
			}
			// Every frame is home: in the pool or given to the kernel on
			// the fill ring, none lost in between.
			for i, q := range l.queues {
				deadline := time.Now().Add(2 * time.Second)
				for q.sock.Tx.Outstanding() > 0 && time.Now().Before(deadline) {
					q.reflect(t, q.sock.UMEM(), nil)
				}
				q.reflect(t, q.sock.UMEM(), nil)
				if got := q.pool.Free() + q.sock.Fill.Outstanding(); got != q.pool.Total() {
					t.Errorf("queue %d: %d frames free + %d on the fill ring, want %d", i, q.pool.Free(), q.sock.Fill.Outstanding(), q.pool.Total())
				}
				st, err := q.sock.Statistics()
				if err != nil {
					t.Fatal(err)
				}
				if st.RxInvalidDescs != 0 || st.TxInvalidDescs != 0 {
					t.Errorf("queue %d: invalid descriptors: %+v", i, st)
				}
			}
		})
	}
}

func TestBadUse(t *testing.T) {
	testutil.RequirePriv(t)
	ns := testutil.NewNS(t, "rbx")
	a, _ := testutil.NewVeth(t, ns, ns, 2)
	ns.Do(t, func() {
		u, err := xdp.NewUMEM(xdp.UMEMConfig{FrameCount: 64})
		if err != nil {
			t.Fatal(err)
		}
		defer u.Close()
		cfg := xdp.Config{RxSize: 32, TxSize: 32, FillSize: 32, CompletionSize: 32}
		if _, err := xdp.Open(99999, 0, u, cfg); err == nil || !contains(err, "not found") {
			t.Errorf("missing interface: %v", err)
		}
		if _, err := xdp.Open(a.Index, 7, u, cfg); err == nil || !contains(err, "queue 7") {
			t.Errorf("missing queue: %v", err)
		}
		s, err := xdp.Open(a.Index, 0, u, cfg)
		if err != nil {
			t.Fatalf("open after failed attempts: %v", err)
		}
		if err := u.Close(); err == nil {
			t.Error("closing a umem in use succeeded")
		}
		// A second socket on the same umem, another queue: shared umem.
		s2, err := xdp.Open(a.Index, 1, u, cfg)
		if err != nil {
			t.Fatalf("shared umem socket: %v", err)
		}
		if err := s2.Close(); err != nil {
			t.Error(err)
		}
		if err := s.Close(); err != nil {
			t.Error(err)
		}
		if err := s.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
		if _, err := s.Statistics(); !errors.Is(err, xdp.ErrClosed) {
			t.Errorf("Statistics after Close: %v", err)
		}
		if _, err := s.Wait(time.Millisecond); !errors.Is(err, xdp.ErrClosed) {
			t.Errorf("Wait after Close: %v", err)
		}
		if err := s.KickTx(); !errors.Is(err, xdp.ErrClosed) {
			t.Errorf("KickTx after Close: %v", err)
		}
		if v := s.Rx.Peek(64); len(v) != 0 {
			t.Error("Peek after Close returned entries")
		}
		if v := s.Fill.Reserve(64); len(v) != 0 {
			t.Error("Reserve after Close returned entries")
		}
	})
}

func contains(err error, s string) bool { return err != nil && strings.Contains(err.Error(), s) }

// BenchmarkReflect measures rx-to-tx round trips through one socket on the
// veth pair: the peer injects a window of frames with AF_PACKET, the socket
// reflects them, the peer reads them back.
func BenchmarkReflect(b *testing.B) {
	l := newLab(b, 1, link.XDPDriverMode, 1024)
	q := l.queues[0]
	const window = 32
	frames := make([][]byte, window)
	for i := range frames {
		frames[i] = frame(b, i)
	}
	buf := make([]byte, 2048)
	b.ReportAllocs()
	b.ResetTimer()
	done := 0
	for done < b.N {
		w := min(window, b.N-done)
		for i := 0; i < w; i++ {
			if _, err := unix.Write(l.peer.fd, frames[i]); err != nil {
				b.Fatalf("inject: %v", err)
			}
		}
		got := 0
		deadline := time.Now().Add(5 * time.Second)
		for got < w {
			q.reflect(b, q.sock.UMEM(), nil)
			if m, ok := l.peer.recv(buf); ok {
				if _, ok := frameSeq(buf[:m]); ok {
					got++
				}
				continue
			}
			if time.Now().After(deadline) {
				b.Fatalf("%d of %d frames came back", got, w)
			}
		}
		done += w
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "roundtrips/s")
}

func TestEthtoolRxVLANOffload(t *testing.T) {
	testutil.RequirePriv(t)
	ns := testutil.NewNS(t, "rbx")
	a, _ := testutil.NewVeth(t, ns, ns, 1)
	var et *xdp.Ethtool
	var err error
	ns.Do(t, func() { et, err = xdp.NewEthtool(a.Name) })
	if err != nil {
		t.Fatal(err)
	}
	defer et.Close()
	for _, want := range []bool{false, true, false} {
		if err := et.SetRxVLANOffload(want); err != nil {
			t.Fatal(err)
		}
		if got, err := et.RxVLANOffload(); err != nil || got != want {
			t.Fatalf("rx-vlan-offload = %v, %v; want %v", got, err, want)
		}
	}
	var missing *xdp.Ethtool
	ns.Do(t, func() { missing, err = xdp.NewEthtool("rbnosuch0") })
	if err == nil {
		_, err = missing.RxVLANOffload()
		missing.Close()
	}
	if err == nil {
		t.Fatal("ethtool on a missing interface succeeded")
	}
}

// openFDs counts this process's open file descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// Opening and closing sockets and UMEMs, also after failed opens, leaks
// no file descriptor and no mapping.
func TestNoLeaks(t *testing.T) {
	testutil.RequirePriv(t)
	ns := testutil.NewNS(t, "rbx")
	a, _ := testutil.NewVeth(t, ns, ns, 1)
	ns.Do(t, func() {
		before := openFDs(t)
		for i := 0; i < 20; i++ {
			u, err := xdp.NewUMEM(xdp.UMEMConfig{FrameCount: 64})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := xdp.Open(a.Index, 5, u, xdp.Config{RxSize: 32, TxSize: 32, FillSize: 32, CompletionSize: 32}); err == nil {
				t.Fatal("bind to a missing queue succeeded")
			}
			s, err := xdp.Open(a.Index, 0, u, xdp.Config{RxSize: 32, TxSize: 32, FillSize: 32, CompletionSize: 32})
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if err := u.Close(); err != nil {
				t.Fatal(err)
			}
		}
		if after := openFDs(t); after != before {
			t.Fatalf("%d file descriptors open before, %d after 20 rounds", before, after)
		}
	})
}

// Busy polling sets the three socket options Open was asked for, and
// BusyPoll runs without error; without it the options stay off.
func TestBusyPollOptions(t *testing.T) {
	testutil.RequirePriv(t)
	ns := testutil.NewNS(t, "rbx")
	a, _ := testutil.NewVeth(t, ns, ns, 1)
	for _, c := range []struct {
		name   string
		cfg    xdp.Config
		prefer int
		us     int
	}{
		{"off", xdp.Config{}, 0, 0},
		{"50us", xdp.Config{BusyPoll: 50 * time.Microsecond, BusyPollBudget: 32}, 1, 50},
		{"1ms", xdp.Config{BusyPoll: time.Millisecond}, 1, 1000},
	} {
		t.Run(c.name, func(t *testing.T) {
			ns.Do(t, func() {
				u, err := xdp.NewUMEM(xdp.UMEMConfig{FrameCount: 512, FrameSize: 2048})
				if err != nil {
					t.Fatal(err)
				}
				defer u.Close()
				cfg := c.cfg
				cfg.RxSize, cfg.TxSize, cfg.FillSize, cfg.CompletionSize = 256, 256, 256, 256
				s, err := xdp.Open(a.Index, 0, u, cfg)
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close()
				for _, o := range []struct {
					name string
					opt  int
					want int
				}{{"SO_PREFER_BUSY_POLL", unix.SO_PREFER_BUSY_POLL, c.prefer}, {"SO_BUSY_POLL", unix.SO_BUSY_POLL, c.us}} {
					v, err := unix.GetsockoptInt(s.FD(), unix.SOL_SOCKET, o.opt)
					if err != nil || v != o.want {
						t.Errorf("%s = %d (%v), want %d", o.name, v, err, o.want)
					}
				}
				// SO_BUSY_POLL_BUDGET cannot be read back (getsockopt
				// does not know it); Open fails when setting it fails.
				if s.BusyPolling() != (c.prefer == 1) {
					t.Errorf("BusyPolling() = %v", s.BusyPolling())
				}
				if err := s.BusyPoll(); err != nil {
					t.Errorf("BusyPoll: %v", err)
				}
			})
		})
	}
}
