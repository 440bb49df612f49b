//go:build !race

// The race detector allocates on its own: this test runs without it.

package udpbatch

import (
	"net/netip"
	"testing"
	"time"
)

// echoBatch sends batch datagrams from cli to srv, reads them with srv,
// replies to each in place and reads the replies with cli: the loop of a
// server, with a client that allocates nothing either.
func echoBatch(tb testing.TB, srv, cli *Conn, to netip.AddrPort, batch int, msg []byte) {
	for range batch {
		cli.QueueTo(msg, to)
	}
	if sent, err := cli.Flush(); sent != batch || err != nil {
		tb.Fatalf("client Flush = %d, %v", sent, err)
	}
	for got := 0; got < batch; {
		n, err := srv.Read()
		if err != nil {
			tb.Fatalf("server Read: %v", err)
		}
		for i := range n {
			srv.Queue(srv.Data(i), i)
		}
		if sent, err := srv.Flush(); sent != n || err != nil {
			tb.Fatalf("server Flush = %d, %v", sent, err)
		}
		got += n
	}
	for got := 0; got < batch; {
		n, err := cli.Read()
		if err != nil {
			tb.Fatalf("client Read: %v", err)
		}
		got += n
	}
}

func TestReadWriteAllocatesNothing(t *testing.T) {
	for _, f := range families {
		t.Run(f.name, func(t *testing.T) {
			const batch = 64
			su := listen(t, f.srvNet, f.srvAddr)
			cu := listen(t, f.cliNet, f.cliAddr)
			_ = su.SetDeadline(time.Now().Add(30 * time.Second))
			_ = cu.SetDeadline(time.Now().Add(30 * time.Second))
			srv, cli := newConn(t, su, batch, 2048), newConn(t, cu, batch, 2048)
			to := dialTo(su, f.loopback)
			msg := make([]byte, 100)
			echoBatch(t, srv, cli, to, batch, msg) // warm up
			if a := testing.AllocsPerRun(200, func() { echoBatch(t, srv, cli, to, batch, msg) }); a != 0 {
				t.Fatalf("a batch of %d datagrams echoed allocates %v times, want 0", batch, a)
			}
			for i := range 4 {
				_ = srv.From(i)
			}
			if a := testing.AllocsPerRun(1000, func() { _ = srv.From(0) }); a != 0 {
				t.Fatalf("From allocates %v times", a)
			}
		})
	}
}
