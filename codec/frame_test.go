package codec_test

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/rebound-net/rebound/codec"
	"github.com/rebound-net/rebound/codec/rebound"
	"github.com/rebound-net/rebound/internal/testutil"
)

func pingMsg(seq uint32, n int) []byte {
	p := make([]byte, rebound.HeaderLen+n)
	for i := range n {
		p[rebound.HeaderLen+i] = byte('a' + i%26)
	}
	rebound.EncodePing(p, seq, p[rebound.HeaderLen:])
	return p
}

func TestParseFrameKinds(t *testing.T) {
	ping := pingMsg(1, 10)
	cases := []struct {
		name string
		p    testutil.Packet
		want codec.Reason
	}{
		{"ipv4", testutil.Packet{Payload: ping}, codec.ReasonNone},
		{"ipv6", testutil.Packet{IPv6: true, Payload: ping}, codec.ReasonNone},
		{"vlan ipv4", testutil.Packet{VLAN: 42, Payload: ping}, codec.ReasonNone},
		{"vlan ipv6", testutil.Packet{VLAN: 42, IPv6: true, Payload: ping}, codec.ReasonNone},
		{"ipv4 options", testutil.Packet{IPOptions: true, Payload: ping}, codec.ReasonNone},
		{"tcp", testutil.Packet{Proto: layers.IPProtocolTCP, Payload: ping}, codec.ReasonNotUDP},
		{"tcp ipv6", testutil.Packet{IPv6: true, Proto: layers.IPProtocolTCP}, codec.ReasonNotUDP},
		{"first fragment", testutil.Packet{MoreFragments: true, Payload: ping}, codec.ReasonFragment},
		{"later fragment", testutil.Packet{FragOffset: 100, Payload: ping}, codec.ReasonFragment},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fr := testutil.Frame(t, c.p)
			f, why := codec.ParseFrame(fr)
			if why != c.want {
				t.Fatalf("reason %v, want %v", why, c.want)
			}
			if why == codec.ReasonNone {
				if !bytes.Equal(f.UDPPayload(fr), ping) || f.DstPort(fr) != 7000 || f.SrcPort(fr) != 40000 ||
					f.IPv6 != c.p.IPv6 || f.VLAN != (c.p.VLAN != 0) {
					t.Fatalf("frame %+v payload % x", f, f.UDPPayload(fr))
				}
			}
		})
	}
	if _, why := codec.ParseFrame(testutil.ARPFrame(t)); why != codec.ReasonNotIP {
		t.Fatalf("arp: %v", why)
	}
}

// Every truncation of a valid frame is 'not ours', never a panic, and never
// parsed as a shorter datagram.
func TestParseFrameTruncated(t *testing.T) {
	for _, p := range []testutil.Packet{
		{Payload: pingMsg(1, 5)}, {IPv6: true, Payload: pingMsg(1, 5)},
		{VLAN: 7, IPOptions: true, Payload: pingMsg(1, 5)},
	} {
		fr := testutil.Frame(t, p)
		f, _ := codec.ParseFrame(fr)
		end := f.Payload + f.PayloadLen // gopacket pads short frames to 60 bytes
		for i := 0; i < end; i++ {
			if f, why := codec.ParseFrame(fr[:i]); why == codec.ReasonNone {
				t.Fatalf("%d of %d bytes parsed as %+v", i, len(fr), f)
			}
		}
	}
}

// Short frames arrive padded to 60 bytes: the IP length decides.
func TestParseFramePadded(t *testing.T) {
	ping := pingMsg(3, 0)
	padded := testutil.Frame(t, testutil.Packet{Payload: ping}) // 54 bytes, padded by gopacket
	if len(padded) != 60 {
		t.Fatalf("frame is %d bytes, want the padded 60", len(padded))
	}
	f, why := codec.ParseFrame(padded)
	if why != codec.ReasonNone || !bytes.Equal(f.UDPPayload(padded), ping) {
		t.Fatalf("padded: %v % x", why, f.UDPPayload(padded))
	}
}

