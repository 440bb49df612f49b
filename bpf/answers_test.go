package bpf_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/rebound-net/rebound/bpf"
	"github.com/rebound-net/rebound/codec"
	"github.com/rebound-net/rebound/codec/memcache"
	"github.com/rebound-net/rebound/codec/rebound"
	"github.com/rebound-net/rebound/internal/testutil"
)

const (
	xdpTX    = 3
	ansAmp   = 4
	ansMTU   = 1500
	noAnswer = bpf.AnswerOp(-1) // no answer counter may move
)

// shapes are the frame layouts the program answers in.
var shapes = []struct {
	name string
	pk   testutil.Packet
}{
	{"ipv4", testutil.Packet{}},
	{"ipv6", testutil.Packet{IPv6: true}},
	{"vlan ipv4", testutil.Packet{VLAN: 10}},
	{"vlan ipv6", testutil.Packet{VLAN: 10, IPv6: true}},
	{"ipv4 options", testutil.Packet{IPOptions: true}},
}

// loadAnswers loads the program with a Rebound and a memcached port and
// an item map, answering on with the default bounds.
func loadAnswers(t testing.TB, n int) (*bpf.Program, *bpf.Items) {
	t.Helper()
	testutil.RequirePriv(t)
	p, err := bpf.Load(bpf.Options{Ports: []uint16{7000}, MemcachePorts: []uint16{mcPort}, AnswerItems: n})
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	items := p.Items()
	if items == nil {
		t.Fatal("Items() is nil with AnswerItems set")
	}
	configure(t, items, true, ansAmp, ansMTU)
	return p, items
}

func configure(t testing.TB, items *bpf.Items, on bool, amp, mtu int) {
	t.Helper()
	if err := items.Configure(on, amp, mtu); err != nil {
		t.Fatalf("configure: %v", err)
	}
}

// put stores an item stored now, with no expiry.
func put(items *bpf.Items, key string, value []byte, flags uint32, cas uint64) {
	items.Put(key, value, flags, cas, 0, time.Now().UnixNano())
}

// frame builds pk with payload, to the Rebound port or the memcached one.
func frame(t *testing.T, pk testutil.Packet, port uint16, payload []byte) []byte {
	t.Helper()
	pk.DstPort = port
	pk.Payload = payload
	return testutil.Frame(t, pk)
}

// counters reads both counter sets of p.
func counters(t *testing.T, p *bpf.Program) (bpf.Counters, bpf.AnswerCounters) {
	t.Helper()
	c, err := p.Counters()
	if err != nil {
		t.Fatal(err)
	}
	a, err := p.AnswerCounters()
	if err != nil {
		t.Fatal(err)
	}
	return c, a
}

// runAnswer runs the program on req and checks the verdict and that
// exactly Seen and counter moved by one among the counters, and exactly
// (op, outcome) among the answer counters (none when op is noAnswer). When
// the verdict is not XDP_TX, the frame must come out unchanged. It returns
// the output frame.
func runAnswer(t *testing.T, p *bpf.Program, name string, req []byte, verdict uint32, counter bpf.Counter, op bpf.AnswerOp, outcome bpf.AnswerOutcome) []byte {
	t.Helper()
	before, abefore := counters(t, p)
	in := append([]byte(nil), req...)
	got, out, err := p.RunFrame(in)
	if err != nil {
		t.Fatalf("%s: run: %v", name, err)
	}
	after, aafter := counters(t, p)
	if got != verdict {
		t.Errorf("%s: verdict %d, want %d", name, got, verdict)
	}
	for c := bpf.Counter(0); c < bpf.NumCounters; c++ {
		exp := uint64(0)
		if c == counter || c == bpf.Seen {
			exp = 1
		}
		if d := after[c] - before[c]; d != exp {
			t.Errorf("%s: counter %v moved by %d, want %d", name, c, d, exp)
		}
	}
	for o := bpf.AnswerOp(0); o < bpf.NumAnswerOps; o++ {
		for r := bpf.AnswerOutcome(0); r < bpf.NumAnswerOutcomes; r++ {
			exp := uint64(0)
			if o == op && r == outcome {
				exp = 1
			}
			if d := aafter[o][r] - abefore[o][r]; d != exp {
				t.Errorf("%s: answer counter %v/%v moved by %d, want %d", name, o, r, d, exp)
			}
		}
	}
	if got != xdpTX && !bytes.Equal(out, req) {
		t.Errorf("%s: verdict %d but the frame changed:\n in  %x\n out %x", name, got, req, out)
	}
	return out
}

// hit runs req, which must be answered (op, AnswerHit), and checks the
// reply frame against the request both independently (gopacket, checksums
// recomputed here) and against the userspace reply builder: payload is
// the reply's UDP payload as userspace writes it.
func hit(t *testing.T, p *bpf.Program, name string, req []byte, op bpf.AnswerOp, payload []byte) []byte {
	t.Helper()
	out := runAnswer(t, p, name, req, xdpTX, bpf.Answered, op, bpf.AnswerHit)
	if t.Failed() {
		return out
	}
	checkReply(t, name, req, out, payload)
	if want := userspaceReply(t, req, payload); !bytes.Equal(out, want) {
		t.Errorf("%s: XDP reply differs from the userspace one:\n xdp  %x\n user %x", name, out, want)
	}
	return out
}

// userspaceReply builds the reply to req with the given UDP payload the
// way the userspace path does: payload written at f.Payload of a copy of
// the request, then codec's Frame.Reply.
func userspaceReply(t *testing.T, req, payload []byte) []byte {
	t.Helper()
	buf := make([]byte, len(req)+len(payload)+64)
	copy(buf, req)
	f, r := codec.ParseFrame(buf[:len(req)])
	if r != codec.ReasonNone {
		t.Fatalf("userspace parse: %v", r)
	}
	copy(buf[f.Payload:], payload)
	n := f.Reply(buf, len(payload))
	if n == 0 {
		t.Fatal("userspace Reply failed")
	}
	return buf[:n]
}

type view struct {
	eth  *layers.Ethernet
	vlan *layers.Dot1Q
	ip4  *layers.IPv4
	ip6  *layers.IPv6
	udp  *layers.UDP
}

