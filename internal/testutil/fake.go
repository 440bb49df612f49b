package testutil

import (
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rebound-net/rebound/codec/rebound"
)

// FakePingServer answers Rebound PINGs over UDP on loopback, but lets
// answer decide per request (by its arrival number, from 0) whether to
// answer and after how long: a server that loses or delays replies on
// purpose, for client and load-generator tests. It stops when the test
// ends; the address is returned.
func FakePingServer(t testing.TB, answer func(n int64) (bool, time.Duration)) string {
	t.Helper()
	var count atomic.Int64
	return AnswerUDP(t, func(req []byte) []byte {
		ok, delay := answer(count.Add(1) - 1)
		if !ok {
			return nil
		}
		if delay > 0 {
			time.Sleep(delay) // the delay the test asked for
		}
		req[3] |= rebound.FlagResponse
		return req
	})
}

// AnswerUDP serves UDP on loopback until the test ends, sending back what
// reply makes of each datagram (nil: nothing; it may change and return
// the datagram it is given). The address is returned. It allocates
// nothing per datagram, so that a test of a client's allocations in the
// same process counts the client's alone.
func AnswerUDP(t testing.TB, reply func(req []byte) []byte) string {
	t.Helper()
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 65536)
		for {
			n, from, err := pc.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			if rep := reply(buf[:n]); rep != nil {
				_, _ = pc.WriteToUDPAddrPort(rep, from)
			}
		}
	}()
	return pc.LocalAddr().String()
}