func TestParseFrameInconsistent(t *testing.T) {
	base := testutil.Frame(t, testutil.Packet{Payload: pingMsg(1, 4)})
	mut := func(f func(b []byte)) []byte { b := append([]byte(nil), base...); f(b); return b }
	cases := []struct {
		name string
		b    []byte
		want codec.Reason
	}{
		{"ip version 5", mut(func(b []byte) { b[14] = 0x55 }), codec.ReasonBadIP},
		{"ihl 4", mut(func(b []byte) { b[14] = 0x44 }), codec.ReasonBadIP},
		{"total length past frame", mut(func(b []byte) { binary.BigEndian.PutUint16(b[16:], 1000) }), codec.ReasonTruncated},
		{"total length below ihl", mut(func(b []byte) { binary.BigEndian.PutUint16(b[16:], 10) }), codec.ReasonBadIP},
		{"udp length above ip", mut(func(b []byte) { binary.BigEndian.PutUint16(b[38:], 200) }), codec.ReasonBadUDP},
		{"udp length 7", mut(func(b []byte) { binary.BigEndian.PutUint16(b[38:], 7) }), codec.ReasonBadUDP},
		{"ip payload below udp header", mut(func(b []byte) { binary.BigEndian.PutUint16(b[16:], 24) }), codec.ReasonTruncated},
		{"qinq", mut(func(b []byte) { b[12], b[13] = 0x88, 0xA8 }), codec.ReasonNotIP},
	}
	for _, c := range cases {
		if _, why := codec.ParseFrame(c.b); why != c.want {
			t.Errorf("%s: %v, want %v", c.name, why, c.want)
		}
	}
	// A UDP length shorter than the IP payload ends the datagram early, as
	// in the kernel.
	short := mut(func(b []byte) { binary.BigEndian.PutUint16(b[38:], 8+12) })
	if f, why := codec.ParseFrame(short); why != codec.ReasonNone || f.PayloadLen != 12 {
		t.Fatalf("short udp length: %v %+v", why, f)
	}
}

// verifyReply decodes a reply frame with gopacket and checks it against the
// request: addresses and ports swapped, lengths right, checksums valid as
// gopacket computes them.
func verifyReply(t *testing.T, req testutil.Packet, frame []byte, payload []byte) {
	t.Helper()
	pkt := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
	if el := pkt.ErrorLayer(); el != nil {
		t.Fatalf("gopacket: %v", el.Error())
	}
	eth := pkt.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	if !bytes.Equal(eth.SrcMAC, testutil.ServerMAC) || !bytes.Equal(eth.DstMAC, testutil.ClientMAC) {
		t.Fatalf("macs not swapped: %v -> %v", eth.SrcMAC, eth.DstMAC)
	}
	if req.VLAN != 0 {
		d := pkt.Layer(layers.LayerTypeDot1Q)
		if d == nil || d.(*layers.Dot1Q).VLANIdentifier != req.VLAN {
			t.Fatal("vlan tag lost")
		}
	}
	udp := pkt.Layer(layers.LayerTypeUDP).(*layers.UDP)
	var nl gopacket.NetworkLayer
	if req.IPv6 {
		ip := pkt.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
		if !ip.SrcIP.Equal(testutil.ServerIP6) || !ip.DstIP.Equal(testutil.ClientIP6) {
			t.Fatalf("ipv6 addresses %v -> %v", ip.SrcIP, ip.DstIP)
		}
		if int(ip.Length) != 8+len(payload) {
			t.Fatalf("ipv6 payload length %d", ip.Length)
		}
		nl = ip
	} else {
		ip := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		if !ip.SrcIP.Equal(testutil.ServerIP4) || !ip.DstIP.Equal(testutil.ClientIP4) {
			t.Fatalf("ipv4 addresses %v -> %v", ip.SrcIP, ip.DstIP)
		}
		if int(ip.Length) != int(ip.IHL)*4+8+len(payload) {
			t.Fatalf("ipv4 total length %d", ip.Length)
		}
		if req.IPOptions && ip.IHL != 7 {
			t.Fatalf("options lost: ihl %d", ip.IHL)
		}
		if _, res := ip.VerifyChecksum(); !res.Valid {
			t.Fatalf("ipv4 header checksum %#04x, correct %#04x", res.Actual, res.Correct)
		}
		nl = ip
	}
	if udp.SrcPort != 7000 || udp.DstPort != 40000 || int(udp.Length) != 8+len(payload) {
		t.Fatalf("udp %d -> %d len %d", udp.SrcPort, udp.DstPort, udp.Length)
	}
	if err := udp.SetNetworkLayerForChecksum(nl); err != nil {
		t.Fatal(err)
	}
	if _, res := udp.VerifyChecksum(); !res.Valid || udp.Checksum == 0 {
		t.Fatalf("udp checksum %#04x, correct %#04x", res.Actual, res.Correct)
	}
	if !bytes.Equal(udp.Payload, payload) {
		t.Fatalf("payload % x, want % x", udp.Payload, payload)
	}
}

