package e2e

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"

	"github.com/rebound-net/rebound/client"
	"github.com/rebound-net/rebound/codec"
	"github.com/rebound-net/rebound/codec/rebound"
	"github.com/rebound-net/rebound/internal/testutil"
	"github.com/rebound-net/rebound/loadgen"
)

const (
	srv4 = "198.18.0.2:7000"
	srv6 = "[2001:2::2]:7000"
)

// Case 1: every op over IPv4 and IPv6 with kernel sockets, and over a VLAN
// tag with raw frames (this kernel has no 802.1Q devices); replies exact,
// sequences matched.
func TestEveryOp(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			l := testutil.NewLab(t, 1)
			startServer(t, l.Srv, m.args(l)...)
			for _, addr := range []string{srv4, srv6} {
				c := dial(t, l.Cli, addr, client.Options{})
				ctx := context.Background()
				key := []byte("key-" + addr)
				if got, err := c.Ping(ctx, []byte("hello")); err != nil || string(got) != "hello" {
					t.Fatalf("%s ping: %q %v", addr, got, err)
				}
				if _, err := c.Get(ctx, key); !errors.Is(err, client.ErrNotFound) {
					t.Fatalf("%s get missing: %v", addr, err)
				}
				if err := c.Set(ctx, key, []byte("value"), time.Minute); err != nil {
					t.Fatalf("%s set: %v", addr, err)
				}
				if got, err := c.Get(ctx, key); err != nil || string(got) != "value" {
					t.Fatalf("%s get: %q %v", addr, got, err)
				}
				if err := c.Del(ctx, key); err != nil {
					t.Fatalf("%s del: %v", addr, err)
				}
				if err := c.Del(ctx, key); !errors.Is(err, client.ErrNotFound) {
					t.Fatalf("%s del again: %v", addr, err)
				}
				r, err := c.Do(ctx, 0x42, nil)
				if err != nil || r.Status != rebound.StatusUnknownOp || r.Len != 0 {
					t.Fatalf("%s unknown op: %+v %v", addr, r, err)
				}
			}
			if !m.xdp {
				return
			}
			// VLAN: tagged requests, answered tagged with the same id,
			// checksums right.
			p := newRawPeer(t, l)
			for i, v6 := range []bool{false, true} {
				seq := uint32(900 + i)
				p.send(t, testutil.Frame(t, testutil.Packet{VLAN: 100, IPv6: v6, Payload: ping(seq, "vlan")}))
				f := p.replyTo(seq, 3*time.Second)
				if f == nil {
					t.Fatalf("no reply to a VLAN-tagged request (ipv6=%v)", v6)
				}
				fr, _ := codec.ParseFrame(f)
				if !fr.VLAN || binary.BigEndian.Uint16(f[14:16])&0x0FFF != 100 || !bytes.Equal(fr.UDPPayload(f)[rebound.HeaderLen:], []byte("vlan")) {
					t.Fatalf("VLAN reply: %+v % x", fr, f)
				}
				checkReplyFrame(t, f)
			}
		})
	}
}

