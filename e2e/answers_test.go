package e2e

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rebound-net/rebound/client"
	"github.com/rebound-net/rebound/internal/testutil"
)

// TestXDPAnswersCoherent is the coherence stress of the answers in XDP:
// writers change keys over TCP (memcached's protocol) and UDP (the
// Rebound protocol, through AF_XDP), with sets, deletes and expiring sets,
// while readers GET the same keys over UDP with both protocols, most of
// them answered by the XDP program. Each key has one writer, whose every
// acknowledged change raises a number; a read must never return a value
// older than the last change acknowledged before the read began, nor a
// torn one (every value carries its CRC), nor an item past its expiry.
func TestXDPAnswersCoherent(t *testing.T) {
	for _, m := range modes {
		if !m.xdp {
			continue
		}
		t.Run(m.name, func(t *testing.T) {
			l := testutil.NewLab(t, 1)
			const metrics = "127.0.0.1:9177"
			startServer(t, l.Srv, append(m.args(l), "--metrics", metrics)...)
			coherenceStress(t, l, metrics)
		})
	}
}

const (
	stressKeys    = 16
	stressWriters = 4 // key k belongs to writer k % stressWriters
	stressFor     = 3 * time.Second
)

// stressValue encodes key, sequence number and padding, with a CRC, in
// few enough bytes that the replies stay within the amplification bound.
func stressValue(key string, seq uint64) []byte {
	body := fmt.Appendf(nil, "%s:%d:%s", key, seq, strings.Repeat("v", int(seq%8)))
	return binary.BigEndian.AppendUint32(body, crc32.ChecksumIEEE(body))
}

// stressSeq checks v and returns its sequence number.
func stressSeq(key string, v []byte) (uint64, error) {
	if len(v) < 5 || binary.BigEndian.Uint32(v[len(v)-4:]) != crc32.ChecksumIEEE(v[:len(v)-4]) {
		return 0, fmt.Errorf("torn value %q", v)
	}
	parts := strings.SplitN(string(v[:len(v)-4]), ":", 3)
	if len(parts) != 3 || parts[0] != key {
		return 0, fmt.Errorf("value %q is not %s's", v, key)
	}
	return strconv.ParseUint(parts[1], 10, 64)
}

