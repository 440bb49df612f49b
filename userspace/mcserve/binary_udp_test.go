package mcserve_test

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"

	mc "github.com/rebound-net/rebound/codec/memcache"
	"github.com/rebound-net/rebound/internal/testutil"
	"github.com/rebound-net/rebound/userspace/mcserve"
	"github.com/rebound-net/rebound/userspace/store"
)

// zeroCAS clears the CAS of every whole binary packet in a datagram's
// payload (after its frame header): each server numbers its own.
func zeroCAS(dg []byte) []byte {
	dg = bytes.Clone(dg)
	for off := mc.UDPHeaderLen; ; {
		h, ok := mc.ParseBinaryHeader(dg[off:])
		if !ok || h.Magic != mc.BinaryResponse || len(dg)-off < h.PacketLen() {
			return dg
		}
		binary.BigEndian.PutUint64(dg[off+16:], 0)
		off += h.PacketLen()
	}
}

// TestBinaryDifferentialUDP: binary requests in memcached's UDP frames, as
// memcached 1.6 answers them: one reply message per command (a quiet
// command's success or miss: none), each in datagrams of its own.
func TestBinaryDifferentialUDP(t *testing.T) {
	oracle := testutil.StartMemcached(t)
	h := mcserve.New(mcserve.Config{Store: store.New(store.Config{}), Version: oracleVersion(t, oracle)})
	ours := serveUDP(t, h)
	frame := func(id uint16, packets ...[]byte) []byte {
		return append(mc.AppendUDPHeader(nil, mc.UDPHeader{RequestID: id, Total: 1}), bytes.Join(packets, nil)...)
	}
	big := strings.Repeat("b", 3000)
	for i, dg := range [][]byte{
		frame(1, packet(mc.OpSet, 1, 0, setExt(9, 0), "k", "value")),
		frame(2, packet(mc.OpGet, 2, 0, nil, "k", "")),
		frame(3, packet(mc.OpGetK, 3, 0, nil, "missing", "")),
		frame(4, packet(mc.OpGetQ, 4, 0, nil, "missing", "")), // silent: nothing at all
		frame(5, packet(mc.OpGetKQ, 5, 0, nil, "k", ""), packet(mc.OpGetKQ, 6, 0, nil, "missing", ""), packet(mc.OpNoop, 7, 0, nil, "", "")),
		frame(6, packet(mc.OpSetQ, 8, 0, setExt(0, 0), "big", big), packet(mc.OpGetK, 9, 0, nil, "big", "")),
		frame(7, packet(mc.OpIncrement, 10, 0, incrExt(1, 5, 0), "n", ""), packet(mc.OpIncrementQ, 11, 0, incrExt(1, 5, 0), "n", ""), packet(mc.OpGet, 12, 0, nil, "n", "")),
		frame(8, packet(mc.OpDelete, 13, 0, nil, "k", ""), packet(mc.OpDelete, 14, 0, nil, "k", "")),
		frame(9, packet(mc.OpVersion, 15, 0, nil, "", "")),
		frame(10, packet(mc.OpTouch, 16, 0, expExt(10), "n", ""), packet(mc.OpGATK, 17, 0, expExt(10), "n", "")),
	} {
		want := udpExchange(t, oracle, dg)
		got := udpExchange(t, ours, dg)
		for j := range want {
			want[j] = zeroCAS(want[j])
		}
		for j := range got {
			got[j] = zeroCAS(got[j])
		}
		if describe(want) != describe(got) {
			t.Errorf("datagram %d:\nmemcached %.400s\nrebound   %.400s", i+1, describe(want), describe(got))
		}
		for j := range min(len(want), len(got)) {
			if !bytes.Equal(want[j], got[j]) {
				t.Errorf("datagram %d, reply %d:\nmemcached % x\nrebound   % x", i+1, j, want[j][:min(len(want[j]), 64)], got[j][:min(len(got[j]), 64)])
			}
		}
	}
}

// TestBinaryDatagramBudget: over UDP a binary get's value is not copied
// when it would pass the datagram's budget; the datagram stops there.
func TestBinaryDatagramBudget(t *testing.T) {
	h := mcserve.New(mcserve.Config{Store: store.New(store.Config{})})
	c := h.NewConn()
	big := strings.Repeat("v", 100_000)
	if _, out, _, _ := c.Serve(packet(mc.OpSet, 1, 0, setExt(0, 0), "big", big), nil); len(out) != 24 {
		t.Fatalf("load: % x", out)
	}
	var req []byte
	for range 50 {
		req = append(req, packet(mc.OpGetQ, 1, 0, nil, "big", "")...)
	}
	dg := append(mc.AppendUDPHeader(nil, mc.UDPHeader{RequestID: 3, Total: 1}), req...)
	out, ends, _, ok, over := c.ServeDatagramWithin(dg, make([]byte, 0, 64), 4*len(dg))
	if !ok || !over || len(out) != 0 || len(ends) != 0 {
		t.Fatalf("ok %v over %v out %d ends %v", ok, over, len(out), ends)
	}
	if cap(out) > 64<<10 {
		t.Fatalf("the reply grew to %d bytes before the budget stopped it", cap(out))
	}
	// within the budget: answered whole
	small := append(mc.AppendUDPHeader(nil, mc.UDPHeader{RequestID: 4, Total: 1}), packet(mc.OpGet, 1, 0, nil, "big", "")...)
	out, ends, _, ok, over = c.ServeDatagramWithin(small, nil, 0)
	if !ok || over || len(out) != 24+4+len(big) || len(ends) != 1 {
		t.Fatalf("no budget: ok %v over %v out %d ends %v", ok, over, len(out), ends)
	}
}