// Case 2: traffic that is not ours still works while the server runs.
func TestOtherTrafficUnharmed(t *testing.T) {
	for _, m := range modes[:2] {
		t.Run(m.name, func(t *testing.T) {
			l := testutil.NewLab(t, 1)
			startServer(t, l.Srv, m.args(l)...)
			// A kernel UDP listener on another port, in the server namespace.
			var ln net.PacketConn
			var err error
			l.Srv.Do(t, func() { ln, err = net.ListenPacket("udp", ":7001") })
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			var c net.Conn
			l.Cli.Do(t, func() { c, err = net.Dial("udp", "198.18.0.2:7001") })
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			// Even a Rebound-looking datagram to another port is not ours.
			for _, msg := range [][]byte{[]byte("plain"), ping(1, "x")} {
				_, _ = c.Write(msg)
				buf := make([]byte, 100)
				_ = ln.SetReadDeadline(time.Now().Add(2 * time.Second))
				n, _, err := ln.ReadFrom(buf)
				if err != nil || !bytes.Equal(buf[:n], msg) {
					t.Fatalf("kernel listener on 7001: % x %v", buf[:n], err)
				}
			}
			// TCP to the service port.
			tc := dial(t, l.Cli, srv4, client.Options{TCP: true})
			if got, err := tc.Ping(context.Background(), []byte("tcp")); err != nil || string(got) != "tcp" {
				t.Fatalf("tcp: %q %v", got, err)
			}
			// ICMP echo.
			var ic *icmp.PacketConn
			l.Cli.Do(t, func() { ic, err = icmp.ListenPacket("ip4:icmp", "0.0.0.0") })
			if err != nil {
				t.Fatal(err)
			}
			defer ic.Close()
			req := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: 7, Seq: 1, Data: []byte("rebound")}}
			wb, _ := req.Marshal(nil)
			if _, err := ic.WriteTo(wb, &net.IPAddr{IP: net.IPv4(198, 18, 0, 2)}); err != nil {
				t.Fatal(err)
			}
			rb := make([]byte, 1500)
			for {
				_ = ic.SetReadDeadline(time.Now().Add(2 * time.Second))
				n, _, err := ic.ReadFrom(rb)
				if err != nil {
					t.Fatalf("no ICMP echo reply: %v", err)
				}
				if rm, err := icmp.ParseMessage(1, rb[:n]); err == nil && rm.Type == ipv4.ICMPTypeEchoReply {
					break
				}
			}
		})
	}
}

// Case 3: malformed and hostile frames, injected raw. The server answers
// what the protocol says or nothing, never crashes, and answers a valid
// request right after each.
func TestMalformedFrames(t *testing.T) {
	for _, m := range modes[:2] {
		t.Run(m.name, func(t *testing.T) {
			l := testutil.NewLab(t, 1)
			s := startServer(t, l.Srv, append(m.args(l), "--metrics", "127.0.0.1:9100")...)
			p := newRawPeer(t, l)
			frame := func(payload []byte) []byte { return testutil.Frame(t, testutil.Packet{Payload: payload}) }
			valid := frame(ping(1000, "ok"))
			cases := []struct {
				name  string
				frame []byte
				seq   uint32         // reply expected with this sequence, 0: none
				want  rebound.Status // its status
			}{
				{"ethernet header only", valid[:14], 0, 0},
				{"truncated in ip", valid[:20], 0, 0},
				{"truncated in udp", valid[:38], 0, 0},
				{"truncated in header", valid[:48], 0, 0},
				{"ip options", testutil.Frame(t, testutil.Packet{IPOptions: true, Payload: ping(1, "opt")}), 1, rebound.StatusOK},
				{"wrong magic", frame(msgWith(2, func(b []byte) { b[0] = 0xB4 })), 0, 0},
				{"wrong version", frame(msgWith(3, func(b []byte) { b[1] = 9 })), 0, 0},
				{"response flag", frame(msgWith(4, func(b []byte) { b[3] = rebound.FlagResponse })), 0, 0},
				{"len larger", frame(msgWith(5, func(b []byte) { b[9] = 200 })), 5, rebound.StatusBadRequest},
				{"len smaller", frame(msgWith(6, func(b []byte) { b[9] = 1 })), 6, rebound.StatusBadRequest},
				{"unknown flags", frame(msgWith(7, func(b []byte) { b[3] = 0x10 })), 7, rebound.StatusBadRequest},
				{"non-zero status", frame(msgWith(8, func(b []byte) { b[11] = 1 })), 8, rebound.StatusBadRequest},
				{"keylen past payload", frame(append(raw(rebound.OpGet, 9, 3), 9, 'a', 'b')), 9, rebound.StatusBadRequest},
			}
			for i, c := range cases {
				p.send(t, c.frame)
				if c.seq != 0 {
					f := p.replyTo(c.seq, 3*time.Second)
					if f == nil {
						t.Fatalf("%s: no reply", c.name)
					}
					checkReplyFrame(t, f)
					fr, _ := codec.ParseFrame(f)
					h, _ := rebound.DecodeHeader(fr.UDPPayload(f))
					if h.Status != c.want || (h.Status != rebound.StatusOK && h.Len != 0) {
						t.Fatalf("%s: reply %+v, want status %v", c.name, h, c.want)
					}
				}
				// A valid request right after is answered.
				probe := uint32(5000 + i)
				p.send(t, frame(ping(probe, "probe")))
				f := p.replyTo(probe, 3*time.Second)
				if f == nil {
					t.Fatalf("%s: the valid request after it got no reply", c.name)
				}
				checkReplyFrame(t, f)
			}
			// IPv6 with an extension header is left to the kernel: the
			// socket path answers.
			v6 := testutil.Frame(t, testutil.Packet{IPv6: true, Payload: ping(778, "ext")})
			ext := make([]byte, 0, len(v6)+8)
			ext = append(ext, v6[:54]...)
			ext = append(ext, 17, 0, 1, 4, 0, 0, 0, 0) // hop-by-hop: next UDP, PadN
			ext = append(ext, v6[54:]...)
			ext[20] = 0 // next header: hop-by-hop
			binary.BigEndian.PutUint16(ext[18:20], binary.BigEndian.Uint16(ext[18:20])+8)
			p.send(t, ext)
			if p.replyTo(778, 3*time.Second) == nil {
				t.Fatal("an IPv6 request with a hop-by-hop header was not answered by the socket path")
			}
			// Fragments are left to the kernel: the socket path answers.
			for _, f := range fragments(t, ping(777, strings.Repeat("f", 40))) {
				p.send(t, f)
			}
			if p.replyTo(777, 3*time.Second) == nil {
				t.Fatal("a fragmented request was not answered by the socket path")
			}
			if v := metric(t, l.Srv, "127.0.0.1:9100", "rebound_xdp_packets_total", `outcome="pass_fragment"`); v < 2 {
				t.Fatalf("xdp pass_fragment counter %v, want 2", v)
			}
			if v := metric(t, l.Srv, "127.0.0.1:9100", "rebound_rejects_total", `transport="xdp"`); v != 5 {
				t.Fatalf("xdp rejects %v, want the 5 error replies above", v)
			}
			select {
			case <-s.done:
				t.Fatalf("server died: %v", s.err)
			default:
			}
		})
	}
}

