// Package testutil holds what the tests of several packages share: packet
// builders (on gopacket, so that our codec is checked by an independent
// implementation), the privilege gate and network-namespace helpers.
package testutil

import (
	"net"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// Addresses of the test lab: 198.18.0.0/15 (RFC 2544 benchmarking) and
// 2001:2::/48 (RFC 5180), never routed anywhere.
var (
	ClientMAC = net.HardwareAddr{0x02, 0x00, 0x00, 0x00, 0x00, 0x01}
	ServerMAC = net.HardwareAddr{0x02, 0x00, 0x00, 0x00, 0x00, 0x02}
	ClientIP4 = net.IPv4(198, 18, 0, 1).To4()
	ServerIP4 = net.IPv4(198, 18, 0, 2).To4()
	ClientIP6 = net.ParseIP("2001:2::1")
	ServerIP6 = net.ParseIP("2001:2::2")
)

// Packet describes a frame to build. Zero values give a client-to-server
// IPv4 UDP datagram from port 40000 to port 7000 with no payload.
type Packet struct {
	IPv6      bool
	VLAN      uint16 // 802.1Q VLAN id; 0 for no tag
	IPOptions bool   // IPv4 only: add 8 bytes of options (two NOPs, a timestamp option)
	Proto     layers.IPProtocol
	SrcPort   uint16
	DstPort   uint16
	Payload   []byte
	// FragOffset and MoreFragments make an IPv4 fragment.
	FragOffset    uint16
	MoreFragments bool
	Src, Dst      net.IP
}

// Frame serializes p with correct lengths and checksums and returns the frame.
func Frame(t testing.TB, p Packet) []byte {
	t.Helper()
	b, err := BuildFrame(p)
	if err != nil {
		t.Fatalf("build frame: %v", err)
	}
	return b
}

// BuildFrame is Frame without a testing.TB, for fuzz seeds and tools.
func BuildFrame(p Packet) ([]byte, error) {
	if p.SrcPort == 0 {
		p.SrcPort = 40000
	}
	if p.DstPort == 0 {
		p.DstPort = 7000
	}
	if p.Proto == 0 {
		p.Proto = layers.IPProtocolUDP
	}
	eth := &layers.Ethernet{SrcMAC: ClientMAC, DstMAC: ServerMAC}
	ls := []gopacket.SerializableLayer{eth}
	etherType := layers.EthernetTypeIPv4
	if p.IPv6 {
		etherType = layers.EthernetTypeIPv6
	}
	if p.VLAN != 0 {
		eth.EthernetType = layers.EthernetTypeDot1Q
		ls = append(ls, &layers.Dot1Q{VLANIdentifier: p.VLAN, Type: etherType})
	} else {
		eth.EthernetType = etherType
	}
	var nl gopacket.NetworkLayer
	if p.IPv6 {
		src, dst := orIP(p.Src, ClientIP6), orIP(p.Dst, ServerIP6)
		ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: p.Proto, SrcIP: src, DstIP: dst}
		nl = ip
		ls = append(ls, ip)
	} else {
		src, dst := orIP(p.Src, ClientIP4), orIP(p.Dst, ServerIP4)
		ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: p.Proto, SrcIP: src, DstIP: dst,
			Id: 0x1234, FragOffset: p.FragOffset}
		if p.MoreFragments {
			ip.Flags = layers.IPv4MoreFragments
		}
		if p.IPOptions {
			ip.Options = []layers.IPv4Option{
				{OptionType: 1}, {OptionType: 1}, // NOP, NOP
				{OptionType: 68, OptionLength: 4, OptionData: []byte{5, 0}}, // timestamp, empty
			}
		}
		nl = ip
		ls = append(ls, ip)
	}
	switch p.Proto {
	case layers.IPProtocolUDP:
		udp := &layers.UDP{SrcPort: layers.UDPPort(p.SrcPort), DstPort: layers.UDPPort(p.DstPort)}
		if err := udp.SetNetworkLayerForChecksum(nl); err != nil {
			return nil, err
		}
		ls = append(ls, udp)
	case layers.IPProtocolTCP:
		tcp := &layers.TCP{SrcPort: layers.TCPPort(p.SrcPort), DstPort: layers.TCPPort(p.DstPort), SYN: true, Window: 1024}
		if err := tcp.SetNetworkLayerForChecksum(nl); err != nil {
			return nil, err
		}
		ls = append(ls, tcp)
	}
	ls = append(ls, gopacket.Payload(p.Payload))
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, ls...); err != nil {
		return nil, err
	}
	return append([]byte(nil), buf.Bytes()...), nil
}

// ARPFrame returns an ARP request from the client for the server's address.
func ARPFrame(t testing.TB) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: ClientMAC, DstMAC: net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
		EthernetType: layers.EthernetTypeARP}
	arp := &layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4,
		HwAddressSize: 6, ProtAddressSize: 4, Operation: layers.ARPRequest,
		SourceHwAddress: ClientMAC, SourceProtAddress: ClientIP4,
		DstHwAddress: make([]byte, 6), DstProtAddress: ServerIP4}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true}, eth, arp); err != nil {
		t.Fatalf("build arp: %v", err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

func orIP(ip, def net.IP) net.IP {
	if ip != nil {
		return ip
	}
	return def
}
