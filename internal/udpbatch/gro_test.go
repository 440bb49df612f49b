package udpbatch_test

import (
	"encoding/binary"
	"net"
	"net/netip"
	"os/exec"
	"testing"
	"time"

	"github.com/rebound-net/rebound/internal/testutil"
	"github.com/rebound-net/rebound/internal/udpbatch"
)

// TestGROCutsCoalescedDatagrams sends bursts over a veth pair whose
// receiving end does GRO, to a Conn with SetGRO, with a batch smaller than
// a burst: the kernel hands over coalesced buffers, and Read must return
// every datagram, whole and in order, across several Reads, with replies
// written in place not spoiling the ones still waiting.
func TestGROCutsCoalescedDatagrams(t *testing.T) {
	l := testutil.NewLab(t, 1)
	if out, err := exec.Command("ip", "netns", "exec", l.Srv.Name, "ethtool", "-K", l.SrvIf.Name, "gro", "on").CombinedOutput(); err != nil {
		t.Fatalf("GRO on %s: %v %s", l.SrvIf.Name, err, out)
	}
	var su, cu *net.UDPConn
	var err error
	l.Srv.Do(t, func() { su, err = net.ListenUDP("udp4", &net.UDPAddr{IP: l.SrvIP4}) })
	if err != nil {
		t.Fatal(err)
	}
	defer su.Close()
	l.Cli.Do(t, func() { cu, err = net.ListenUDP("udp4", &net.UDPAddr{IP: l.CliIP4}) })
	if err != nil {
		t.Fatal(err)
	}
	defer cu.Close()
	_ = su.SetReadBuffer(4 << 20)
	srv, err := udpbatch.New(su, 8, 64<<10)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.SetGRO(true); err != nil {
		t.Fatal(err)
	}
	cli, err := udpbatch.New(cu, 64, 2048)
	if err != nil {
		t.Fatal(err)
	}
	to := netip.AddrPortFrom(netip.AddrFrom4([4]byte(l.SrvIP4.To4())), uint16(su.LocalAddr().(*net.UDPAddr).Port))
	from := netip.AddrPortFrom(netip.AddrFrom4([4]byte(l.CliIP4.To4())), uint16(cu.LocalAddr().(*net.UDPAddr).Port))

	// Bursts of 40 datagrams of one size, the last one of each shorter.
	const bursts, per = 20, 40
	want := make([][]byte, 0, bursts*per)
	for b := range bursts {
		for k := range per {
			n := 100 + b
			if k == per-1 {
				n = 50
			}
			d := make([]byte, n)
			for j := range d {
				d[j] = byte(len(want)*3 + j)
			}
			binary.BigEndian.PutUint32(d, uint32(len(want)))
			want = append(want, d)
			cli.QueueTo(d, to)
		}
		if sent, err := cli.Flush(); sent != per || err != nil {
			t.Fatalf("burst %d: Flush = %d, %v", b, sent, err)
		}
	}
	_ = su.SetReadDeadline(time.Now().Add(5 * time.Second))
	got := 0
	for got < len(want) {
		n, err := srv.Read()
		if err != nil {
			t.Fatalf("after %d of %d datagrams: %v", got, len(want), err)
		}
		if n > srv.Batch() {
			t.Fatalf("Read = %d, more than the batch of %d", n, srv.Batch())
		}
		for i := range n {
			if d := srv.Data(i); string(d) != string(want[got]) {
				t.Fatalf("datagram %d: %d bytes %x..., want %d bytes %x...", got, len(d), d[:min(len(d), 4)], len(want[got]), want[got][:4])
			}
			if f := srv.From(i); f != from {
				t.Fatalf("datagram %d from %v, want %v", got, f, from)
			}
			if _, unicast := srv.Dst(i); !unicast {
				t.Fatalf("datagram %d: not to a unicast address", got)
			}
			// A reply in place, larger than the request.
			b := srv.Buf(i)[:300]
			for j := range b {
				b[j] = 0xEE
			}
			got++
		}
	}
	st := srv.Stats()
	if st.Received != uint64(len(want)) || st.Truncated != 0 {
		t.Fatalf("Stats = %+v, want %d received", st, len(want))
	}
	if st.Coalesced == 0 {
		t.Fatalf("no datagram came coalesced (Stats %+v): GRO on the veth and UDP_GRO on the socket should have merged bursts", st)
	}
	t.Logf("%d datagrams, %d of them coalesced", st.Received, st.Coalesced)
}

func TestSetGRONeedsLargeSlots(t *testing.T) {
	uc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	c, err := udpbatch.New(uc, 4, 2048)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SetGRO(true); err == nil {
		t.Fatal("SetGRO with 2 KiB slots: no error")
	}
}
