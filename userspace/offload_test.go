package userspace_test

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/rebound-net/rebound/codec/rebound"
	"github.com/rebound-net/rebound/internal/udpbatch"
	"github.com/rebound-net/rebound/userspace"
)

// TestUDPOffloadBurst sends bursts of PINGs from one client as GSO
// messages over loopback, which reach the server's UDP_GRO socket merged:
// every reply must come back, whole and right, and the worker's counters
// must show the merged receive and the grouped sends.
func TestUDPOffloadBurst(t *testing.T) {
	ts := startServer(t, userspace.Config{Mode: userspace.ModeUDP, Workers: 1})
	to, err := netip.ParseAddrPort(ts.srv.Addr().String()) // TCP and UDP share it
	if err != nil {
		t.Fatal(err)
	}
	uc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	_ = uc.SetReadBuffer(4 << 20)
	_ = uc.SetDeadline(time.Now().Add(20 * time.Second))
	cli, err := udpbatch.New(uc, 64, 2048)
	if err != nil {
		t.Fatal(err)
	}
	const bursts, per = 10, 64
	reqs := make([][]byte, per)
	for b := range bursts {
		for i := range per {
			reqs[i] = make([]byte, rebound.HeaderLen+20)
			if _, err := rebound.EncodePing(reqs[i], uint32(b*per+i), []byte("twenty bytes of ping")); err != nil {
				t.Fatal(err)
			}
			cli.QueueTo(reqs[i], to)
		}
		if sent, err := cli.Flush(); sent != per || err != nil {
			t.Fatalf("burst %d: sent %d, %v", b, sent, err)
		}
		seen := map[uint32]bool{}
		for len(seen) < per {
			n, err := cli.Read()
			if err != nil {
				t.Fatalf("burst %d: %d of %d replies: %v", b, len(seen), per, err)
			}
			for i := range n {
				h, ok := rebound.DecodeHeader(cli.Data(i))
				if !ok || h.Op != rebound.OpPing || h.Flags&rebound.FlagResponse == 0 ||
					string(cli.Data(i)[rebound.HeaderLen:]) != "twenty bytes of ping" {
					t.Fatalf("burst %d: bad reply %x", b, cli.Data(i))
				}
				seq := h.Seq - uint32(b*per)
				if seq >= per || seen[seq] {
					t.Fatalf("burst %d: reply to seq %d unexpected or twice", b, h.Seq)
				}
				seen[seq] = true
			}
		}
	}
	var coalesced, gso uint64
	for _, w := range ts.srv.Stats() {
		if w.Transport == "udp" {
			coalesced += w.Coalesced.Load()
			gso += w.GSOSends.Load()
			if w.GSOOff.Load() {
				t.Error("GSO off on a loopback socket")
			}
		}
	}
	if coalesced == 0 || gso == 0 {
		t.Fatalf("%d requests arrived merged and %d sends were grouped, want both above 0", coalesced, gso)
	}
	t.Logf("%d requests arrived merged; %d grouped sends", coalesced, gso)
}