func raw(op rebound.Op, seq uint32, plen int) []byte {
	b := make([]byte, rebound.HeaderLen)
	rebound.PutHeader(b, rebound.Header{Op: op, Seq: seq, Len: uint16(plen)})
	return b
}

// Case 4: amplification.
func TestAmplification(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			l := testutil.NewLab(t, 1)
			startServer(t, l.Srv, m.args(l)...)
			big := strings.Repeat("v", 900)
			if out, code := run(t, l.Cli, "call", "--target", srv4, "set", "big", big); code != 0 {
				t.Fatalf("set: %s", out)
			}
			uc := dial(t, l.Cli, srv4, client.Options{NoTCPRetry: true})
			r, err := uc.Do(context.Background(), rebound.OpGet, []byte{3, 'b', 'i', 'g'})
			if !errors.Is(err, client.ErrTruncated) || r.Flags&rebound.FlagTruncated == 0 || r.Status != rebound.StatusOK || r.Len != 0 {
				t.Fatalf("UDP GET of 900 bytes for a 16-byte request: %+v %v", r, err)
			}
			tc := dial(t, l.Cli, srv4, client.Options{TCP: true})
			if v, err := tc.Get(context.Background(), []byte("big")); err != nil || string(v) != big {
				t.Fatalf("TCP GET: %d bytes, %v", len(v), err)
			}
			out, code := run(t, l.Cli, "call", "--target", srv4, "--pad", "--json", "get", "big")
			if code != 0 || !strings.Contains(out, `"via":"udp-padded"`) || !strings.Contains(out, big) {
				t.Fatalf("padded GET: %s", out)
			}
		})
	}
}