func decode(t *testing.T, name string, b []byte) view {
	t.Helper()
	pkt := gopacket.NewPacket(b, layers.LayerTypeEthernet, gopacket.Default)
	if el := pkt.ErrorLayer(); el != nil {
		t.Fatalf("%s: gopacket: %v", name, el.Error())
	}
	var v view
	v.eth, _ = pkt.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	v.vlan, _ = pkt.Layer(layers.LayerTypeDot1Q).(*layers.Dot1Q)
	v.ip4, _ = pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	v.ip6, _ = pkt.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
	v.udp, _ = pkt.Layer(layers.LayerTypeUDP).(*layers.UDP)
	if v.eth == nil || v.udp == nil || (v.ip4 == nil) == (v.ip6 == nil) {
		t.Fatalf("%s: not Ethernet/IP/UDP: %v", name, pkt)
	}
	return v
}

// csum adds b to a one's complement accumulator, RFC 1071 style, written
// here so that the program's checksums are checked by other code than
// codec's.
func csum(b []byte, acc uint32) uint32 {
	for i := 0; i+1 < len(b); i += 2 {
		acc += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		acc += uint32(b[len(b)-1]) << 8
	}
	return acc
}

func fold(acc uint32) uint16 {
	for acc>>16 != 0 {
		acc = acc>>16 + acc&0xffff
	}
	return uint16(acc)
}

// pseudoSum is the UDP pseudo-header sum of the frame's addresses.
func pseudoSum(v view, ulen int) uint32 {
	acc := uint32(17 + ulen)
	if v.ip4 != nil {
		return csum(v.ip4.DstIP.To4(), csum(v.ip4.SrcIP.To4(), acc))
	}
	return csum(v.ip6.DstIP.To16(), csum(v.ip6.SrcIP.To16(), acc))
}

// checkReply checks out as the reply to req carrying payload.
func checkReply(t *testing.T, name string, req, out, payload []byte) {
	t.Helper()
	rq, rp := decode(t, name+" request", req), decode(t, name+" reply", out)
	if !bytes.Equal(rp.eth.SrcMAC, rq.eth.DstMAC) || !bytes.Equal(rp.eth.DstMAC, rq.eth.SrcMAC) || rp.eth.EthernetType != rq.eth.EthernetType {
		t.Errorf("%s: Ethernet %v > %v (%v), request %v > %v", name, rp.eth.SrcMAC, rp.eth.DstMAC, rp.eth.EthernetType, rq.eth.SrcMAC, rq.eth.DstMAC)
	}
	l2 := 14
	if (rq.vlan == nil) != (rp.vlan == nil) {
		t.Fatalf("%s: VLAN tag in request %v, in reply %v", name, rq.vlan != nil, rp.vlan != nil)
	}
	if rq.vlan != nil {
		l2 += 4
		if rp.vlan.VLANIdentifier != rq.vlan.VLANIdentifier || rp.vlan.Type != rq.vlan.Type || rp.vlan.Priority != rq.vlan.Priority {
			t.Errorf("%s: VLAN %+v, request %+v", name, rp.vlan, rq.vlan)
		}
	}
	ulen := 8 + len(payload)
	l3 := 40
	if rq.ip4 != nil {
		a, b := rq.ip4, rp.ip4
		if b == nil {
			t.Fatalf("%s: reply is not IPv4", name)
		}
		l3 = int(b.IHL) * 4
		if !a.SrcIP.Equal(b.DstIP) || !a.DstIP.Equal(b.SrcIP) {
			t.Errorf("%s: IPv4 %v > %v, request %v > %v", name, b.SrcIP, b.DstIP, a.SrcIP, a.DstIP)
		}
		if b.TTL != 64 {
			t.Errorf("%s: TTL %d", name, b.TTL)
		}
		if b.IHL != a.IHL || !bytes.Equal(b.Contents[20:], a.Contents[20:]) {
			t.Errorf("%s: IPv4 options %x, request %x", name, b.Contents[20:], a.Contents[20:])
		}
		if b.Id != a.Id || b.TOS != a.TOS || b.Flags != a.Flags || b.FragOffset != a.FragOffset || b.Protocol != layers.IPProtocolUDP {
			t.Errorf("%s: IPv4 header %+v, request %+v", name, b, a)
		}
		if int(b.Length) != l3+ulen {
			t.Errorf("%s: IPv4 length %d, want %d", name, b.Length, l3+ulen)
		}
		hdr := append([]byte(nil), b.Contents...)
		hdr[10], hdr[11] = 0, 0
		if want := ^fold(csum(hdr, 0)); b.Checksum != want {
			t.Errorf("%s: IPv4 checksum %#04x, want %#04x", name, b.Checksum, want)
		}
	} else {
		a, b := rq.ip6, rp.ip6
		if b == nil {
			t.Fatalf("%s: reply is not IPv6", name)
		}
		if !a.SrcIP.Equal(b.DstIP) || !a.DstIP.Equal(b.SrcIP) {
			t.Errorf("%s: IPv6 %v > %v, request %v > %v", name, b.SrcIP, b.DstIP, a.SrcIP, a.DstIP)
		}
		if b.HopLimit != 64 {
			t.Errorf("%s: hop limit %d", name, b.HopLimit)
		}
		if int(b.Length) != ulen || b.NextHeader != layers.IPProtocolUDP || b.TrafficClass != a.TrafficClass || b.FlowLabel != a.FlowLabel {
			t.Errorf("%s: IPv6 header %+v, want length %d", name, b, ulen)
		}
	}
	a, b := rq.udp, rp.udp
	if b.SrcPort != a.DstPort || b.DstPort != a.SrcPort {
		t.Errorf("%s: UDP ports %d > %d, request %d > %d", name, b.SrcPort, b.DstPort, a.SrcPort, a.DstPort)
	}
	if int(b.Length) != ulen {
		t.Errorf("%s: UDP length %d, want %d", name, b.Length, ulen)
	}
	seg := append(append([]byte(nil), b.Contents...), b.Payload...)
	seg[6], seg[7] = 0, 0
	want := ^fold(csum(seg, pseudoSum(rp, len(seg))))
	if want == 0 {
		want = 0xffff
	}
	if b.Checksum != want {
		t.Errorf("%s: UDP checksum %#04x, want %#04x", name, b.Checksum, want)
	}
	if !bytes.Equal(b.Payload, payload) {
		t.Errorf("%s: UDP payload\n %x\nwant\n %x", name, b.Payload, payload)
	}
	if len(out) != l2+l3+ulen {
		t.Errorf("%s: reply frame of %d bytes, want %d (no padding)", name, len(out), l2+l3+ulen)
	}
}

