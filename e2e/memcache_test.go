package e2e

// Real memcached clients against the server's memcached protocol: pymemcache
// (text protocol over TCP), memccapable's ASCII checks, memcaslap over TCP
// and UDP with verification, memcached's UDP framing of a large GET, and a
// key crossing between the memcached and the Rebound protocols over one
// store. Every check runs against the real memcached 1.6 too, as the
// oracle: a test that fails there is wrong, not rebound. The helpers are
// in memcache_helpers_test.go.

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rebound-net/rebound/client"
)

// TestMemcachePymemcache runs testdata/memcache/pymemcache_check.py: every
// storage, retrieval and arithmetic command, noreply, a 100 KB and a binary
// value, expiry, touch, flush_all and stats, as pymemcache sends them.
func TestMemcachePymemcache(t *testing.T) {
	script, err := filepath.Abs(pymemcacheCheck)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []mcKind{mcMemcached, mcReboundUDP} {
		t.Run(string(k), func(t *testing.T) {
			tg := startMC(t, k, mcOptions{})
			host, port := tg.hostPort(t)
			out, code := tg.tool(t, 60*time.Second, pythonPath, script, host, port)
			t.Logf("pymemcache against %s: %s", k, strings.TrimSpace(out))
			if code != 0 || !strings.Contains(out, "checks passed") {
				t.Fatalf("pymemcache against %s: exit %d\n%s", k, code, out)
			}
			tg.alive(t)
		})
	}
}

// memccapable prints one line per test, "ascii NAME   [pass]", with what a
// failed assertion printed sometimes between the name and its "[FAIL]".
var capableTest = regexp.MustCompile(`(?m)^(ascii [a-z ]*[a-z])\s`)
var capableResult = regexp.MustCompile(`\[(pass|FAIL|skip|SKIP|fail)\]`)

// capable runs memccapable's ASCII tests against tg and returns each test's
// result ("pass", "fail", "skip") and the whole output.
func capable(t *testing.T, tg *mcTarget) (map[string]string, string) {
	t.Helper()
	host, port := tg.hostPort(t)
	out, code := tg.tool(t, 120*time.Second, memccapablePath, "-h", host, "-p", port, "-a", "-t", "2")
	res := map[string]string{}
	starts := capableTest.FindAllStringSubmatchIndex(out, -1)
	for i, s := range starts {
		end := len(out)
		if i+1 < len(starts) {
			end = starts[i+1][0]
		}
		name := out[s[2]:s[3]]
		r := "none"
		if m := capableResult.FindAllStringSubmatch(out[s[1]:end], -1); len(m) > 0 {
			r = strings.ToLower(m[len(m)-1][1])
		}
		res[name] = r
	}
	t.Logf("memccapable -a against %s: exit %d, %d tests, summary %q", tg.Kind, code, len(res), lastLine(out))
	return res, out
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	return s[strings.LastIndexByte(s, '\n')+1:]
}

// TestMemcacheCapable: memccapable's ASCII tests pass against rebound,
// every one that passes against the real memcached at least.
func TestMemcacheCapable(t *testing.T) {
	base, baseOut := capable(t, startMC(t, mcMemcached, mcOptions{}))
	passed := 0
	for _, r := range base {
		if r == "pass" {
			passed++
		}
	}
	if passed < 20 {
		t.Fatalf("memccapable passed only %d tests against memcached itself: %v\n%s", passed, base, baseOut)
	}
	t.Run(string(mcReboundUDP), func(t *testing.T) {
		tg := startMC(t, mcReboundUDP, mcOptions{})
		got, out := capable(t, tg)
		var lost, diff []string
		for name, r := range base {
			if got[name] != r {
				diff = append(diff, fmt.Sprintf("%s: memcached %s, rebound %s", name, r, got[name]))
			}
			if r == "pass" && got[name] != "pass" {
				lost = append(lost, name)
			}
		}
		for name, r := range got {
			if _, ok := base[name]; !ok {
				diff = append(diff, fmt.Sprintf("%s: not run against memcached, rebound %s", name, r))
			}
		}
		if len(diff) > 0 {
			t.Logf("memccapable differences from memcached:\n  %s", strings.Join(diff, "\n  "))
		} else {
			t.Logf("memccapable: rebound passes the same %d ASCII tests as memcached", passed)
		}
		if len(lost) > 0 {
			// What memccapable asserted, for the first few: -v prints the
			// failed check's source line and -T runs one test alone.
			// In memccapable's order, each after a flush_all, as in a full
			// run, so that an earlier test's keys do not fail it.
			host, port := tg.hostPort(t)
			sort.Slice(lost, func(i, j int) bool { return strings.Index(out, lost[i]+" ") < strings.Index(out, lost[j]+" ") })
			for _, name := range lost[:min(3, len(lost))] {
				if r, err := tg.textCommand(t, "flush_all\r\n", "\r\n"); err != nil || r != "OK\r\n" {
					t.Errorf("flush_all: %q %v", r, err)
				}
				vout, _ := tg.tool(t, 30*time.Second, memccapablePath, "-h", host, "-p", port, "-a", "-t", "2", "-v", "-T", name)
				t.Logf("memccapable -v -T %q:\n%s", name, vout)
			}
			t.Fatalf("memccapable tests memcached passes and rebound does not: %v\n%s", lost, out)
		}
		tg.alive(t)
	})
}

