package mcserve_test

import (
	"bytes"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	mc "github.com/rebound-net/rebound/codec/memcache"
	"github.com/rebound-net/rebound/internal/testutil"
	"github.com/rebound-net/rebound/userspace/mcserve"
	"github.com/rebound-net/rebound/userspace/store"
)

// serveUDP is the smallest UDP transport: one Conn, ServeDatagram, and
// every reply message framed with the codec's split helper.
func serveUDP(t testing.TB, h *mcserve.Handler) string {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		c := h.NewConn()
		in := make([]byte, 65536)
		var out, dg []byte
		for {
			n, from, err := pc.ReadFrom(in)
			if err != nil {
				return
			}
			var ends []int
			var hdr mc.UDPHeader
			var ok bool
			out, ends, hdr, ok = c.ServeDatagram(in[:n], out[:0])
			if !ok {
				continue
			}
			prev := 0
			for _, end := range ends {
				msg := out[prev:end]
				prev = end
				total := mc.UDPDatagrams(len(msg))
				if total == 0 { // an empty message: a lone header, total 0
					_, _ = pc.WriteTo(mc.AppendUDPHeader(dg[:0], mc.UDPHeader{RequestID: hdr.RequestID}), from)
				}
				for i := range total {
					s, e := mc.UDPChunk(len(msg), i)
					dg = mc.AppendUDPHeader(dg[:0], mc.UDPHeader{RequestID: hdr.RequestID, Seq: uint16(i), Total: uint16(total)})
					dg = append(dg, msg[s:e]...)
					_, _ = pc.WriteTo(dg, from)
				}
			}
		}
	}()
	return pc.LocalAddr().String()
}

// udpExchange sends one datagram and collects the datagrams that come
// back within a short quiet period.
func udpExchange(t *testing.T, addr string, dgram []byte) [][]byte {
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(dgram); err != nil {
		t.Fatal(err)
	}
	var got [][]byte
	buf := make([]byte, 65536)
	for {
		_ = c.SetReadDeadline(time.Now().Add(150 * time.Millisecond))
		n, err := c.Read(buf)
		if err != nil {
			return got
		}
		got = append(got, append([]byte(nil), buf[:n]...))
	}
}

func describe(dgs [][]byte) string {
	var b strings.Builder
	for _, d := range dgs {
		h, _ := mc.ParseUDPHeader(d)
		fmt.Fprintf(&b, "[%d bytes id=%d seq=%d total=%d rsv=%d %q] ", len(d), h.RequestID, h.Seq, h.Total, h.Reserved, trunc(string(d[min(len(d), 8):])))
	}
	return b.String()
}

func TestDifferentialUDP(t *testing.T) {
	oracle := testutil.StartMemcached(t)
	h := mcserve.New(mcserve.Config{Store: store.New(store.Config{}), Version: oracleVersion(t, oracle)})
	ours := serveUDP(t, h)
	oursTCP := serveTCP(t, h)
	load := "set u 0 0 5000\r\n" + strings.Repeat("z", 5000) + "\r\nset v 0 0 1\r\na\r\nset w 0 0 3000\r\n" + strings.Repeat("w", 3000) + "\r\n"
	for _, addr := range []string{oracle, oursTCP} {
		p := &peer{name: addr, addr: addr}
		p.dial(t)
		if got, _ := p.exchange(t, load); got != "STORED\r\nSTORED\r\nSTORED\r\n" {
			t.Fatalf("%s: load: %q", addr, got)
		}
		p.conn.Close()
	}
	frame := func(id, seq, total, rsv uint16, payload string) []byte {
		return append(mc.AppendUDPHeader(nil, mc.UDPHeader{RequestID: id, Seq: seq, Total: total, Reserved: rsv}), payload...)
	}
	for _, dg := range [][]byte{
		frame(7, 0, 1, 0, "get u\r\n"),
		frame(8, 0, 1, 0, "get v u v x\r\n"),
		frame(9, 0, 1, 0, "get v v v\r\n"),
		frame(10, 0, 1, 0, "get x v w\r\n"),
		frame(11, 0, 1, 0, "mg v v\r\nmg v v\r\nmg u v\r\n"),
		frame(12, 0, 1, 0, "mn\r\nmn\r\n"),
		frame(13, 0, 1, 0, "set y 0 0 1\r\nb\r\nget y\r\ndelete y\r\n"), // no "bogus": TestUDPNotARequestUnanswered
		frame(14, 0, 2, 0, "get v\r\n"),                                 // total != 1: dropped
		frame(15, 1, 1, 0, "get v\r\n"),                                 // seq ignored
		frame(16, 0, 1, 5, "get v\r\n"),                                 // reserved ignored
		frame(17, 0, 1, 0, "set z 0 0 1 noreply\r\nz\r\nget z\r\n"),
		frame(18, 0, 1, 0, "mn\r\nget x\r\n"),
		frame(19, 0, 1, 0, ""),
		frame(20, 0, 1, 0, "get x x v x\r\n"),
		frame(21, 0, 1, 0, "quit\r\nmn\r\n"),
		frame(22, 0, 1, 0, "mn\r\nquit\r\n"),

		[]byte("abc"), // shorter than a header: dropped
		frame(0xffff, 0, 1, 0, "get w\r\n"),
	} {
		a := udpExchange(t, oracle, dg)
		b := udpExchange(t, ours, dg)
		if describe(a) != describe(b) {
			t.Errorf("datagram %q:\n memcached: %s\n mcserve:   %s", dg, describe(a), describe(b))
		}
		// The reassembled reply must be the same too (it is, if the above is).
		var ra, rb []byte
		for _, d := range a {
			ra = append(ra, d[8:]...)
		}
		for _, d := range b {
			rb = append(rb, d[8:]...)
		}
		if !bytes.Equal(ra, rb) {
			t.Errorf("datagram %q: reassembled replies differ", dg)
		}
	}
}

// TestDifferenceUDPStandsAlone is the UDP entry of DIFFERENCES: an
// incomplete command or a refused value does not leak into the next
// datagram, and a too-large value is answered.
func TestDifferenceUDPStandsAlone(t *testing.T) {
	c := newHandler().NewConn()
	hdr := mc.AppendUDPHeader(nil, mc.UDPHeader{RequestID: 1, Total: 1})
	for _, tc := range []struct{ in, want string }{
		{"set w 0 0 10\r\nab", ""},
		{"mg w v\r\n", "EN\r\n"},
		{"get w\r\nmn\r\n", "END\r\nMN\r\n"},
		{"mn\r\n", "MN\r\n"},
		{"set w 0 0 2000000\r\nab\r\n", mc.ErrTooLarge.Reply()},
		{"mn\r\n", "MN\r\n"},
	} {
		out, _, _, ok := c.ServeDatagram(append(hdr[:8:8], tc.in...), nil)
		if !ok || string(out) != tc.want {
			t.Errorf("%q: %q %v, want %q", tc.in, out, ok, tc.want)
		}
	}
}