// value returns n bytes of test data.
func value(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7) + seed
	}
	return b
}

func pingReq(seq uint32, data []byte) []byte {
	b := make([]byte, rebound.HeaderLen+len(data))
	if _, err := rebound.EncodePing(b, seq, data); err != nil {
		panic(err)
	}
	return b
}

func getReq(seq uint32, key string, pad int) []byte {
	b := make([]byte, rebound.HeaderLen+1+len(key)+pad)
	n, err := rebound.EncodeGet(b, seq, []byte(key), pad)
	if err != nil {
		panic(err)
	}
	return b[:n]
}

// padFor is the GET padding that lets a reply of vlen bytes of value
// through the amplification bound.
func padFor(key string, vlen int) int {
	need := (rebound.HeaderLen + vlen + ansAmp - 1) / ansAmp
	return max(0, need-rebound.HeaderLen-1-len(key))
}

// reboundReply is a Rebound reply payload as userspace writes it.
func reboundReply(op rebound.Op, seq uint32, data []byte) []byte {
	b := make([]byte, rebound.HeaderLen, rebound.HeaderLen+len(data))
	rebound.PutHeader(b, rebound.Header{Op: op, Flags: rebound.FlagResponse, Seq: seq, Len: uint16(len(data))})
	return append(b, data...)
}

// mcReply is a memcached get reply datagram as userspace writes it.
func mcReply(id uint16, key string, flags uint32, data []byte) []byte {
	b := memcache.AppendUDPHeader(nil, memcache.UDPHeader{RequestID: id, Total: 1})
	b = memcache.AppendValue(b, []byte(key), flags, data, 0, false)
	return append(b, memcache.ReplyEnd...)
}

// checkReboundPayload decodes a Rebound reply independently of the
// expected bytes.
func checkReboundPayload(t *testing.T, name string, out []byte, op rebound.Op, seq uint32, data []byte) {
	t.Helper()
	f, r := codec.ParseFrame(out)
	if r != codec.ReasonNone {
		t.Fatalf("%s: reply does not parse: %v", name, r)
	}
	m, err := rebound.DecodeReply(f.UDPPayload(out))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if m.Op != op || m.Flags != rebound.FlagResponse || m.Seq != seq || m.Status != rebound.StatusOK || !bytes.Equal(m.Payload, data) {
		t.Errorf("%s: reply %+v payload %x, want op %v seq %d data %x", name, m.Header, m.Payload, op, seq, data)
	}
}

func checkMemcachePayload(t *testing.T, name string, out []byte, id uint16, key string, flags uint32, data []byte) {
	t.Helper()
	f, r := codec.ParseFrame(out)
	if r != codec.ReasonNone {
		t.Fatalf("%s: reply does not parse: %v", name, r)
	}
	p := f.UDPPayload(out)
	h, ok := memcache.ParseUDPHeader(p)
	if !ok || h != (memcache.UDPHeader{RequestID: id, Seq: 0, Total: 1, Reserved: 0}) {
		t.Errorf("%s: frame header %+v", name, h)
	}
	if want := fmt.Sprintf("VALUE %s %d %d\r\n%s\r\nEND\r\n", key, flags, len(data), data); string(p[8:]) != want {
		t.Errorf("%s: reply %q, want %q", name, p[8:], want)
	}
}

func TestAnswerHits(t *testing.T) {
	p, items := loadAnswers(t, 100)
	sizes := []int{0, 1, 5, 100, 1024}
	long := strings.Repeat("L", bpf.AnswerKeyMax)
	for i, n := range sizes {
		put(items, fmt.Sprintf("k%d", n), value(n, byte(i)), 0, uint64(i+1))
		put(items, fmt.Sprintf("m%d", n), value(n, byte(i+50)), 0xdeadbeef, uint64(i+100))
	}
	put(items, long, []byte("long key"), 7, 1000)
	for _, s := range shapes {
		// PING: the request with the RESPONSE flag, whatever it carries.
		for _, data := range [][]byte{nil, []byte("abcd"), value(1000, 3)} {
			name := fmt.Sprintf("%s ping %d bytes", s.name, len(data))
			req := frame(t, s.pk, 7000, pingReq(0x01020304, data))
			out := hit(t, p, name, req, bpf.AnswerPing, reboundReply(rebound.OpPing, 0x01020304, data))
			checkReboundPayload(t, name, out, rebound.OpPing, 0x01020304, data)
		}
		// GET: header and value.
		for i, n := range sizes {
			key := fmt.Sprintf("k%d", n)
			name := fmt.Sprintf("%s get %d bytes", s.name, n)
			req := frame(t, s.pk, 7000, getReq(0xA0B0C0D0, key, padFor(key, n)))
			v := value(n, byte(i))
			out := hit(t, p, name, req, bpf.AnswerGet, reboundReply(rebound.OpGet, 0xA0B0C0D0, v))
			checkReboundPayload(t, name, out, rebound.OpGet, 0xA0B0C0D0, v)
		}
		req := frame(t, s.pk, 7000, getReq(9, long, 0))
		hit(t, p, s.name+" get 250-byte key", req, bpf.AnswerGet, reboundReply(rebound.OpGet, 9, []byte("long key")))

		// memcached get: small values within the amplification bound.
		for i, n := range sizes[:3] {
			key := fmt.Sprintf("m%d", n)
			name := fmt.Sprintf("%s memcached get %d bytes", s.name, n)
			req := frame(t, s.pk, mcPort, mcDatagram(0xBEEF, 3, 1, 0x100, "get "+key+"\r\n"))
			v := value(n, byte(i+50))
			out := hit(t, p, name, req, bpf.AnswerMemcacheGet, mcReply(0xBEEF, key, 0xdeadbeef, v))
			checkMemcachePayload(t, name, out, 0xBEEF, key, 0xdeadbeef, v)
		}
		req = frame(t, s.pk, mcPort, mcDatagram(1, 0, 1, 0, "get "+long+"\r\n"))
		hit(t, p, s.name+" memcached get 250-byte key", req, bpf.AnswerMemcacheGet, mcReply(1, long, 7, []byte("long key")))
	}
	// Without an amplification bound, the large memcached values too.
	configure(t, items, true, 0, ansMTU)
	for _, s := range shapes {
		for i, n := range sizes {
			key := fmt.Sprintf("m%d", n)
			name := fmt.Sprintf("%s memcached get %d bytes, no bound", s.name, n)
			req := frame(t, s.pk, mcPort, mcDatagram(0x0102, 0, 1, 0, "get "+key+"\r\n"))
			hit(t, p, name, req, bpf.AnswerMemcacheGet, mcReply(0x0102, key, 0xdeadbeef, value(n, byte(i+50))))
		}
	}
	if err := items.Err(); err != nil {
		t.Error(err)
	}
}

