package userspace_test

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/rebound-net/rebound/codec/rebound"
	"github.com/rebound-net/rebound/userspace"
)

// TestTCPPipelineMixedSizes: the one TCP connection loop serves a Rebound
// pipeline of sets, gets and pings whose replies range from a bare header
// to the largest payload, interleaved with errors, in order, byte for
// byte: small replies share a batch's room, large ones are served again
// alone (only reads are), and no later reply of a batch is lost or moved
// out of order when one is.
func TestTCPPipelineMixedSizes(t *testing.T) {
	ts := startServer(t, userspace.Config{Mode: userspace.ModeUDP, Workers: 1})
	c, err := net.Dial("tcp", ts.srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sizes := []int{0, 1, 700, 5000, 16000, 30000, rebound.MaxPayload, 100, 64000, 3}
	var req, want []byte
	seq := uint32(0)
	add := func(r, w []byte) { req, want = append(req, r...), append(want, w...); seq++ }
	for round := range 4 {
		for i, n := range sizes {
			key := fmt.Sprintf("r%dk%d", round, i)
			v := bytes.Repeat([]byte{byte('a' + i)}, n)
			if n <= maxValue { // the largest value the test service stores
				add(setReq(seq, key, 0, v), reply(rebound.OpSet, 0, seq, rebound.StatusOK, nil))
				add(getReq(seq, key, 0), reply(rebound.OpGet, 0, seq, rebound.StatusOK, v))
			}
			add(getReq(seq, key+"-missing", 0), reply(rebound.OpGet, 0, seq, rebound.StatusNotFound, nil))
			p := v[:min(len(v), rebound.MaxPayload)]
			add(raw(rebound.OpPing, 0, seq, -1, 0, p), reply(rebound.OpPing, 0, seq, rebound.StatusOK, p))
			// A request with a bad status: a bare error header, in order.
			add(raw(rebound.OpPing, 0, seq, -1, 7, nil), reply(rebound.OpPing, 0, seq, rebound.StatusBadRequest, nil))
		}
	}
	errc := make(chan error, 1)
	go func() { _, err := c.Write(req); errc <- err }()
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	got := make([]byte, len(want))
	if n, err := io.ReadFull(c, got); err != nil {
		off := 0
		for off < n {
			hw, _ := rebound.DecodeHeader(want[off:])
			hg, _ := rebound.DecodeHeader(got[off:])
			if hw != hg {
				break
			}
			off += rebound.HeaderLen + int(hw.Len)
		}
		hw, _ := rebound.DecodeHeader(want[off:])
		hg, _ := rebound.DecodeHeader(got[off:])
		t.Fatalf("read %d of %d bytes of replies: %v; first difference at %d: got %+v want %+v", n, len(want), err, off, hg, hw)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		for off := 0; off < len(want); {
			hw, _ := rebound.DecodeHeader(want[off:])
			hg, _ := rebound.DecodeHeader(got[off:])
			n := rebound.HeaderLen + int(hw.Len)
			if hw != hg || !bytes.Equal(got[off:off+n], want[off:off+n]) {
				t.Fatalf("reply at byte %d: got %+v, want %+v", off, hg, hw)
			}
			off += n
		}
	}
}
