package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/rebound-net/rebound/internal/testutil"
	"github.com/rebound-net/rebound/userspace"
	"github.com/rebound-net/rebound/userspace/mcserve"
	"github.com/rebound-net/rebound/userspace/store"
)

// rebound bench --tls against memcached -Z and against Rebound with TLS
// (client certificates required by both): every reply checked; and the
// Rebound protocol's PING over TLS.
func TestBenchTLS(t *testing.T) {
	certs := testutil.NewCerts(t)
	oracle := testutil.StartMemcachedTLS(t, certs, true)
	tl, err := userspace.NewTLS(userspace.TLSFiles{Cert: certs.ServerCert, Key: certs.ServerKey, CA: certs.CA})
	if err != nil {
		t.Fatal(err)
	}
	st := store.New(store.Config{MemoryLimit: 64 << 20})
	srv, err := userspace.NewServer(userspace.Config{Mode: userspace.ModeUDP, Listen: "127.0.0.1:0", MemcacheListen: "127.0.0.1:0",
		Workers: 1, TLS: tl, Handler: userspace.NewService(userspace.ServiceConfig{Store: st}), Memcache: mcserve.New(mcserve.Config{Store: st})})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	tlsArgs := []string{"--transport", "tcp", "--tls", "--tls-ca", certs.CA, "--tls-cert", certs.ClientCert, "--tls-key", certs.ClientKey,
		"--duration", "300ms", "--warmup", "0s", "--json", "--quiet", "--connections", "2", "--window", "8"}
	for name, args := range map[string][]string{
		"memcached -Z":       {"--protocol", "memcache", "--target", oracle, "--op", "mix=get:90,set:10", "--keys", "200"},
		"rebound, memcached": {"--protocol", "memcache", "--target", srv.MemcacheAddr().String(), "--op", "mix=get:90,set:10", "--keys", "200"},
		"rebound, ping":      {"--target", srv.Addr().String(), "--op", "ping"},
		// open loop: its own sockets, TLS over them
		"memcached -Z, open loop":  {"--protocol", "memcache", "--target", oracle, "--keys", "200", "--rate", "2000"},
		"rebound, ping, open loop": {"--target", srv.Addr().String(), "--op", "ping", "--rate", "2000"},
	} {
		var out, errb bytes.Buffer
		if code := run(append(append([]string{"bench"}, args...), tlsArgs...), &out, &errb); code != exitOK {
			t.Fatalf("%s: exit %d: %s", name, code, errb.String())
		}
		var m map[string]any
		if err := json.Unmarshal(out.Bytes(), &m); err != nil {
			t.Fatalf("%s: not JSON: %q", name, out.String())
		}
		if m["tls"] != true || m["bad"].(float64) != 0 || m["received"].(float64) == 0 || m["lost"].(float64) != 0 {
			t.Fatalf("%s: %v", name, m)
		}
		if strings.Contains(name, "memcache") && m["hits"].(float64) == 0 {
			t.Fatalf("%s: no hits: %v", name, m)
		}
		if _, ok := m["lag_p50_us"]; ok != strings.HasSuffix(name, "open loop") {
			t.Fatalf("%s: lag reported %v: %v", name, ok, m)
		}
	}
	// Without the client certificate the server refuses the handshake.
	var out, errb bytes.Buffer
	if code := run([]string{"bench", "--protocol", "memcache", "--target", srv.MemcacheAddr().String(), "--transport", "tcp", "--tls",
		"--duration", "200ms", "--warmup", "0s", "--quiet"}, &out, &errb); code == exitOK {
		t.Fatalf("bench without a client certificate: exit 0: %s", out.String())
	}
	for _, args := range [][]string{
		{"bench", "--tls"}, // UDP
		{"bench", "--transport", "tcp", "--tls-ca", certs.CA}, // without --tls
		{"bench", "--transport", "tcp", "--tls", "--tls-ca", certs.ClientKey},
	} {
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != exitUsage {
			t.Errorf("%v: exit %d, stderr %q", args, code, errb.String())
		}
	}
}