// TestAnswerBounds checks the path MTU and amplification bounds at their
// edges, in every shape (IPv4 options and a VLAN tag count).
func TestAnswerBounds(t *testing.T) {
	p, items := loadAnswers(t, 100)
	put(items, "k", value(200, 1), 0, 1)
	put(items, "x", value(44, 2), 0, 2)
	put(items, "y", value(45, 3), 0, 3)
	for _, s := range shapes {
		req := frame(t, s.pk, 7000, getReq(1, "k", 100))
		f, _ := codec.ParseFrame(req)
		rlen := rebound.HeaderLen + 200
		// The MTU that makes the reply exactly the largest payload.
		mtu := rlen + (f.L4 - f.L3) + 8
		if f.VLAN {
			mtu += 4
		}
		configure(t, items, true, ansAmp, mtu)
		hit(t, p, s.name+" reply at the path max", req, bpf.AnswerGet, reboundReply(rebound.OpGet, 1, value(200, 1)))
		configure(t, items, true, ansAmp, mtu-1)
		runAnswer(t, p, s.name+" reply over the path max", req, xdpPass, bpf.PassNoSocket, bpf.AnswerGet, bpf.AnswerTooLarge)
		ping := frame(t, s.pk, 7000, pingReq(1, value(100, 0)))
		configure(t, items, true, ansAmp, 100)
		runAnswer(t, p, s.name+" ping over the path max", ping, xdpPass, bpf.PassNoSocket, bpf.AnswerPing, bpf.AnswerTooLarge)
		mc := frame(t, s.pk, mcPort, mcDatagram(1, 0, 1, 0, "get k\r\n"))
		configure(t, items, true, 0, 100)
		runAnswer(t, p, s.name+" memcached over the path max", mc, xdpPass, bpf.PassNoSocket, bpf.AnswerMemcacheGet, bpf.AnswerTooLarge)

		// Amplification: a 14-byte GET may get 56 bytes back (4x).
		configure(t, items, true, ansAmp, ansMTU)
		hit(t, p, s.name+" reply at the amplification bound", frame(t, s.pk, 7000, getReq(2, "x", 0)), bpf.AnswerGet,
			reboundReply(rebound.OpGet, 2, value(44, 2)))
		runAnswer(t, p, s.name+" reply over the amplification bound", frame(t, s.pk, 7000, getReq(2, "y", 0)),
			xdpPass, bpf.PassNoSocket, bpf.AnswerGet, bpf.AnswerAmplification)
		runAnswer(t, p, s.name+" memcached over the amplification bound", mc,
			xdpPass, bpf.PassNoSocket, bpf.AnswerMemcacheGet, bpf.AnswerAmplification)
		// A factor that overflows 32 bits times the request is no bound.
		configure(t, items, true, 1<<31, ansMTU)
		hit(t, p, s.name+" huge factor", frame(t, s.pk, 7000, getReq(2, "y", 0)), bpf.AnswerGet,
			reboundReply(rebound.OpGet, 2, value(45, 3)))
		// A factor of 1 still lets a PING through: its reply is its size.
		configure(t, items, true, 1, ansMTU)
		hit(t, p, s.name+" ping with factor 1", ping, bpf.AnswerPing, reboundReply(rebound.OpPing, 1, value(100, 0)))
	}
	// The largest memcached reply answered here: a 250-byte key, the
	// longest flags and a 1024-byte value, within one datagram.
	configure(t, items, true, 0, 9000)
	key := strings.Repeat("x", bpf.AnswerKeyMax)
	put(items, key, value(bpf.AnswerValueMax, 5), math.MaxUint32, 7)
	for _, s := range shapes {
		req := frame(t, s.pk, mcPort, mcDatagram(1, 0, 1, 0, "get "+key+"\r\n"))
		hit(t, p, s.name+" largest memcached reply", req, bpf.AnswerMemcacheGet, mcReply(1, key, math.MaxUint32, value(bpf.AnswerValueMax, 5)))
	}
}

