package handler_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/rebound-net/rebound/handler"
	"github.com/rebound-net/rebound/userspace"
)

// rot13 is a made-up protocol: each request is a line of text, each reply
// the same line in ROT13. Over UDP a request is one datagram; over TCP
// requests are lines ending in '\n'.
func rot13(dst, line []byte) []byte {
	for _, c := range line {
		switch {
		case c >= 'a' && c <= 'z':
			c = 'a' + (c-'a'+13)%26
		case c >= 'A' && c <= 'Z':
			c = 'A' + (c-'A'+13)%26
		}
		dst = append(dst, c)
	}
	return dst
}

// rot13Datagram answers one datagram: out shares the request's buffer, and
// each reply byte depends only on the request byte at the same place, so
// writing in place is safe here.
var rot13Datagram = handler.DatagramFunc(func(req []byte, _ netip.Addr, out []byte) []byte {
	if len(req) > cap(out) {
		return nil // the reply would be larger than the engine allows: no reply
	}
	return rot13(out, req)
})

// rot13Stream answers every whole line that has arrived.
type rot13Stream struct{}

func (rot13Stream) ServeStream(in, out []byte) (consumed int, reply []byte, need int, close bool) {
	for {
		i := bytes.IndexByte(in[consumed:], '\n')
		if i < 0 {
			return consumed, out, 0, false // the rest is a line still arriving
		}
		out = append(rot13(out, in[consumed:consumed+i]), '\n')
		consumed += i + 1
	}
}

// A protocol of your own, served by the engine next to the built-in ones:
// here over UDP sockets and TCP on loopback (no privileges needed). With
// Mode xdp and an Iface, the engine also has the XDP program steer the
// protocol's UDP port into the AF_XDP sockets, and the same Datagram
// answers there, in the UMEM frame itself.
func Example_ownProtocol() {
	srv, err := userspace.NewServer(userspace.Config{
		Mode:    userspace.ModeUDP,
		Listen:  "127.0.0.1:0", // the built-in Rebound protocol, on a port of its own
		Handler: userspace.NewService(userspace.ServiceConfig{}),
		Protocols: []userspace.ProtocolListener{{
			Listen: "127.0.0.1:0",
			Protocol: handler.Protocol{
				Name:      "rot13",
				Datagram:  rot13Datagram,
				NewStream: func() handler.Stream { return rot13Stream{} },
			},
		}},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := srv.Start(context.Background()); err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Stop()
	addr := srv.ProtocolAddr("rot13").String()

	u, _ := net.Dial("udp", addr)
	defer u.Close()
	_ = u.SetDeadline(time.Now().Add(2 * time.Second))
	u.Write([]byte("Hello, Rebound"))
	buf := make([]byte, 64)
	n, _ := u.Read(buf)
	fmt.Printf("udp: %s\n", buf[:n])

	t, _ := net.Dial("tcp", addr)
	defer t.Close()
	_ = t.SetDeadline(time.Now().Add(2 * time.Second))
	t.Write([]byte("one\ntwo\n"))
	r := bufio.NewReader(t)
	for range 2 {
		line, _ := r.ReadString('\n')
		fmt.Printf("tcp: %s", line)
	}
	// Output:
	// udp: Uryyb, Erobhaq
	// tcp: bar
	// tcp: gjb
}