// Case 5: four rx queues, flows spread, every queue answers.
func TestMultiQueue(t *testing.T) {
	for _, m := range modes[:2] {
		t.Run(m.name, func(t *testing.T) {
			l := testutil.NewLab(t, 4)
			// PINGs would be answered in the XDP program: this is about
			// the spread over the AF_XDP queues.
			startServer(t, l.Srv, append(m.args(l), "--metrics", "127.0.0.1:9100", "--xdp-answers=false")...)
			for i := 0; i < 64; i++ {
				c := dial(t, l.Cli, srv4, client.Options{})
				if _, err := c.Ping(context.Background(), []byte{byte(i)}); err != nil {
					t.Fatalf("flow %d: %v", i, err)
				}
				c.Close()
			}
			per := make([]float64, 4)
			for q := range per {
				per[q] = metric(t, l.Srv, "127.0.0.1:9100", "rebound_replies_total", `transport="xdp"`, fmt.Sprintf(`queue="%d"`, q))
			}
			t.Logf("replies per queue: %v", per)
			if per[0]+per[1]+per[2]+per[3] < 64 {
				t.Fatalf("only %v of 64 flows answered through AF_XDP", per)
			}
			for q, v := range per {
				// Generic XDP on veth sees the rx queue the kernel recorded,
				// which does not spread flows evenly (one run: 41 14 9 0):
				// every queue's socket must answer in native mode only.
				if v == 0 && m.name == "xdp-native" {
					t.Errorf("queue %d answered nothing", q)
				}
			}
		})
	}
}

// loadFor runs a bench from the client namespace in the background for d
// and returns a channel that yields its result.
func loadFor(t *testing.T, l *testutil.Lab, d time.Duration, window int) <-chan *loadgen.BenchResult {
	ch := make(chan *loadgen.BenchResult, 1)
	started := make(chan struct{})
	go func() {
		var res *loadgen.BenchResult
		l.Cli.Do(t, func() {
			close(started)
			res, _ = loadgen.Bench(context.Background(), loadgen.BenchConfig{Target: srv4, Window: window, Flows: 2,
				Duration: d, Warmup: 0, Timeout: 500 * time.Millisecond})
		})
		ch <- res
	}()
	<-started
	return ch
}

// Case 6: stopping.
func TestStopping(t *testing.T) {
	for _, m := range modes[:2] {
		t.Run(m.name, func(t *testing.T) {
			t.Run("SIGTERM under load", func(t *testing.T) {
				l := testutil.NewLab(t, 1)
				s := startServer(t, l.Srv, m.args(l)...)
				res := loadFor(t, l, 3*time.Second, 256)
				time.Sleep(time.Second) // let the load build up
				code, took := s.stop(syscall.SIGTERM)
				if code != 0 || took > 2*time.Second {
					t.Fatalf("SIGTERM under load: exit %d after %v (want 0 within 2s)\n%s", code, took, s.Log())
				}
				if xdpAttached(t, l.SrvIf) {
					t.Fatal("XDP program still attached after SIGTERM")
				}
				if strings.Contains(s.Log(), "does not balance") {
					t.Fatalf("frame accounting failed at exit:\n%s", s.Log())
				}
				<-res
			})
			t.Run("SIGKILL under load", func(t *testing.T) {
				l := testutil.NewLab(t, 1)
				s := startServer(t, l.Srv, m.args(l)...)
				res := loadFor(t, l, 2*time.Second, 256)
				time.Sleep(500 * time.Millisecond)
				s.stop(syscall.SIGKILL)
				deadline := time.Now().Add(5 * time.Second)
				for xdpAttached(t, l.SrvIf) {
					if time.Now().After(deadline) {
						t.Fatal("XDP program still attached 5s after SIGKILL")
					}
					time.Sleep(20 * time.Millisecond)
				}
				<-res
			})
			t.Run("second server refused", func(t *testing.T) {
				l := testutil.NewLab(t, 1)
				startServer(t, l.Srv, m.args(l)...)
				second := startProcess(t, l.Srv, append(m.args(l), "--listen", ":7100", "--memcache-listen", ":11300")...)
				code, _ := second.stop(0) // wait for it to exit by itself
				if code == 0 || !strings.Contains(second.Log(), "already has an XDP program") || !strings.Contains(second.Log(), "rebound_steer") {
					t.Fatalf("second server: exit %d\n%s", code, second.Log())
				}
			})
		})
	}
}