func TestAnswerRefusals(t *testing.T) {
	p, items := loadAnswers(t, 100)
	put(items, "k", []byte("value"), 0, 1)
	pass := func(name string, req []byte, op bpf.AnswerOp, outcome bpf.AnswerOutcome) {
		t.Helper()
		runAnswer(t, p, name, req, xdpPass, bpf.PassNoSocket, op, outcome)
	}
	for _, s := range shapes {
		get := func(key string) []byte { return frame(t, s.pk, 7000, getReq(1, key, 0)) }
		mc := func(cmd string) []byte { return frame(t, s.pk, mcPort, mcDatagram(1, 0, 1, 0, cmd)) }
		n := s.name

		pass(n+" get miss", get("nope"), bpf.AnswerGet, bpf.AnswerMiss)
		pass(n+" memcached miss", mc("get nope\r\n"), bpf.AnswerMemcacheGet, bpf.AnswerMiss)
		put(items, "gone", []byte("x"), 0, 2)
		items.Delete("gone")
		pass(n+" get deleted", get("gone"), bpf.AnswerGet, bpf.AnswerMiss)
		pass(n+" memcached deleted", mc("get gone\r\n"), bpf.AnswerMemcacheGet, bpf.AnswerMiss)
		// A key that is a prefix or an extension of a held one.
		pass(n+" get prefix", get("kk"), bpf.AnswerGet, bpf.AnswerMiss)

		// Bad checksums: a payload byte flipped after the UDP checksum
		// was computed; the IPv4 header checksum broken.
		flip := func(b []byte, off int) []byte {
			b = append([]byte(nil), b...)
			b[off] ^= 0x40
			return b
		}
		g := frame(t, s.pk, 7000, getReq(1, "k", 4))
		f, _ := codec.ParseFrame(g)
		pass(n+" get bad udp checksum", flip(g, f.Payload+f.PayloadLen-1), bpf.AnswerGet, bpf.AnswerBadChecksum)
		pg := frame(t, s.pk, 7000, pingReq(1, []byte("abcd")))
		pass(n+" ping bad udp checksum", flip(pg, f.Payload+rebound.HeaderLen), bpf.AnswerPing, bpf.AnswerBadChecksum)
		pass(n+" memcached bad udp checksum", flip(mc("get k\r\n"), f.Payload), bpf.AnswerMemcacheGet, bpf.AnswerBadChecksum)
		if !s.pk.IPv6 {
			pass(n+" get bad ip checksum", flip(g, f.L3+10), bpf.AnswerGet, bpf.AnswerBadChecksum)
			pass(n+" ping bad ip checksum", flip(pg, f.L3+4), bpf.AnswerPing, bpf.AnswerBadChecksum)
			pass(n+" memcached bad ip checksum", flip(mc("get k\r\n"), f.L3+11), bpf.AnswerMemcacheGet, bpf.AnswerBadChecksum)
		}

		// Rebound requests that are not valid requests: userspace answers
		// them (with an error) or drops them.
		raw := func(name string, b []byte) {
			t.Helper()
			pass(n+" "+name, frame(t, s.pk, 7000, b), noAnswer, 0)
		}
		mod := func(b []byte, f func([]byte)) []byte {
			b = append([]byte(nil), b...)
			f(b)
			return b
		}
		for _, flags := range []byte{rebound.FlagResponse, rebound.FlagTruncated, 0x80} {
			raw(fmt.Sprintf("ping flags %#x", flags), mod(pingReq(1, []byte("ab")), func(b []byte) { b[3] = flags }))
			raw(fmt.Sprintf("get flags %#x", flags), mod(getReq(1, "k", 0), func(b []byte) { b[3] = flags }))
		}
		raw("ping status 1", mod(pingReq(1, nil), func(b []byte) { b[11] = 1 }))
		raw("get status 256", mod(getReq(1, "k", 0), func(b []byte) { b[10] = 1 }))
		raw("ping len +1", mod(pingReq(1, []byte("ab")), func(b []byte) { b[9]++ }))
		raw("ping len -1", mod(pingReq(1, []byte("ab")), func(b []byte) { b[9]-- }))
		raw("get len +1", mod(getReq(1, "k", 0), func(b []byte) { b[9]++ }))
		raw("get len +256", mod(getReq(1, "k", 0), func(b []byte) { b[8]++ }))
		raw("get trailing byte", append(getReq(1, "k", 0), 0))
		raw("get key length 0", mod(getReq(1, "k", 0), func(b []byte) { b[12] = 0 }))
		raw("get key length past the end", mod(getReq(1, "k", 0), func(b []byte) { b[12] = 2 }))
		raw("get key length 251", func() []byte {
			b := getReq(1, strings.Repeat("k", 250), 1)
			b[12] = 251
			return b
		}())
		raw("get without a key", func() []byte {
			b := getReq(1, "k", 0)[:rebound.HeaderLen]
			b[9] = 0
			return b
		}())
		raw("unknown op", mod(getReq(1, "k", 0), func(b []byte) { b[2] = 9 }))
		raw("set", func() []byte {
			b := make([]byte, 64)
			m, _ := rebound.EncodeSet(b, 1, []byte("k"), 0, []byte("v"))
			return b[:m]
		}())
		raw("del", func() []byte {
			b := make([]byte, 64)
			m, _ := rebound.EncodeDel(b, 1, []byte("k"))
			return b[:m]
		}())

		// memcached forms left to userspace, even when the literal key
		// bytes are held.
		for _, k := range []string{"a b", "k\r\nget k", "k\rx", "k\nx"} {
			put(items, k, []byte("x"), 0, 3)
		}
		for _, cmd := range []string{"gets k\r\n", "get a b\r\n", "get k", "get k\n", "get k\r", "get k\r\nget k\r\n",
			"GET k\r\n", "get  k\r\n", "get k \r\n", " get k\r\n", "get\tk\r\n", "gat 0 k\r\n", "get k\rx\r\n",
			"get k\nx\r\n", "get \r\n", "get " + strings.Repeat("k", 251) + "\r\n"} {
			pass(fmt.Sprintf("%s memcached %q", n, cmd), mc(cmd), noAnswer, 0)
		}
	}
	if t.Failed() {
		return
	}
	// Answering off: nothing is tried.
	configure(t, items, false, ansAmp, ansMTU)
	for _, s := range shapes {
		runAnswer(t, p, s.name+" off: get", frame(t, s.pk, 7000, getReq(1, "k", 0)), xdpPass, bpf.PassNoSocket, noAnswer, 0)
		runAnswer(t, p, s.name+" off: ping", frame(t, s.pk, 7000, pingReq(1, nil)), xdpPass, bpf.PassNoSocket, noAnswer, 0)
		runAnswer(t, p, s.name+" off: memcached", frame(t, s.pk, mcPort, mcDatagram(1, 0, 1, 0, "get k\r\n")), xdpPass, bpf.PassNoSocket, noAnswer, 0)
	}
	configure(t, items, true, ansAmp, ansMTU)
	hit(t, p, "on again", frame(t, testutil.Packet{}, 7000, getReq(1, "k", 0)), bpf.AnswerGet, reboundReply(rebound.OpGet, 1, []byte("value")))
}

// TestAnswerNotTried: requests the program does not answer for reasons
// before answering (not ours, not local, short UDP length) are not tried.
func TestAnswerNotTried(t *testing.T) {
	p, items := loadAnswers(t, 100)
	put(items, "k", []byte("value"), 0, 1)
	req := frame(t, testutil.Packet{}, mcPort, mcDatagram(1, 0, 2, 0, "get k\r\n"))
	runAnswer(t, p, "memcached total 2", req, xdpPass, bpf.PassNotOurs, noAnswer, 0)
	// A UDP length shorter than the IP payload: the datagram ends early,
	// which the program leaves to the stack's rules.
	g := frame(t, testutil.Packet{}, 7000, append(getReq(1, "k", 0), 0, 0))
	f, _ := codec.ParseFrame(g)
	binary.BigEndian.PutUint16(g[f.L4+4:], uint16(8+f.PayloadLen-2))
	runAnswer(t, p, "udp length short of the ip payload", g, xdpPass, bpf.PassNoSocket, noAnswer, 0)
	bcast := frame(t, testutil.Packet{Src: net.IPv4(224, 0, 0, 1)}, 7000, getReq(1, "k", 0))
	runAnswer(t, p, "multicast source", bcast, xdpPass, bpf.PassNotLocal, noAnswer, 0)
}