// slapStats reads memcaslap's "name: value" lines and its closing
// "Run time: 3.0s Ops: N TPS: N Net_rate: ..." line.
func slapStats(out string) map[string]float64 {
	m := map[string]float64{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && strings.HasSuffix(f[0], ":") {
			if v, err := strconv.ParseFloat(f[1], 64); err == nil {
				m[strings.TrimSuffix(f[0], ":")] = v
			}
		}
		if strings.HasPrefix(line, "Run time:") {
			for i := 0; i+1 < len(f); i++ {
				if f[i] == "Ops:" || f[i] == "TPS:" {
					v, _ := strconv.ParseFloat(f[i+1], 64)
					m[strings.TrimSuffix(f[i], ":")] = v
				}
			}
		}
	}
	return m
}

// TestMemcacheSlap runs memcaslap for 3 s over TCP and over UDP with a
// tenth of the gets verified: no verification failure, no miss, a non-zero
// throughput. Rebound trusts the client range, so that its UDP replies are
// not bound to 4x the request (memcaslap's values are up to 1 KB).
func TestMemcacheSlap(t *testing.T) {
	// memcaslap's workload: keys of 16 to 64 bytes, values of 1 to 1024
	// (its UDP mode sends nothing larger than a datagram), 90% gets. Given
	// with -F, or it writes a default one into the home directory.
	cfg := filepath.Join(t.TempDir(), "memcaslap.cnf")
	if err := os.WriteFile(cfg, []byte("key\n16 64 1\nvalue\n1 1024 1\ncmd\n0 0.1\n1 0.9\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, k := range []mcKind{mcMemcached, mcReboundUDP, mcReboundXDP} {
		t.Run(string(k), func(t *testing.T) {
			tg := startMC(t, k, mcOptions{Trust: true})
			for _, udp := range []bool{false, true} {
				name := "tcp"
				args := []string{"-s", tg.Addr, "-F", cfg, "-t", "3s", "-T", "2", "-c", "16", "-v", "0.1"}
				if udp {
					name = "udp"
					args = append(args, "-U")
				}
				t.Run(name, func(t *testing.T) {
					var before map[string]float64
					if tg.Lab != nil {
						before = tg.counters(t)
					}
					out, code := tg.tool(t, 30*time.Second, memcaslapPath, args...)
					if udp && strings.Contains(out, "ms_sort_udp_packet: Assertion") {
						// memcaslap aborts when a UDP reply comes for a
						// request it has stopped waiting for (a late reply
						// on a loaded machine: seen once in CI, in xdp
						// mode, never reproduced in 16 runs here). Once is
						// memcaslap's; twice fails below.
						t.Logf("memcaslap aborted on a reply it no longer expected; running it once more:\n%s", out)
						if tg.Lab != nil {
							before = tg.counters(t)
						}
						out, code = tg.tool(t, 30*time.Second, memcaslapPath, args...)
					}
					st := slapStats(out)
					t.Logf("memcaslap %s against %s: exit %d, ops %v, TPS %v, gets %v, sets %v, get_misses %v, verify_misses %v, verify_failed %v, udp_timeout %v, packet_drop %v, packet_disorder %v",
						name, k, code, st["Ops"], st["TPS"], st["cmd_get"], st["cmd_set"], st["get_misses"], st["verify_misses"], st["verify_failed"], st["udp_timeout"], st["packet_drop"], st["packet_disorder"])
					if tg.Lab != nil {
						d := tg.counters(t)
						for k, v := range before {
							d[k] -= v
						}
						t.Logf("during the run: replies by transport %v; XDP program: %v packets redirected to AF_XDP, %v passed as not its own",
							replyDeltas(d), d[`rebound_xdp_packets_total{outcome="redirected"}`], d[`rebound_xdp_packets_total{outcome="pass_not_ours"}`])
						// --memcache-listen says XDP steers the memcached
						// port too in xdp mode: the UDP run must go through
						// AF_XDP, not only the kernel's socket. (memcaslap's
						// requests carry 0x0100 in the frame header's
						// reserved field, which memcached ignores.)
						if udp && d[`rebound_xdp_packets_total{outcome="redirected"}`] == 0 {
							t.Errorf("in xdp mode no memcached UDP request was redirected to AF_XDP (the kernel's socket answered them all)")
						}
					}
					bad := code != 0 || st["TPS"] <= 0 || st["cmd_get"] <= 0 || st["cmd_set"] <= 0
					for _, c := range []string{"verify_failed", "verify_misses", "get_misses"} {
						if v, ok := st[c]; !ok || v != 0 {
							bad = true
						}
					}
					if udp {
						for _, c := range []string{"udp_timeout", "packet_drop"} {
							if st[c] != 0 {
								bad = true
							}
						}
					}
					if bad {
						t.Fatalf("memcaslap %s against %s reported errors:\n%s", name, k, out)
					}
					tg.alive(t)
				})
			}
		})
	}
}

// replyDeltas picks the rebound_replies_total counters of d, summed over
// queues, by transport.
func replyDeltas(d map[string]float64) map[string]float64 {
	m := map[string]float64{}
	re := regexp.MustCompile(`^rebound_replies_total\{.*transport="([^"]+)"`)
	for k, v := range d {
		if sm := re.FindStringSubmatch(k); sm != nil && v != 0 {
			m[sm[1]] += v
		}
	}
	return m
}

// TestMemcacheUDPLargeGet: a GET over UDP of a 5000-byte value, sent with
// memcached's frame header. memcached, and rebound for a trusted source,
// answer it in several datagrams that make one message; rebound for an
// untrusted source answers one datagram, a SERVER_ERROR that says to use
// TCP, rather than send more than 4x the request. A small GET is answered
// in full either way.
func TestMemcacheUDPLargeGet(t *testing.T) {
	cases := []struct {
		k     mcKind
		trust bool
	}{
		{mcMemcached, false},
		{mcReboundUDP, true},
		{mcReboundUDP, false},
		{mcReboundXDP, true},
		{mcReboundXDP, false},
	}
	for _, c := range cases {
		name := string(c.k)
		if c.k != mcMemcached {
			name += map[bool]string{true: "-trusted", false: "-untrusted"}[c.trust]
		}
		t.Run(name, func(t *testing.T) {
			tg := startMC(t, c.k, mcOptions{Trust: c.trust})
			big := bytes.Repeat([]byte("0123456789abcdefghijklmnopqrstuvwxyz-"), 140)[:5000]
			small := []byte("tiny")
			for key, v := range map[string][]byte{"big": big, "small": small} {
				line, err := tg.textCommand(t, fmt.Sprintf("set %s 7 0 %d\r\n%s\r\n", key, len(v), v), "\r\n")
				if err != nil || line != "STORED\r\n" {
					t.Fatalf("set %s over TCP: %q %v", key, line, err)
				}
			}
			var before map[string]float64
			if tg.Lab != nil {
				before = tg.counters(t)
			}
			u := tg.dial(t, "udp")
			defer u.Close()
			whole := func(ds []mcDatagram) bool { return len(ds) > 0 && len(ds) >= int(ds[0].Total) }

			ds := mcUDPRequest(t, u, 0x1234, "get small\r\n", 3*time.Second, 200*time.Millisecond, whole)
			if got, want := string(mcReassemble(t, ds)), "VALUE small 7 4\r\ntiny\r\nEND\r\n"; got != want {
				t.Fatalf("small GET over UDP: %q, want %q", got, want)
			}

			ds = mcUDPRequest(t, u, 0xbeef, "get big\r\n", 3*time.Second, 300*time.Millisecond, whole)
			t.Logf("GET of %d bytes over UDP against %s: %d datagrams: %s", len(big), name, len(ds), mcDescribe(ds))
			if c.k == mcMemcached || c.trust {
				want := fmt.Sprintf("VALUE big 7 %d\r\n%s\r\nEND\r\n", len(big), big)
				if got := string(mcReassemble(t, ds)); got != want {
					t.Fatalf("large GET over UDP: %d bytes, want the %d of the whole reply", len(got), len(want))
				}
				if len(ds) < 2 {
					t.Fatalf("a %d-byte reply in %d datagram", len(want), len(ds))
				}
			} else {
				if len(ds) != 1 {
					t.Fatalf("untrusted large GET over UDP: %d datagrams, want one SERVER_ERROR: %s", len(ds), mcDescribe(ds))
				}
				d := ds[0]
				p := string(d.Payload)
				if d.ReqID != 0xbeef || d.Seq != 0 || d.Total != 1 || d.Reserved != 0 ||
					!strings.HasPrefix(p, "SERVER_ERROR ") || !strings.HasSuffix(p, "\r\n") || strings.Count(p, "\r\n") != 1 ||
					!strings.Contains(strings.ToLower(p), "tcp") {
					t.Fatalf("untrusted large GET over UDP: %s, want one datagram (id 48879, seq 0 of 1) with a SERVER_ERROR line saying to use TCP", mcDescribe(ds))
				}
				if 8+len(p) > 4*(8+len("get big\r\n")) {
					t.Fatalf("the SERVER_ERROR datagram (%d bytes) is itself more than 4x the request", 8+len(p))
				}
			}
			if tg.Lab != nil {
				// Through AF_XDP, or answered in the XDP program itself.
				const redirected = `rebound_xdp_packets_total{outcome="redirected"}`
				const answered = `rebound_xdp_packets_total{outcome="answered"}`
				now := tg.counters(t)
				if n := now[redirected] - before[redirected] + now[answered] - before[answered]; n < 2 {
					t.Errorf("in xdp mode %v of the 2 memcached UDP requests were served through XDP (the kernel's socket answered the rest)", n)
				}
			}
			// The value is intact for TCP.
			got, err := tg.textCommand(t, "get big\r\n", "END\r\n")
			if want := fmt.Sprintf("VALUE big 7 %d\r\n%s\r\nEND\r\n", len(big), big); err != nil || got != want {
				t.Fatalf("GET over TCP after: %d bytes %v", len(got), err)
			}
			tg.alive(t)
		})
	}
}

// TestMemcacheCrossProtocol: one store behind both protocols. A key set by
// pymemcache is read with the Rebound protocol (UDP and TCP, the client
// package), and a key set with the Rebound protocol is read by pymemcache.
func TestMemcacheCrossProtocol(t *testing.T) {
	script, err := filepath.Abs(pymemcacheCheck)
	if err != nil {
		t.Fatal(err)
	}
	tg := startMC(t, mcReboundUDP, mcOptions{})
	host, port := tg.hostPort(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	if out, code := tg.tool(t, 30*time.Second, pythonPath, script, host, port, "cross-set", "from-mc", "set by pymemcache"); code != 0 {
		t.Fatalf("pymemcache set: exit %d\n%s", code, out)
	}
	for _, opts := range []client.Options{{}, {TCP: true}} {
		c, err := client.Dial(ctx, tg.Rebound, opts)
		if err != nil {
			t.Fatal(err)
		}
		v, err := c.Get(ctx, []byte("from-mc"))
		c.Close()
		if err != nil || string(v) != "set by pymemcache" {
			t.Fatalf("Rebound GET (tcp=%v) of a key pymemcache set: %q %v", opts.TCP, v, err)
		}
	}

	c, err := client.Dial(ctx, tg.Rebound, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Set(ctx, []byte("from-rb"), []byte("set by rebound"), time.Minute); err != nil {
		t.Fatalf("Rebound SET: %v", err)
	}
	out, code := tg.tool(t, 30*time.Second, pythonPath, script, host, port, "cross-get", "from-rb", "set by rebound")
	t.Logf("pymemcache get of a key set with the Rebound protocol: exit %d: %s", code, strings.TrimSpace(out))
	if code != 0 {
		t.Fatalf("pymemcache get of a key the Rebound protocol set: exit %d\n%s", code, out)
	}
	tg.alive(t)
}