func coherenceStress(t *testing.T, l *testutil.Lab, metrics string) {
	ctx := context.Background()
	keys := make([]string, stressKeys)
	for i := range keys {
		keys[i] = fmt.Sprintf("coh-%02d", i)
	}
	// acked[k]: the sequence number of k's last acknowledged change; a
	// read that starts later must see it or a newer one. deleted[k]: that
	// change was a delete (a hit must then be newer still).
	var acked [stressKeys]atomic.Uint64
	var deleted [stressKeys]atomic.Bool
	// Expiring items: key, and the time after which it must be gone.
	type expiring struct {
		key  string
		gone time.Time
	}
	var expMu sync.Mutex
	var exps []expiring

	stop := time.Now().Add(stressFor)
	errs := make(chan error, 64)
	var wg sync.WaitGroup
	for w := range stressWriters {
		// Writers 0 and 2 over memcached TCP, 1 and 3 over Rebound UDP.
		var mc *client.Memcache
		var rb *client.Client
		if w%2 == 0 {
			var err error
			l.Cli.Do(t, func() { mc, err = client.DialMemcache(ctx, "198.18.0.2:11211", client.MemcacheOptions{}) })
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { mc.Close() })
		} else {
			rb = dial(t, l.Cli, srv4, client.Options{Retries: 5})
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			seq := uint64(0)
			for n := 0; time.Now().Before(stop); n++ {
				for k := w; k < stressKeys; k += stressWriters {
					seq++
					key := keys[k]
					var err error
					del := n%7 == 3
					switch {
					case del && mc != nil:
						err = mc.Delete(ctx, []byte(key))
						if errors.Is(err, client.ErrCacheMiss) {
							err = nil
						}
					case del:
						err = rb.Del(ctx, []byte(key))
						if errors.Is(err, client.ErrNotFound) {
							err = nil
						}
					case mc != nil:
						err = mc.Set(ctx, []byte(key), stressValue(key, seq), 0, 0)
					default:
						err = rb.Set(ctx, []byte(key), stressValue(key, seq), 0)
					}
					if err != nil {
						errs <- fmt.Errorf("writer %d: %s: %w", w, key, err)
						return
					}
					deleted[k].Store(del)
					acked[k].Store(seq)
				}
				if n%50 == 0 { // an item that expires: must never be served after
					key := fmt.Sprintf("exp-%d-%d", w, n)
					var err error
					if mc != nil {
						err = mc.Set(ctx, []byte(key), stressValue(key, 1), 0, time.Second)
					} else {
						err = rb.Set(ctx, []byte(key), stressValue(key, 1), time.Second)
					}
					if err != nil {
						errs <- fmt.Errorf("writer %d: %s: %w", w, key, err)
						return
					}
					// Expiry is in whole seconds: gone within 1 s of the
					// set, 2 s at most with the clock's ticks.
					expMu.Lock()
					exps = append(exps, expiring{key, time.Now().Add(2 * time.Second)})
					expMu.Unlock()
				}
			}
		}()
	}
	var reads, hits, expChecks atomic.Int64
	for r := range 4 {
		var mc *client.Memcache
		var rb *client.Client
		if r%2 == 0 {
			var err error
			l.Cli.Do(t, func() {
				mc, err = client.DialMemcache(ctx, "198.18.0.2:11211", client.MemcacheOptions{UDP: true, Retries: 5})
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { mc.Close() })
		} else {
			rb = dial(t, l.Cli, srv4, client.Options{Retries: 5})
		}
		get := func(key string) ([]byte, bool, error) {
			if mc != nil {
				it, err := mc.Get(ctx, []byte(key))
				if errors.Is(err, client.ErrCacheMiss) {
					return nil, false, nil
				}
				return it.Value, err == nil, err
			}
			v, err := rb.Get(ctx, []byte(key))
			if errors.Is(err, client.ErrNotFound) {
				return nil, false, nil
			}
			return v, err == nil, err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(stop.Add(2500 * time.Millisecond)); i++ {
				k := (i*7 + r) % stressKeys
				floor, wasDel := acked[k].Load(), deleted[k].Load()
				v, hit, err := get(keys[k])
				reads.Add(1)
				if err != nil {
					errs <- fmt.Errorf("reader %d: %s: %w", r, keys[k], err)
					return
				}
				if hit {
					hits.Add(1)
					seq, err := stressSeq(keys[k], v)
					switch {
					case err != nil:
						errs <- fmt.Errorf("reader %d: %w", r, err)
						return
					case seq < floor || (wasDel && seq == floor):
						errs <- fmt.Errorf("reader %d: %s: read change %d after change %d was acknowledged (deleted: %v)", r, keys[k], seq, floor, wasDel)
						return
					}
				}
				if i%20 == 0 {
					expMu.Lock()
					var due []expiring
					for _, e := range exps {
						if time.Now().After(e.gone) {
							due = append(due, e)
						}
					}
					expMu.Unlock()
					for _, e := range due {
						expChecks.Add(1)
						if v, hit, err := get(e.key); err != nil || hit {
							errs <- fmt.Errorf("reader %d: %s served after its expiry: %q %v", r, e.key, v, err)
							return
						}
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	answered := metric(t, l.Srv, metrics, "rebound_xdp_answers_total", `outcome="hit"`)
	t.Logf("%d reads, %d hits, %d expiry checks; %.0f answered in XDP", reads.Load(), hits.Load(), expChecks.Load(), answered)
	if reads.Load() < 1000 || expChecks.Load() == 0 {
		t.Fatalf("the stress did too little: %d reads, %d expiry checks", reads.Load(), expChecks.Load())
	}
	// Most hits must have come from XDP, or the test proves nothing about it.
	if answered < float64(hits.Load())/4 {
		t.Fatalf("only %.0f of %d hits were answered in XDP", answered, hits.Load())
	}
	// memcached's stats count the gets answered in XDP too.
	mcHits := metric(t, l.Srv, metrics, "rebound_xdp_answers_total", `op="memcache_get"`, `outcome="hit"`)
	var mc *client.Memcache
	var err error
	l.Cli.Do(t, func() { mc, err = client.DialMemcache(ctx, "198.18.0.2:11211", client.MemcacheOptions{}) })
	if err != nil {
		t.Fatal(err)
	}
	defer mc.Close()
	out, err := mc.Raw(ctx, "stats")
	if err != nil {
		t.Fatal(err)
	}
	var getHits float64
	for _, line := range strings.Split(string(out), "\r\n") {
		if v, ok := strings.CutPrefix(line, "STAT get_hits "); ok {
			getHits, _ = strconv.ParseFloat(v, 64)
		}
	}
	if mcHits == 0 || getHits < mcHits {
		t.Fatalf("stats get_hits %.0f, want at least the %.0f memcached gets answered in XDP", getHits, mcHits)
	}
}

// --busy-poll serves through AF_XDP with the sockets busy-polled, and is
// refused, with the reason, on an interface with threaded NAPI.
func TestBusyPoll(t *testing.T) {
	l := testutil.NewLab(t, 1)
	const metrics = "127.0.0.1:9178"
	s := startServer(t, l.Srv, "--mode", "xdp", "--xdp-mode", "native", "--iface", l.SrvIf.Name,
		"--xdp-answers=false", "--busy-poll", "50us", "--metrics", metrics)
	c := dial(t, l.Cli, srv4, client.Options{})
	for i := range 200 {
		if _, err := c.Ping(context.Background(), []byte{byte(i)}); err != nil {
			t.Fatalf("ping %d with busy polling: %v", i, err)
		}
	}
	if n := metric(t, l.Srv, metrics, "rebound_replies_total", `transport="xdp"`); n < 200 {
		t.Fatalf("%v of 200 replies through AF_XDP", n)
	}
	s.stop(syscall.SIGTERM)

	// Threaded NAPI needs a NAPI context: veth has one with GRO on.
	if out, err := exec.Command("ip", "netns", "exec", l.Srv.Name, "sh", "-c",
		"ethtool -K "+l.SrvIf.Name+" gro on && echo 1 > /sys/class/net/"+l.SrvIf.Name+"/threaded").CombinedOutput(); err != nil {
		t.Fatalf("threaded NAPI on: %v %s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", "netns", "exec", l.Srv.Name, reboundBin(t), "serve", "--mode", "xdp",
		"--xdp-mode", "native", "--iface", l.SrvIf.Name, "--busy-poll", "50us").CombinedOutput()
	if err == nil || ctx.Err() != nil || !strings.Contains(string(out), "threaded NAPI") {
		t.Fatalf("--busy-poll with threaded NAPI: %v (%v), %s", err, ctx.Err(), out)
	}
}