func TestAnswerExpiry(t *testing.T) {
	t.Parallel()
	p, items := loadAnswers(t, 100)
	now := time.Now()
	for _, c := range []struct {
		name    string
		exptime int64
	}{{"ten seconds ago", now.Unix() - 10}, {"now", now.Unix()}, {"1970", 1}, {"negative", -1}} {
		items.Put("k", []byte("v"), 0, 1, c.exptime, now.UnixNano())
		for _, s := range shapes {
			runAnswer(t, p, s.name+" get expired "+c.name, frame(t, s.pk, 7000, getReq(1, "k", 0)),
				xdpPass, bpf.PassNoSocket, bpf.AnswerGet, bpf.AnswerExpired)
			runAnswer(t, p, s.name+" memcached expired "+c.name, frame(t, s.pk, mcPort, mcDatagram(1, 0, 1, 0, "get k\r\n")),
				xdpPass, bpf.PassNoSocket, bpf.AnswerMemcacheGet, bpf.AnswerExpired)
		}
	}
	// Far in the future, and one that expires in a second or two.
	items.Put("far", []byte("v"), 0, 2, now.Unix()+1e9, now.UnixNano())
	soon := time.Now().Unix() + 2
	items.Put("soon", []byte("v"), 0, 3, soon, now.UnixNano())
	get := func(key string) []byte { return frame(t, testutil.Packet{}, 7000, getReq(1, key, 0)) }
	hit(t, p, "far future", get("far"), bpf.AnswerGet, reboundReply(rebound.OpGet, 1, []byte("v")))
	hit(t, p, "expires soon", get("soon"), bpf.AnswerGet, reboundReply(rebound.OpGet, 1, []byte("v")))
	time.Sleep(time.Until(time.Unix(soon, 0)) + 20*time.Millisecond)
	runAnswer(t, p, "expired since", get("soon"), xdpPass, bpf.PassNoSocket, bpf.AnswerGet, bpf.AnswerExpired)
	hit(t, p, "far future later", get("far"), bpf.AnswerGet, reboundReply(rebound.OpGet, 1, []byte("v")))
}

func TestAnswerFlush(t *testing.T) {
	t.Parallel()
	p, items := loadAnswers(t, 100)
	get := frame(t, testutil.Packet{}, 7000, getReq(1, "k", 0))
	mc := frame(t, testutil.Packet{}, mcPort, mcDatagram(1, 0, 1, 0, "get k\r\n"))
	stored := time.Now().UnixNano()
	items.Put("k", []byte("v"), 0, 10, 0, stored)
	answered := func(name string) {
		t.Helper()
		hit(t, p, name, get, bpf.AnswerGet, reboundReply(rebound.OpGet, 1, []byte("v")))
		hit(t, p, name+" memcached", mc, bpf.AnswerMemcacheGet, mcReply(1, "k", 0, []byte("v")))
	}
	flushed := func(name string) {
		t.Helper()
		runAnswer(t, p, name, get, xdpPass, bpf.PassNoSocket, bpf.AnswerGet, bpf.AnswerMiss)
		runAnswer(t, p, name+" memcached", mc, xdpPass, bpf.PassNoSocket, bpf.AnswerMemcacheGet, bpf.AnswerMiss)
	}
	flush := func(cas uint64, past, at int64) {
		t.Helper()
		if err := items.Flush(cas, past, at); err != nil {
			t.Fatal(err)
		}
	}
	answered("before any flush")
	// The store's "no flush" state: past math.MinInt64, at math.MaxInt64.
	flush(0, math.MinInt64, math.MaxInt64)
	answered("store's empty flush state")
	flush(9, math.MinInt64, -1)
	answered("flush of older cas")
	flush(10, math.MinInt64, -1)
	flushed("flush of its cas")
	flush(11, math.MinInt64, -1)
	flushed("flush of a later cas")
	flush(0, 0, -1)
	answered("flush undone")
	flush(0, stored-1, -1)
	answered("flushed before it was stored")
	flush(0, stored, -1)
	flushed("flushed when it was stored")
	flush(0, math.MinInt64, -1)

	// A delayed flush: answered until it takes effect.
	at := time.Now().Add(time.Second)
	flush(0, math.MinInt64, at.UnixNano())
	answered("pending flush")
	time.Sleep(time.Until(at) + 20*time.Millisecond)
	flushed("after the pending flush")
	// Stored after it: answered.
	items.Put("k", []byte("v"), 0, 12, 0, time.Now().UnixNano())
	answered("stored after the flush")
}

// answerCase is a request answered in XDP: its payload, port, answer op
// and the reply payload it must get.
type answerCase struct {
	name    string
	payload []byte
	port    uint16
	op      bpf.AnswerOp
	reply   []byte
}

