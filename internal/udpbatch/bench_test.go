package udpbatch

import (
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/net/ipv4"
)

const benchBatch = 64

// serveUdpbatch echoes every datagram in place with a Conn until the socket
// is closed: the loop of userspace's UDP worker on this package.
func serveUdpbatch(uc *net.UDPConn) {
	c, err := New(uc, benchBatch, 64<<10)
	if err != nil {
		panic(err)
	}
	for {
		n, err := c.Read()
		if errors.Is(err, net.ErrClosed) {
			return
		} else if err != nil {
			continue
		}
		for i := range n {
			c.Queue(c.Data(i), i)
		}
		if _, err := c.Flush(); errors.Is(err, net.ErrClosed) {
			return
		}
	}
}

// serveXnet is the same loop on x/net ipv4.PacketConn ReadBatch/WriteBatch,
// as userspace's udpWorker has it.
func serveXnet(uc *net.UDPConn) {
	pc := ipv4.NewPacketConn(uc)
	in, out := make([]ipv4.Message, benchBatch), make([]ipv4.Message, benchBatch)
	bufs := make([][]byte, benchBatch)
	for i := range in {
		bufs[i] = make([]byte, 64<<10)
		in[i].Buffers = [][]byte{bufs[i]}
		out[i].Buffers = make([][]byte, 1)
	}
	for {
		n, err := pc.ReadBatch(in, 0)
		if errors.Is(err, net.ErrClosed) {
			return
		} else if err != nil {
			continue
		}
		for i := range n {
			out[i].Buffers[0] = bufs[i][:in[i].N]
			out[i].Addr = in[i].Addr
		}
		for sent := 0; sent < n; {
			k, err := pc.WriteBatch(out[sent:n], 0)
			if errors.Is(err, net.ErrClosed) {
				return
			} else if err != nil {
				k = max(k, 1)
			}
			sent += k
		}
		for i := range n {
			in[i].Addr, out[i].Addr = nil, nil
		}
	}
}

// BenchmarkEcho echoes datagrams over 127.0.0.1 through a server loop on
// this package and on x/net; the client (a Conn, which allocates nothing)
// sends batches of 64 and waits for their replies. One op is one datagram
// there and back, so allocs/op are the server's per datagram.
func BenchmarkEcho(b *testing.B) {
	for _, bb := range []struct {
		name  string
		serve func(*net.UDPConn)
	}{{"udpbatch", serveUdpbatch}, {"xnet", serveXnet}} {
		for _, size := range []int{64, 1400} {
			b.Run(bb.name+"/"+itoa(size)+"B", func(b *testing.B) {
				su := listen(b, "udp4", "127.0.0.1:0")
				cu := listen(b, "udp4", "127.0.0.1:0")
				done := make(chan struct{})
				go func() { bb.serve(su); close(done) }()
				b.Cleanup(func() { su.Close(); <-done })
				cli := newConn(b, cu, benchBatch, 2048)
				to := addrOf(su)
				msg := make([]byte, size)
				lost := 0
				b.ReportAllocs()
				b.SetBytes(int64(size))
				b.ResetTimer()
				for done := 0; done < b.N; {
					k := min(benchBatch, b.N-done)
					lost += echoRound(b, cu, cli, to, msg, k)
					done += k
				}
				b.StopTimer()
				if lost > 0 {
					b.ReportMetric(float64(lost)/float64(b.N), "lost/op")
				}
			})
		}
	}
}

// echoRound sends k datagrams and reads their replies; it returns how many
// did not come back within a second.
func echoRound(b *testing.B, cu *net.UDPConn, cli *Conn, to netip.AddrPort, msg []byte, k int) int {
	for range k {
		cli.QueueTo(msg, to)
	}
	if _, err := cli.Flush(); err != nil {
		b.Fatal(err)
	}
	_ = cu.SetReadDeadline(time.Now().Add(time.Second))
	got := 0
	for got < k {
		n, err := cli.Read()
		if err != nil {
			break // a deadline: the rest was lost
		}
		got += n
	}
	return k - got
}
