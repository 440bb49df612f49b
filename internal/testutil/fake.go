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
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	var count atomic.Int64
	go func() {
		buf := make([]byte, 65536)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			ok, delay := answer(count.Add(1) - 1)
			if !ok {
				continue
			}
			if delay > 0 {
				time.Sleep(delay) // the delay the test asked for
			}
			rep := append([]byte(nil), buf[:n]...)
			rep[3] |= rebound.FlagResponse
			_, _ = pc.WriteTo(rep, from)
		}
	}()
	return pc.LocalAddr().String()
}