// TestAnswerChecksumForms: no checksum (IPv4 only) and partial checksums
// are accepted, and the reply always has a full one.
func TestAnswerChecksumForms(t *testing.T) {
	p, items := loadAnswers(t, 100)
	put(items, "k", []byte("value"), 0, 1)
	for _, s := range shapes {
		for _, c := range []answerCase{
			{"ping", pingReq(5, []byte("abc")), 7000, bpf.AnswerPing, reboundReply(rebound.OpPing, 5, []byte("abc"))},
			{"get", getReq(5, "k", 3), 7000, bpf.AnswerGet, reboundReply(rebound.OpGet, 5, []byte("value"))},
			{"memcached", mcDatagram(5, 0, 1, 0, "get k\r\n"), mcPort, bpf.AnswerMemcacheGet, mcReply(5, "k", 0, []byte("value"))},
		} {
			req := frame(t, s.pk, c.port, c.payload)
			f, _ := codec.ParseFrame(req)
			v := decode(t, s.name, req)
			name := s.name + " " + c.name

			zero := append([]byte(nil), req...)
			zero[f.L4+6], zero[f.L4+7] = 0, 0
			if s.pk.IPv6 {
				runAnswer(t, p, name+" zero udp checksum", zero, xdpPass, bpf.PassNoSocket, c.op, bpf.AnswerBadChecksum)
			} else {
				hit(t, p, name+" zero udp checksum", zero, c.op, c.reply)
			}

			partial := append([]byte(nil), req...)
			binary.BigEndian.PutUint16(partial[f.L4+6:], fold(pseudoSum(v, 8+f.PayloadLen)))
			hit(t, p, name+" partial udp checksum", partial, c.op, c.reply)

			// The complement of the partial sum is not a partial sum.
			bad := append([]byte(nil), req...)
			binary.BigEndian.PutUint16(bad[f.L4+6:], ^fold(pseudoSum(v, 8+f.PayloadLen)))
			runAnswer(t, p, name+" complemented pseudo sum", bad, xdpPass, bpf.PassNoSocket, c.op, bpf.AnswerBadChecksum)
		}
	}
}

// TestAnswerPadding: Ethernet padding after the IP datagram is not part of
// the reply, as with codec's Reply.
func TestAnswerPadding(t *testing.T) {
	p, items := loadAnswers(t, 100)
	put(items, "k", []byte("v"), 0, 1)
	put(items, "big", value(40, 1), 0, 2)
	for _, s := range shapes {
		for _, c := range []answerCase{
			{"ping", pingReq(5, nil), 7000, bpf.AnswerPing, reboundReply(rebound.OpPing, 5, nil)},
			{"get", getReq(5, "k", 0), 7000, bpf.AnswerGet, reboundReply(rebound.OpGet, 5, []byte("v"))},
			{"get growing", getReq(5, "big", 0), 7000, bpf.AnswerGet, reboundReply(rebound.OpGet, 5, value(40, 1))},
			{"memcached", mcDatagram(5, 0, 1, 0, "get k\r\n"), mcPort, bpf.AnswerMemcacheGet, mcReply(5, "k", 0, []byte("v"))},
		} {
			req := frame(t, s.pk, c.port, c.payload)
			f, _ := codec.ParseFrame(req)
			end := f.Payload + f.PayloadLen
			req = req[:end:end]
			for _, pad := range []int{0, max(60-end, 1), 4, 100} {
				padded := append(append([]byte(nil), req...), make([]byte, pad)...)
				hit(t, p, fmt.Sprintf("%s %s padded by %d", s.name, c.name, pad), padded, c.op, c.reply)
			}
		}
	}
}

func TestAnswerItems(t *testing.T) {
	p, items := loadAnswers(t, 100)
	get := func(key string) []byte { return frame(t, testutil.Packet{}, 7000, getReq(1, key, 0)) }
	mc := func(key string) []byte {
		return frame(t, testutil.Packet{}, mcPort, mcDatagram(1, 0, 1, 0, "get "+key+"\r\n"))
	}

	put(items, "k", []byte("old"), 1, 1)
	hit(t, p, "first value", get("k"), bpf.AnswerGet, reboundReply(rebound.OpGet, 1, []byte("old")))
	put(items, "k", []byte("a new value"), 2, 2)
	hit(t, p, "replaced value", get("k"), bpf.AnswerGet, reboundReply(rebound.OpGet, 1, []byte("a new value")))
	hit(t, p, "replaced value memcached", mc("k"), bpf.AnswerMemcacheGet, mcReply(1, "k", 2, []byte("a new value")))
	put(items, "k", nil, 0, 3)
	hit(t, p, "replaced by an empty value", get("k"), bpf.AnswerGet, reboundReply(rebound.OpGet, 1, nil))
	hit(t, p, "replaced by an empty value memcached", mc("k"), bpf.AnswerMemcacheGet, mcReply(1, "k", 0, nil))
	if st := items.Stats(); st != (bpf.ItemStats{Items: 1, Puts: 3}) {
		t.Errorf("stats after three puts: %+v", st)
	}

	// A value over the limit is not held, and removes the key.
	put(items, "k", value(bpf.AnswerValueMax+1, 0), 0, 4)
	runAnswer(t, p, "value over the limit", get("k"), xdpPass, bpf.PassNoSocket, bpf.AnswerGet, bpf.AnswerMiss)
	put(items, "v", value(bpf.AnswerValueMax+1, 0), 0, 5)
	runAnswer(t, p, "new value over the limit", get("v"), xdpPass, bpf.PassNoSocket, bpf.AnswerGet, bpf.AnswerMiss)
	// A key over the limit is not held.
	long := strings.Repeat("k", bpf.AnswerKeyMax+1)
	put(items, long, []byte("v"), 0, 6)
	runAnswer(t, p, "memcached key over the limit", mc(long), xdpPass, bpf.PassNoSocket, noAnswer, 0)
	put(items, "", []byte("v"), 0, 7)
	if st := items.Stats(); st != (bpf.ItemStats{Items: 0, Puts: 3, Deletes: 1}) {
		t.Errorf("stats after refused puts: %+v", st)
	}
	put(items, "a", []byte("1"), 0, 8)
	put(items, "b", []byte("2"), 0, 9)
	items.Delete("a")
	items.Delete("a")
	items.Delete("never")
	runAnswer(t, p, "deleted", get("a"), xdpPass, bpf.PassNoSocket, bpf.AnswerGet, bpf.AnswerMiss)
	hit(t, p, "other key kept", get("b"), bpf.AnswerGet, reboundReply(rebound.OpGet, 1, []byte("2")))
	if st := items.Stats(); st != (bpf.ItemStats{Items: 1, Puts: 5, Deletes: 2}) {
		t.Errorf("stats after deletes: %+v", st)
	}
	if err := items.Err(); err != nil {
		t.Error(err)
	}

	// A full map: keys past its size are not held (counted as NoRoom);
	// replacing a held key still works.
	p2, small := loadAnswers(t, 2)
	put(small, "a", []byte("1"), 0, 1)
	put(small, "b", []byte("2"), 0, 2)
	put(small, "c", []byte("3"), 0, 3)
	put(small, "a", []byte("4"), 0, 4)
	runAnswer(t, p2, "no room", get("c"), xdpPass, bpf.PassNoSocket, bpf.AnswerGet, bpf.AnswerMiss)
	hit(t, p2, "replaced in a full map", get("a"), bpf.AnswerGet, reboundReply(rebound.OpGet, 1, []byte("4")))
	if st := small.Stats(); st != (bpf.ItemStats{Items: 2, Puts: 3, NoRoom: 1}) {
		t.Errorf("stats of the full map: %+v", st)
	}
}