func TestReplyVerifiedByGopacket(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	kinds := []testutil.Packet{
		{}, {IPv6: true}, {VLAN: 100}, {VLAN: 100, IPv6: true}, {IPOptions: true}, {IPOptions: true, VLAN: 5},
	}
	for _, k := range kinds {
		for _, reqLen := range []int{0, 1, 13, 51, 64} {
			for _, repLen := range []int{0, 1, 7, 12, 33, 64, 999, 1400} {
				p := k
				p.Payload = pingMsg(uint32(reqLen), reqLen)
				fr := testutil.Frame(t, p)
				// Corrupt the request's checksum fields: the reply must not
				// depend on them (offload leaves them partial).
				f, why := codec.ParseFrame(fr)
				if why != codec.ReasonNone {
					t.Fatal(why)
				}
				fr[f.L4+6], fr[f.L4+7] = 0x12, 0x34
				buf := make([]byte, 2048)
				copy(buf, fr)
				reply := make([]byte, repLen)
				for i := range reply {
					reply[i] = byte(rng.Uint32())
				}
				copy(buf[f.Payload:], reply)
				n := f.Reply(buf, repLen)
				if n != f.Payload+repLen {
					t.Fatalf("Reply returned %d", n)
				}
				verifyReply(t, p, buf[:n], reply)
			}
		}
	}
}

func TestReplyDoesNotFit(t *testing.T) {
	fr := testutil.Frame(t, testutil.Packet{Payload: pingMsg(1, 4)})
	f, _ := codec.ParseFrame(fr)
	orig := append([]byte(nil), fr...)
	if n := f.Reply(fr, len(fr)-f.Payload+1); n != 0 {
		t.Fatalf("Reply past the buffer returned %d", n)
	}
	if n := f.Reply(fr, -1); n != 0 {
		t.Fatalf("negative length returned %d", n)
	}
	if !bytes.Equal(fr, orig) {
		t.Fatal("a refused Reply wrote to the frame")
	}
	if f.MaxReply(len(fr)) != len(fr)-f.Payload {
		t.Fatal("MaxReply")
	}
}

// refChecksum is RFC 1071 done the slow, obvious way.
func refChecksum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s>>16 != 0 {
		s = s&0xFFFF + s>>16
	}
	return ^uint16(s)
}

func TestChecksumMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for n := 0; n < 300; n++ {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		if n%7 == 0 {
			for i := range b {
				b[i] = 0xFF // all-ones words stress the carries
			}
		}
		if got, want := codec.Checksum(b), refChecksum(b); got != want {
			t.Fatalf("len %d: %#04x, want %#04x", n, got, want)
		}
	}
	// RFC 1071's example.
	if got := codec.Checksum([]byte{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7}); got != ^uint16(0xddf2) {
		t.Fatalf("rfc1071 example: %#04x", got)
	}
}

func TestHotPathAllocatesNothing(t *testing.T) {
	fr := testutil.Frame(t, testutil.Packet{IPv6: true, VLAN: 3, Payload: pingMsg(1, 64)})
	buf := make([]byte, 2048)
	allocs := testing.AllocsPerRun(1000, func() {
		copy(buf, fr)
		f, _ := codec.ParseFrame(buf)
		r := rebound.ParseDatagram(f.UDPPayload(buf))
		buf[f.Payload+3] = rebound.FlagResponse
		f.Reply(buf, rebound.HeaderLen+len(r.Payload))
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per request", allocs)
	}
}

var sink int

func benchPing(b *testing.B, ipv6 bool) {
	fr, err := testutil.BuildFrame(testutil.Packet{IPv6: ipv6, Payload: pingMsg(1, 64-rebound.HeaderLen)})
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 2048)
	copy(buf, fr)
	b.ReportAllocs()
	b.SetBytes(int64(len(fr)))
	for b.Loop() {
		// A reply frame with its flags cleared is a request frame again, so
		// the same buffer serves every iteration without a copy.
		f, why := codec.ParseFrame(buf)
		if why != codec.ReasonNone {
			b.Fatal(why)
		}
		r := rebound.ParseDatagram(f.UDPPayload(buf))
		if r.Check != rebound.Valid {
			b.Fatal(r.Reason)
		}
		p := buf[f.Payload:]
		rebound.PutHeader(p, rebound.Header{Op: r.Op, Flags: rebound.FlagResponse, Seq: r.Seq, Len: r.Len})
		sink += f.Reply(buf, rebound.HeaderLen+len(r.Payload))
		p[3] = 0 // turn the reply back into a request for the next round
	}
}

func BenchmarkPingIPv4(b *testing.B) { benchPing(b, false) }
func BenchmarkPingIPv6(b *testing.B) { benchPing(b, true) }
