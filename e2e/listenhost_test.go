package e2e

import (
	"encoding/binary"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rebound-net/rebound/internal/testutil"
)

// udpAnswered sends one request from the client namespace to addr and
// reports whether a reply came back within a short wait. No reply, or
// the kernel's port unreachable (nothing listens at that address), is
// false.
func udpAnswered(t *testing.T, ns *testutil.NS, addr string, req []byte) bool {
	t.Helper()
	var got bool
	ns.Do(t, func() {
		c, err := net.Dial("udp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		buf := make([]byte, 2048)
		// A few tries: the first datagram may wait for nothing here
		// (static neighbours), but a lost one must not read as refused.
		for range 3 {
			if _, err := c.Write(req); err != nil {
				if errors.Is(err, syscall.ECONNREFUSED) {
					continue
				}
				t.Fatal(err)
			}
			_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			if n, err := c.Read(buf); err == nil && n > 0 {
				got = true
				return
			}
		}
	})
	return got
}

// mcVersionReq is memcached's UDP frame (request 1, one datagram) with
// "version".
func mcVersionReq() []byte {
	req := make([]byte, 8, 32)
	binary.BigEndian.PutUint16(req[0:], 1)
	binary.BigEndian.PutUint16(req[4:], 1)
	return append(req, "version\r\n"...)
}

// TestXDPListenHosts: in xdp mode each port is steered only for its own
// listen host (issue 18, item 4). With memcached on 127.0.0.1:11211, the
// lab address's port 11211 gets nothing (the kernel has no socket there:
// no reply), while the Rebound port on the lab address is served; after a
// SIGHUP reload that moves memcached to the lab address and Rebound to
// 127.0.0.1, it is the other way round.
func TestXDPListenHosts(t *testing.T) {
	for _, m := range modes {
		if !m.xdp {
			continue
		}
		t.Run(m.name, func(t *testing.T) {
			l := testutil.NewLab(t, 1)
			cfg := filepath.Join(t.TempDir(), "rebound.conf")
			write := func(listen, mcListen string) {
				body := "listen = \"" + listen + "\"\nmemcache_listen = \"" + mcListen + "\"\n"
				if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			write("198.18.0.2:7000", "127.0.0.1:11211")
			const metrics = "127.0.0.1:9178"
			s := startServer(t, l.Srv, append(m.args(l), "--config", cfg, "--metrics", metrics)...)
			ping, version := ping(1, "x"), mcVersionReq()
			const labMC, labReb = "198.18.0.2:11211", "198.18.0.2:7000"

			notLocal := metric(t, l.Srv, metrics, "rebound_xdp_packets_total", `outcome="pass_not_local"`)
			if !udpAnswered(t, l.Cli, labReb, ping) {
				t.Fatal("the Rebound port on the lab address is not served")
			}
			if udpAnswered(t, l.Cli, labMC, version) {
				t.Fatal("memcached listens on 127.0.0.1, yet the lab address's port 11211 answered")
			}
			if d := metric(t, l.Srv, metrics, "rebound_xdp_packets_total", `outcome="pass_not_local"`) - notLocal; d < 1 {
				t.Errorf("the lab address's port 11211 was not passed to the kernel by XDP (pass_not_local moved by %v)", d)
			}

			// Move both: memcached to the lab address, Rebound to loopback.
			before := strings.Count(s.Log(), "moved the listen addresses")
			write("127.0.0.1:7000", "198.18.0.2:11211")
			if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(5 * time.Second)
			for strings.Count(s.Log(), "moved the listen addresses") == before {
				if time.Now().After(deadline) {
					t.Fatalf("no move in the log 5s after SIGHUP:\n%s", s.Log())
				}
				time.Sleep(10 * time.Millisecond)
			}
			if !udpAnswered(t, l.Cli, labMC, version) {
				t.Fatal("after the move, memcached on the lab address is not served")
			}
			if udpAnswered(t, l.Cli, labReb, ping) {
				t.Fatal("after the move, Rebound listens on 127.0.0.1, yet the lab address's port 7000 answered")
			}
		})
	}
}
