package e2e

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/sys/unix"

	"github.com/rebound-net/rebound/codec"
	"github.com/rebound-net/rebound/codec/rebound"
	"github.com/rebound-net/rebound/internal/testutil"
)

// rawPeer injects and captures whole frames on the client end of the lab
// (AF_PACKET), for the cases ordinary sockets cannot make: truncated
// frames, fragments, VLAN tags on a kernel without 802.1Q.
type rawPeer struct {
	fd int
}

func newRawPeer(t *testing.T, l *testutil.Lab) *rawPeer {
	t.Helper()
	p := &rawPeer{fd: -1}
	l.Cli.Do(t, func() {
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			t.Errorf("packet socket: %v", err)
			return
		}
		p.fd = fd
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: l.CliIf.Index}); err != nil {
			t.Errorf("bind: %v", err)
		}
		// A VLAN tag the receiving device moved into metadata comes back
		// as auxdata, as libpcap does it.
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_AUXDATA, 1); err != nil {
			t.Errorf("PACKET_AUXDATA: %v", err)
		}
	})
	if t.Failed() {
		t.FailNow()
	}
	t.Cleanup(func() { unix.Close(p.fd) })
	return p
}

func htons(v uint16) uint16 { return v>>8 | v<<8 }

func (p *rawPeer) send(t *testing.T, frame []byte) {
	t.Helper()
	if _, err := unix.Write(p.fd, frame); err != nil {
		t.Fatalf("inject: %v", err)
	}
}

// replyTo waits for a Rebound reply with sequence seq arriving at the
// client end and returns the whole frame (nil after the timeout). Frames we
// sent ourselves (outgoing) are skipped.
func (p *rawPeer) replyTo(seq uint32, timeout time.Duration) []byte {
	deadline := time.Now().Add(timeout)
	buf := make([]byte, 9000)
	oob := make([]byte, 256)
	for time.Now().Before(deadline) {
		tv := unix.NsecToTimeval(int64(50 * time.Millisecond))
		_ = unix.SetsockoptTimeval(p.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
		n, oobn, _, from, err := unix.Recvmsg(p.fd, buf[4:], oob, 0)
		if err != nil {
			continue
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		frame := buf[4 : 4+n]
		if tci, tpid, ok := auxVLAN(oob[:oobn]); ok && n >= 12 {
			// Put the tag back where it was on the wire.
			copy(buf[0:12], buf[4:16])
			binary.BigEndian.PutUint16(buf[12:], tpid)
			binary.BigEndian.PutUint16(buf[14:], tci)
			frame = buf[:n+4]
		}
		f, why := codec.ParseFrame(frame)
		if why != codec.ReasonNone {
			continue
		}
		m, err := rebound.DecodeReply(f.UDPPayload(frame))
		if err != nil || m.Seq != seq {
			continue
		}
		return append([]byte(nil), frame...)
	}
	return nil
}

// auxVLAN finds a VLAN tag in PACKET_AUXDATA control messages (struct
// tpacket_auxdata: status u32, len u32, snaplen u32, mac u16, net u16,
// vlan_tci u16, vlan_tpid u16).
func auxVLAN(oob []byte) (tci, tpid uint16, ok bool) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return 0, 0, false
	}
	for _, m := range msgs {
		if m.Header.Level != unix.SOL_PACKET || m.Header.Type != unix.PACKET_AUXDATA || len(m.Data) < 20 {
			continue
		}
		status := binary.NativeEndian.Uint32(m.Data[0:])
		if status&unix.TP_STATUS_VLAN_VALID == 0 {
			return 0, 0, false
		}
		tci, tpid = binary.NativeEndian.Uint16(m.Data[16:]), binary.NativeEndian.Uint16(m.Data[18:])
		if tpid == 0 {
			tpid = 0x8100
		}
		return tci, tpid, true
	}
	return 0, 0, false
}

// checkReplyFrame decodes a reply frame with gopacket and checks its
// checksums (gopacket, not our code, is the judge).
func checkReplyFrame(t *testing.T, frame []byte) {
	t.Helper()
	pkt := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
	udp, _ := pkt.Layer(layers.LayerTypeUDP).(*layers.UDP)
	if udp == nil {
		t.Fatalf("reply frame has no UDP layer: % x", frame)
	}
	var nl gopacket.NetworkLayer
	if ip4, ok := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4); ok {
		if _, r := ip4.VerifyChecksum(); !r.Valid {
			t.Fatalf("reply IPv4 header checksum wrong")
		}
		nl = ip4
	} else if ip6, ok := pkt.Layer(layers.LayerTypeIPv6).(*layers.IPv6); ok {
		nl = ip6
	}
	_ = udp.SetNetworkLayerForChecksum(nl)
	if _, r := udp.VerifyChecksum(); !r.Valid || udp.Checksum == 0 {
		t.Fatalf("reply UDP checksum %#04x wrong (want %#04x)", r.Actual, r.Correct)
	}
}

func ping(seq uint32, data string) []byte {
	b := make([]byte, rebound.HeaderLen+len(data))
	rebound.EncodePing(b, seq, []byte(data))
	return b
}

func msgWith(seq uint32, mut func(b []byte)) []byte {
	b := ping(seq, "abcd")
	mut(b)
	return b
}

// fragments splits an IPv4 UDP datagram into two fragments.
func fragments(t *testing.T, payload []byte) [][]byte {
	t.Helper()
	whole := testutil.Frame(t, testutil.Packet{Payload: payload})
	ip := whole[14:]
	ihl := int(ip[0]&0x0F) * 4
	total := int(binary.BigEndian.Uint16(ip[2:4]))
	data := ip[ihl:total] // UDP header + payload
	cut := 16             // a multiple of 8
	mk := func(part []byte, off int, more bool) []byte {
		f := make([]byte, 14+ihl+len(part))
		copy(f, whole[:14+ihl])
		h := f[14:]
		binary.BigEndian.PutUint16(h[2:4], uint16(ihl+len(part)))
		fo := uint16(off / 8)
		if more {
			fo |= 0x2000
		}
		binary.BigEndian.PutUint16(h[6:8], fo)
		h[10], h[11] = 0, 0
		binary.BigEndian.PutUint16(h[10:12], codec.Checksum(h[:ihl]))
		copy(f[14+ihl:], part)
		return f
	}
	return [][]byte{mk(data[:cut], 0, true), mk(data[cut:], cut, false)}
}