// Case 7: a UMEM far too small for the load drops and counts, never
// deadlocks, recovers, and has every frame home at exit.
func TestStarvation(t *testing.T) {
	for _, m := range modes[:2] {
		t.Run(m.name, func(t *testing.T) {
			l := testutil.NewLab(t, 1)
			s := startServer(t, l.Srv, append(m.args(l), "--frames", "16", "--metrics", "127.0.0.1:9100")...)
			res := <-loadFor(t, l, 2*time.Second, 512)
			if res == nil || res.Received == 0 {
				t.Fatalf("no reply at all under starvation: %+v", res)
			}
			t.Logf("starved: %d sent, %d answered, %d lost", res.Sent, res.Received, res.Lost)
			// Recovers: single requests are answered once the load stops.
			c := dial(t, l.Cli, srv4, client.Options{Retries: 5})
			for i := 0; i < 20; i++ {
				if _, err := c.Ping(context.Background(), []byte("after")); err != nil {
					t.Fatalf("request %d after the load: %v", i, err)
				}
			}
			xsk := metric(t, l.Srv, "127.0.0.1:9100", "rebound_xsk_events_total")
			t.Logf("xsk drop events counted: %v", xsk)
			code, _ := s.stop(syscall.SIGTERM)
			if code != 0 || strings.Contains(s.Log(), "does not balance") {
				t.Fatalf("exit %d\n%s", code, s.Log())
			}
		})
	}
}

// Case 8: TCP with the binary: pipelining in order, tiny writes, a client
// that never reads, bad magic.
func TestTCP(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			l := testutil.NewLab(t, 1)
			startServer(t, l.Srv, m.args(l)...)
			var c net.Conn
			var err error
			l.Cli.Do(t, func() { c, err = net.Dial("tcp", srv4) })
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			const n = 100000
			go func() {
				w := make([]byte, 0, 64<<10)
				for i := 0; i < n; i++ {
					var p [4]byte
					binary.BigEndian.PutUint32(p[:], uint32(i))
					w = append(w, ping(uint32(i), string(p[:]))...)
					if len(w) > 60<<10 || i == n-1 {
						if _, err := c.Write(w); err != nil {
							return
						}
						w = w[:0]
					}
				}
			}()
			_ = c.SetReadDeadline(time.Now().Add(60 * time.Second))
			got := make([]byte, rebound.HeaderLen+4)
			for i := 0; i < n; i++ {
				if _, err := io.ReadFull(c, got); err != nil {
					t.Fatalf("reply %d: %v", i, err)
				}
				if h, _ := rebound.DecodeHeader(got); h.Seq != uint32(i) {
					t.Fatalf("reply %d has sequence %d", i, h.Seq)
				}
			}
			// Tiny writes.
			var c2 net.Conn
			l.Cli.Do(t, func() { c2, err = net.Dial("tcp", srv4) })
			if err != nil {
				t.Fatal(err)
			}
			defer c2.Close()
			req := ping(42, "tiny writes")
			for i := range req {
				_, _ = c2.Write(req[i : i+1])
			}
			rep := make([]byte, len(req))
			_ = c2.SetReadDeadline(time.Now().Add(3 * time.Second))
			if _, err := io.ReadFull(c2, rep); err != nil || rep[3] != rebound.FlagResponse {
				t.Fatalf("tiny writes: % x %v", rep, err)
			}
			// Bad magic: one BAD_REQUEST, then the connection closes.
			bad := ping(43, "")
			bad[0] = 'X'
			_, _ = c2.Write(bad)
			all, _ := io.ReadAll(c2)
			if h, ok := rebound.DecodeHeader(all); !ok || h.Status != rebound.StatusBadRequest || len(all) != rebound.HeaderLen {
				t.Fatalf("bad magic: % x", all)
			}
		})
	}
}

