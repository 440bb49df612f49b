package testutil

import (
	"context"
	"testing"

	"github.com/rebound-net/rebound/userspace"
)

// LoopbackServer starts a server in udp mode (UDP and TCP) on a free
// loopback port with the built-in service, stops it when the test ends,
// and returns its address.
func LoopbackServer(t testing.TB) string {
	t.Helper()
	return StartLoopbackServer(t).Addr().String()
}

// StartLoopbackServer is LoopbackServer, returning the server itself.
func StartLoopbackServer(t testing.TB) *userspace.Server {
	t.Helper()
	srv, err := userspace.NewServer(userspace.Config{Mode: userspace.ModeUDP, Listen: "127.0.0.1:0", Workers: 1,
		Handler: userspace.NewService(userspace.ServiceConfig{KVMemory: 8 << 20})})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	return srv
}