// TestAnswerOverVeth runs the answers on a real interface: requests sent
// by a socket across a veth pair (whose UDP checksums the sending stack
// leaves partial, as veth offloads them) are answered with XDP_TX, and the
// replies pass the client's stack (IP and UDP checksums verified by the
// kernel) to the socket.
func TestAnswerOverVeth(t *testing.T) {
	l := testutil.NewLab(t, 1)
	var p *bpf.Program
	var err error
	l.Srv.Do(t, func() {
		p, err = bpf.Load(bpf.Options{Ports: []uint16{7000}, MemcachePorts: []uint16{mcPort}, AnswerItems: 10,
			LocalMAC: testutil.ServerMAC, LocalAddrs: serverAddrs()})
		if err == nil {
			err = p.Attach(l.SrvIf.Name, bpf.ModeNative, false)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	// No amplification bound: replies that grow the frame by up to the
	// XDP headroom (veth gives skbs little tailroom; the program then
	// grows the frame at its head).
	configure(t, p.Items(), true, 0, ansMTU)
	put(p.Items(), "k", []byte("over veth"), 42, 1)
	put(p.Items(), "m", value(180, 9), 43, 2)
	for _, c := range []struct {
		net  string
		addr net.IP
	}{{"udp4", l.SrvIP4}, {"udp6", l.SrvIP6}} {
		var conn net.PacketConn
		l.Cli.Do(t, func() { conn, err = net.ListenPacket(c.net, ":0") })
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		for _, r := range []struct {
			name      string
			port      int
			req, want []byte
			op        bpf.AnswerOp
		}{
			{"ping", 7000, pingReq(7, []byte("hello")), reboundReply(rebound.OpPing, 7, []byte("hello")), bpf.AnswerPing},
			{"get", 7000, getReq(8, "k", 0), reboundReply(rebound.OpGet, 8, []byte("over veth")), bpf.AnswerGet},
			{"memcached get", mcPort, mcDatagram(9, 0, 1, 0, "get k\r\n"), mcReply(9, "k", 42, []byte("over veth")), bpf.AnswerMemcacheGet},
			{"ping 1000 bytes", 7000, pingReq(10, value(1000, 1)), reboundReply(rebound.OpPing, 10, value(1000, 1)), bpf.AnswerPing},
			{"get 180 bytes", 7000, getReq(11, "m", 0), reboundReply(rebound.OpGet, 11, value(180, 9)), bpf.AnswerGet},
			{"memcached get 180 bytes", mcPort, mcDatagram(12, 0, 1, 0, "get m\r\n"), mcReply(12, "m", 43, value(180, 9)), bpf.AnswerMemcacheGet},
		} {
			name := c.net + " " + r.name
			before, _ := p.AnswerCounters()
			if _, err := conn.WriteTo(r.req, &net.UDPAddr{IP: c.addr, Port: r.port}); err != nil {
				t.Fatalf("%s: send: %v", name, err)
			}
			buf := make([]byte, 2048)
			_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
			n, from, err := conn.ReadFrom(buf)
			if err != nil {
				after, _ := p.AnswerCounters()
				t.Fatalf("%s: no reply: %v (answer counters %v -> %v)", name, err, before, after)
			}
			if ua := from.(*net.UDPAddr); !ua.IP.Equal(c.addr) || ua.Port != r.port {
				t.Errorf("%s: reply from %v", name, from)
			}
			if !bytes.Equal(buf[:n], r.want) {
				t.Errorf("%s: reply %q, want %q", name, buf[:n], r.want)
			}
			after, _ := p.AnswerCounters()
			if d := after[r.op][bpf.AnswerHit] - before[r.op][bpf.AnswerHit]; d != 1 {
				t.Errorf("%s: %v hits moved by %d, want 1 (counters %v -> %v)", name, r.op, d, before, after)
			}
		}
	}
}

// A trusted source (SetTrust, serve's --trust-src) gets memcached replies
// over the amplification bound answered here, as userspace answers them;
// the Rebound protocol's bound has no exceptions, trusted or not. The
// list is swapped whole, and emptied.
func TestAnswerTrusted(t *testing.T) {
	p, items := loadAnswers(t, 100)
	configure(t, items, true, ansAmp, ansMTU)
	put(items, "k", value(200, 1), 3, 1)
	for _, s := range shapes {
		mc := frame(t, s.pk, mcPort, mcDatagram(7, 0, 1, 0, "get k\r\n"))
		rb := frame(t, s.pk, 7000, getReq(2, "k", 0))
		f, _ := codec.ParseFrame(mc)
		src := f.SrcAddr(mc)
		other := netip.MustParsePrefix("203.0.113.0/24")
		if src.Is6() {
			other = netip.MustParsePrefix("2001:db8::/32")
		}
		for _, c := range []struct {
			name    string
			list    []netip.Prefix
			trusted bool
		}{
			{"no list", nil, false},
			{"another source", []netip.Prefix{other}, false},
			{"the source", []netip.Prefix{other, netip.PrefixFrom(src, src.BitLen())}, true},
			{"emptied", nil, false},
		} {
			if err := p.SetTrust(c.list); err != nil {
				t.Fatal(err)
			}
			name := s.name + " " + c.name
			if c.trusted {
				hit(t, p, name+" memcached", mc, bpf.AnswerMemcacheGet, mcReply(7, "k", 3, value(200, 1)))
			} else {
				runAnswer(t, p, name+" memcached", mc, xdpPass, bpf.PassNoSocket, bpf.AnswerMemcacheGet, bpf.AnswerAmplification)
			}
			runAnswer(t, p, name+" rebound", rb, xdpPass, bpf.PassNoSocket, bpf.AnswerGet, bpf.AnswerAmplification)
		}
	}
	if err := p.SetTrust([]netip.Prefix{{}}); err == nil {
		t.Fatal("SetTrust took an invalid prefix")
	}
}
