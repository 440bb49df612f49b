package codec_test

import (
	"encoding/binary"
	"net"
	"testing"

	"github.com/rebound-net/rebound/codec"
	"github.com/rebound-net/rebound/internal/testutil"
)

// Frames built by gopacket (an independent checksum implementation) pass;
// any corruption of a byte covered by a checksum fails; a zero UDP
// checksum is "none" over IPv4 only; a partial checksum (the pseudo-header
// sum that checksum offload leaves) passes.
func TestChecksumsOK(t *testing.T) {
	for _, p := range []testutil.Packet{
		{Payload: []byte("set k 0 0 1\r\nx\r\n")},
		{IPv6: true, Payload: []byte("odd length!")},
		{IPOptions: true, Payload: make([]byte, 100)},
		{VLAN: 5, IPv6: true, Payload: []byte{0xb5, 1}},
	} {
		frame := testutil.Frame(t, p)
		f, why := codec.ParseFrame(frame)
		if why != codec.ReasonNone {
			t.Fatalf("parse: %v", why)
		}
		if !f.ChecksumsOK(frame) {
			t.Fatalf("%+v: a correct frame fails", p)
		}
		// Flip each covered byte in turn (the UDP payload, header, and for
		// IPv4 the IP header).
		from := f.L3
		if p.IPv6 {
			from = f.L4
		}
		for i := from; i < f.Payload+f.PayloadLen; i++ {
			c := append([]byte(nil), frame...)
			c[i] ^= 0x10
			if cf, why := codec.ParseFrame(c); why == codec.ReasonNone && cf.ChecksumsOK(c) {
				t.Fatalf("%+v: byte %d corrupted and the checksums still hold", p, i)
			}
		}
		zero := append([]byte(nil), frame...)
		binary.BigEndian.PutUint16(zero[f.L4+6:], 0)
		if got := f.ChecksumsOK(zero); got == p.IPv6 {
			t.Fatalf("%+v: UDP checksum 0 accepted=%v, want %v", p, got, !p.IPv6)
		}
	}
}

func TestChecksumPartial(t *testing.T) {
	frame := testutil.Frame(t, testutil.Packet{Payload: []byte("get k\r\n")})
	f, _ := codec.ParseFrame(frame)
	// What a sender with checksum offload leaves in the field: the
	// pseudo-header sum (addresses, protocol, UDP length), folded.
	var acc uint32
	for i := f.L3 + 12; i < f.L3+20; i += 2 {
		acc += uint32(binary.BigEndian.Uint16(frame[i:]))
	}
	acc += 17 + uint32(8+f.PayloadLen)
	for acc > 0xFFFF {
		acc = acc>>16 + acc&0xFFFF
	}
	binary.BigEndian.PutUint16(frame[f.L4+6:], uint16(acc))
	if !f.ChecksumsOK(frame) {
		t.Fatal("a partial checksum is refused")
	}
	binary.BigEndian.PutUint16(frame[f.L4+6:], uint16(acc)+1)
	if f.ChecksumsOK(frame) {
		t.Fatal("a wrong checksum is accepted")
	}
}

func TestUnicast(t *testing.T) {
	cases := []struct {
		name string
		p    testutil.Packet
		mac  func(b []byte)
		want bool
	}{
		{"unicast v4", testutil.Packet{}, nil, true},
		{"unicast v6", testutil.Packet{IPv6: true}, nil, true},
		{"broadcast MAC", testutil.Packet{}, func(b []byte) { copy(b, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}) }, false},
		{"multicast MAC", testutil.Packet{}, func(b []byte) { b[0] = 0x01 }, false},
		{"group source MAC", testutil.Packet{}, func(b []byte) { b[6] |= 1 }, false},
		{"broadcast IP destination", testutil.Packet{Dst: net.IPv4bcast}, nil, false},
		{"multicast IP destination", testutil.Packet{Dst: net.IPv4(224, 0, 0, 1)}, nil, false},
		{"multicast v6 destination", testutil.Packet{IPv6: true, Dst: net.ParseIP("ff02::1")}, nil, false},
		{"multicast IP source", testutil.Packet{Src: net.IPv4(239, 1, 1, 1)}, nil, false},
		{"unspecified source", testutil.Packet{Src: net.IPv4zero}, nil, false},
		{"multicast v6 source", testutil.Packet{IPv6: true, Src: net.ParseIP("ff05::2")}, nil, false},
	}
	for _, c := range cases {
		b := testutil.Frame(t, c.p)
		if c.mac != nil {
			c.mac(b)
		}
		f, _ := codec.ParseFrame(b)
		if got := f.Unicast(b); got != c.want {
			t.Errorf("%s: Unicast = %v, want %v", c.name, got, c.want)
		}
	}
}

// The path MTU counts what the reply keeps: IPv4 options, the IPv6 header,
// a VLAN tag.
func TestPathMax(t *testing.T) {
	for _, c := range []struct {
		p    testutil.Packet
		want int
	}{
		{testutil.Packet{}, 1500 - 20 - 8},
		{testutil.Packet{IPOptions: true}, 1500 - 28 - 8},
		{testutil.Packet{IPv6: true}, 1500 - 40 - 8},
		{testutil.Packet{VLAN: 3}, 1500 - 20 - 8 - 4},
	} {
		b := testutil.Frame(t, c.p)
		f, _ := codec.ParseFrame(b)
		if got := f.PathMax(1500); got != c.want {
			t.Errorf("%+v: PathMax(1500) = %d, want %d", c.p, got, c.want)
		}
	}
}