// Case 9: kv under concurrency from both namespaces: no lost SET, no torn
// value.
func TestKVConcurrency(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			l := testutil.NewLab(t, 1)
			startServer(t, l.Srv, m.args(l)...)
			type side struct {
				ns   *testutil.NS
				addr string
			}
			sides := []side{{l.Cli, srv4}, {l.Cli, srv6}, {l.Srv, "127.0.0.1:7000"}}
			// value encodes writer, key and round, with a CRC: a torn or mixed
			// value fails the check.
			value := func(w, k, round int) []byte {
				body := fmt.Appendf(nil, "w%d-k%d-r%d-%s", w, k, round, strings.Repeat("x", 64+k))
				return binary.BigEndian.AppendUint32(body, crc32.ChecksumIEEE(body))
			}
			intact := func(v []byte) bool {
				return len(v) > 4 && binary.BigEndian.Uint32(v[len(v)-4:]) == crc32.ChecksumIEEE(v[:len(v)-4])
			}
			const writers, keys, rounds = 6, 20, 30
			var wg sync.WaitGroup
			errs := make(chan error, writers*2)
			for w := 0; w < writers; w++ {
				sd := sides[w%len(sides)]
				// Padded GETs: a value larger than 4x the GET would be TRUNCATED.
				c := dial(t, sd.ns, sd.addr, client.Options{Retries: 5, PadGets: true})
				wg.Add(1)
				go func() {
					defer wg.Done()
					ctx := context.Background()
					for r := 0; r < rounds; r++ {
						for k := 0; k < keys; k++ {
							own := []byte(fmt.Sprintf("own-%d-%d", w, k))
							if err := c.Set(ctx, own, value(w, k, r), 0); err != nil {
								errs <- fmt.Errorf("writer %d set: %w", w, err)
								return
							}
							shared := []byte(fmt.Sprintf("shared-%d", k))
							if err := c.Set(ctx, shared, value(w, k, r), 0); err != nil {
								errs <- fmt.Errorf("writer %d set shared: %w", w, err)
								return
							}
							if v, err := c.Get(ctx, shared); err != nil || !intact(v) {
								errs <- fmt.Errorf("writer %d: shared key %d torn or missing: %q %v", w, k, v, err)
								return
							}
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			// No lost SET: every writer's own keys hold its last round.
			c := dial(t, l.Cli, srv4, client.Options{PadGets: true})
			for w := 0; w < writers; w++ {
				for k := 0; k < keys; k++ {
					v, err := c.Get(context.Background(), []byte(fmt.Sprintf("own-%d-%d", w, k)))
					if err != nil || !bytes.Equal(v, value(w, k, rounds-1)) {
						t.Fatalf("own-%d-%d: %q %v", w, k, v, err)
					}
				}
			}
		})
	}
}

// The bench's AF_XDP load generator against the server's fast path.
func TestBenchOverXDP(t *testing.T) {
	l := testutil.NewLab(t, 1)
	l.RemovePass() // the load generator attaches its own program there
	startServer(t, l.Srv, "--mode", "xdp", "--iface", l.SrvIf.Name)
	out, code := run(t, l.Cli, "bench", "--target", srv4, "--transport", "xdp", "--iface", l.CliIf.Name,
		"--duration", "1s", "--warmup", "200ms", "--window", "64", "--json", "--quiet")
	if code != 0 || !strings.Contains(out, `"throughput"`) {
		t.Fatalf("bench --transport xdp: exit %d\n%s", code, out)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &m); err != nil {
		t.Fatal(err)
	}
	if m["received"].(float64) < 1000 || m["lost"].(float64) > m["sent"].(float64)/100 {
		t.Fatalf("xdp load: %v", m)
	}
}
