package e2e

// Scale-out through twemproxy (nutcracker): two 'rebound serve --mode udp'
// instances on loopback behind one nutcracker with ketama distribution, in
// two pools over the same two servers, one with auto_eject_hosts and one
// without. The test sets keys through the proxy, finds where each landed by
// asking each instance directly, reads them back through the proxy, then
// stops one instance and starts it again on the same ports and checks what
// each pool answers meanwhile and afterwards. No root needed.

import (
	"bufio"
	"context"
	"crypto/md5"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rebound-net/rebound/client"
	"github.com/rebound-net/rebound/internal/testenv"
)

// nutcrackerPath is twemproxy (Debian: nutcracker).
const nutcrackerPath = "/usr/sbin/nutcracker"

// Pool settings. The ejecting pool takes a server out of the ring after one
// failure and tries it again after twemproxyRetry.
const (
	twemproxyTimeoutMS = 1000
	twemproxyRetryMS   = 300
	twemproxyFailLimit = 1
	twemproxyKeys      = 200
)

// TestTwemproxyKetama runs nutcracker in front of two rebound instances and
// checks the key spread, the read-back, and what the proxy does while one
// instance is down and after it is back.
func TestTwemproxyKetama(t *testing.T) {
	requireNutcracker(t)
	requireMemcacheServe(t)
	start := time.Now()

	// Rebound instances, each on its own free ports. Their names are for
	// the log; twemproxy hashes "host:port" onto the ring.
	used := map[int]bool{}
	nodes := []*twNode{{name: "rebound-a"}, {name: "rebound-b"}}
	for _, n := range nodes {
		n.startFresh(t, used)
	}
	a, b := nodes[0], nodes[1]

	ejectAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(twFreePort(t, used)))
	plainAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(twFreePort(t, used)))
	statsPort := twFreePort(t, used)
	nc := startNutcracker(t, twemproxyConfig(ejectAddr, plainAddr, nodes), statsPort, ejectAddr, plainAddr)

	nonce := strconv.FormatInt(time.Now().UnixNano(), 36)
	keys := make([]string, twemproxyKeys)
	want := map[string]string{}
	for i := range keys {
		keys[i] = fmt.Sprintf("tw:%03d", i)
		want[keys[i]] = fmt.Sprintf("v%d-%s", i, nonce)
	}

	// 1. Set through the proxy; each key is on exactly one instance.
	px := twDial(t, ejectAddr)
	for _, k := range keys {
		if r, err := px.set(k, want[k]); err != nil || r != "STORED" {
			t.Fatalf("set %s through the proxy: %q, %v\n%s", k, r, err, nc.log())
		}
	}
	px.close()
	owner := map[string]*twNode{}
	for _, n := range nodes {
		c := twDial(t, n.mc)
		for _, k := range keys {
			v, hit, errLine, err := c.get1(k)
			if err != nil || errLine != "" {
				t.Fatalf("get %s on %s directly: %q, %v", k, n.name, errLine, err)
			}
			if !hit {
				continue
			}
			if v != want[k] {
				t.Errorf("%s on %s directly: %q, want %q", k, n.name, v, want[k])
			}
			if o := owner[k]; o != nil {
				t.Errorf("%s is on both %s and %s", k, o.name, n.name)
			}
			owner[k] = n
			n.keys = append(n.keys, k)
		}
		c.close()
	}
	if len(owner) != len(keys) {
		t.Fatalf("%d of %d keys on some instance after setting them through the proxy", len(owner), len(keys))
	}
	for _, n := range nodes {
		if len(n.keys) == 0 {
			t.Fatalf("%s holds none of the %d keys: no spread", n.name, len(keys))
		}
	}
	t.Logf("ketama spread: %s %d keys, %s %d keys", a.name, len(a.keys), b.name, len(b.keys))

	// twemproxy's documented ketama (md5 key hash, 160 points a server
	// from md5("name-N")) must predict every key's instance.
	ring := newTwKetama(nodes)
	mis := 0
	for _, k := range keys {
		if p := ring.pick(k); p != owner[k] {
			mis++
			if mis <= 5 {
				t.Errorf("%s landed on %s; ketama over %s, %s says %s", k, owner[k].name, a.name, b.name, p.name)
			}
		}
	}
	if mis > 0 {
		t.Fatalf("%d of %d keys not where twemproxy's ketama puts them", mis, len(keys))
	}

	// 4. The client's ring over the same servers sends each key where
	// twemproxy put it, so UDP GETs can go straight to the owner.
	cring, err := client.NewRing([]string{a.mc, b.mc})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if got := cring.Pick([]byte(k)); got != owner[k].mc {
			t.Fatalf("client ring puts %s on %s; twemproxy put it on %s", k, got, owner[k].mc)
		}
	}

	// 2. Every key reads back through both pools, one by one and in one
	// multi-key get that twemproxy splits over both instances.
	for _, addr := range []string{ejectAddr, plainAddr} {
		c := twDial(t, addr)
		for _, k := range keys {
			v, hit, errLine, err := c.get1(k)
			if err != nil || errLine != "" || !hit || v != want[k] {
				t.Fatalf("get %s through %s: %q hit %v %q %v, want %q", k, addr, v, hit, errLine, err, want[k])
			}
		}
		got, errLine, err := c.get(keys...)
		if err != nil || errLine != "" {
			t.Fatalf("multi-get of %d keys through %s: %q, %v", len(keys), addr, errLine, err)
		}
		for _, k := range keys {
			if got[k] != want[k] {
				t.Errorf("multi-get through %s: %s = %q, want %q", addr, k, got[k], want[k])
			}
		}
		if len(got) != len(keys) {
			t.Errorf("multi-get through %s: %d values for %d keys", addr, len(got), len(keys))
		}
		c.close()
	}
	if t.Failed() {
		t.FailNow()
	}

	// 3. Stop b.
	code, took := b.srv.stop(syscall.SIGTERM)
	if code != 0 {
		t.Errorf("%s: exit %d after SIGTERM (in %v), want 0", b.name, code, took)
	}
	t.Logf("%s stopped by SIGTERM: exit %d in %v (at %v)", b.name, code, took, time.Since(start).Round(time.Millisecond))
	bKey := b.keys[0]

	// Without eject: b's keys are errors, for good; a's keys are served.
	first := twPoll(t, "pool without eject answers an error for "+bKey, 5*time.Second, func() (string, bool) {
		r := twAnswer(plainAddr, "get", bKey, "")
		return r, strings.HasPrefix(r, "SERVER_ERROR")
	})
	t.Logf("without eject, get %s (owned by stopped %s): %q", bKey, b.name, first)
	for i, k := range b.keys[:min(5, len(b.keys))] {
		if r := twAnswer(plainAddr, "get", k, ""); !strings.HasPrefix(r, "SERVER_ERROR") {
			t.Errorf("without eject, get %s (%s down), attempt %d: %q, want SERVER_ERROR", k, b.name, i, r)
		}
		if r := twAnswer(plainAddr, "set", k, "x"); !strings.HasPrefix(r, "SERVER_ERROR") {
			t.Errorf("without eject, set %s (%s down): %q, want SERVER_ERROR", k, b.name, r)
		}
	}
	twReadAll(t, plainAddr, a.keys, want, "without eject, "+b.name+" down")

	// With eject: after the failure limit b's keys go to a: a get misses
	// there, a set is stored on a. Between retries twemproxy puts b back
	// and fails again, so errors come and go; the client retries, as
	// twemproxy's docs say it must.
	seen := map[string]int{}
	twPoll(t, "pool with eject remaps "+bKey+" to "+a.name, 5*time.Second, func() (string, bool) {
		r := twAnswer(ejectAddr, "get", bKey, "")
		seen[twKind(r)]++
		return r, r == "END"
	})
	// Watch it over a few retry periods: a miss on a, or the error of a
	// retry of b, nothing else.
	for end := time.Now().Add(4 * twemproxyRetryMS * time.Millisecond); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		r := twAnswer(ejectAddr, "get", bKey, "")
		seen[twKind(r)]++
		if r != "END" && !strings.HasPrefix(r, "SERVER_ERROR") {
			t.Errorf("with eject, get %s while %s is down: %q, want END or SERVER_ERROR", bKey, b.name, r)
			break
		}
	}
	remapped := b.keys[min(1, len(b.keys)-1)]
	newVal := "remapped-" + nonce
	twPoll(t, "set of "+remapped+" through the ejecting pool stored on "+a.name, 5*time.Second, func() (string, bool) {
		r := twAnswer(ejectAddr, "set", remapped, newVal)
		seen[twKind(r)]++
		return r, r == "STORED"
	})
	if v, hit := twDirect(t, a, remapped); !hit || v != newVal {
		t.Errorf("with eject, %s set while %s was down: on %s directly %q hit %v, want %q", remapped, b.name, a.name, v, hit, newVal)
	}
	t.Logf("with eject, answers for %s's keys while it was down: %v (at %v)", b.name, seen, time.Since(start).Round(time.Millisecond))
	twReadAll(t, ejectAddr, a.keys, want, "with eject, "+b.name+" down")
	if t.Failed() {
		t.FailNow()
	}

	// Start b again on the same ports: empty, and served through again.
	b.restart(t)
	freshKey := b.keys[len(b.keys)-1]
	// Without eject: as soon as b is back, its keys miss (b is empty).
	r := twPoll(t, "pool without eject answers for "+freshKey+" again", 5*time.Second, func() (string, bool) {
		r := twAnswer(plainAddr, "get", freshKey, "")
		return r, !strings.HasPrefix(r, "SERVER_ERROR")
	})
	if r != "END" {
		t.Errorf("without eject, get %s after %s restarted: %q, want a miss (END)", freshKey, b.name, r)
	}
	v2 := "again-" + nonce
	if r := twAnswer(plainAddr, "set", freshKey, v2); r != "STORED" {
		t.Errorf("without eject, set %s after %s restarted: %q", freshKey, b.name, r)
	}
	if r := twAnswer(plainAddr, "get", freshKey, ""); r != "VALUE "+v2 {
		t.Errorf("without eject, get %s after set: %q, want %q", freshKey, r, "VALUE "+v2)
	}
	if v, hit := twDirect(t, b, freshKey); !hit || v != v2 {
		t.Errorf("%s set through the pool without eject: on %s directly %q hit %v, want %q", freshKey, b.name, v, hit, v2)
	}

	// With eject: b is back in the ring once its retry time passes; a set
	// of its key then lands on b.
	v3 := "back-" + nonce
	twPoll(t, "pool with eject stores "+remapped+" on "+b.name+" again", 5*time.Second, func() (string, bool) {
		r := twAnswer(ejectAddr, "set", remapped, v3)
		if r != "STORED" {
			return r, false
		}
		v, hit := twDirect(t, b, remapped)
		return fmt.Sprintf("STORED, on %s directly %q hit %v", b.name, v, hit), hit && v == v3
	})
	if r := twAnswer(ejectAddr, "get", remapped, ""); r != "VALUE "+v3 {
		t.Errorf("with eject, get %s after %s is back: %q, want %q", remapped, b.name, r, "VALUE "+v3)
	}
	// A key of b not touched since the restart misses through both pools.
	if len(b.keys) >= 4 {
		k := b.keys[2]
		for _, addr := range []string{ejectAddr, plainAddr} {
			if r := twAnswer(addr, "get", k, ""); r != "END" {
				t.Errorf("get %s through %s after %s restarted empty: %q, want END", k, addr, b.name, r)
			}
		}
	}
	twReadAll(t, ejectAddr, a.keys, want, "with eject, after the restart")
	twReadAll(t, plainAddr, a.keys, want, "without eject, after the restart")
	nc.alive(t)
	t.Logf("done at %v", time.Since(start).Round(time.Millisecond))
	for _, n := range nodes {
		select {
		case <-n.srv.done:
			t.Errorf("%s exited during the test: %v", n.name, n.srv.err)
		default:
		}
	}
}

// requireNutcracker skips the test when nutcracker is not installed, loudly,
// or fails it where the environment promises every tool (CI).
func requireNutcracker(t *testing.T) {
	t.Helper()
	testenv.Tool(t, nutcrackerPath, "Debian: nutcracker")
}

// twNode is one rebound instance behind the proxy.
type twNode struct {
	name   string
	rb, mc string // --listen and --memcache-listen
	srv    *server
	keys   []string // the keys the proxy put on it
}

func (n *twNode) args() []string {
	return []string{"--mode", "udp", "--workers", "2", "--listen", n.rb, "--memcache-listen", n.mc}
}

// startFresh starts n on free loopback ports not in used, trying other
// ports when one was taken between the probe and the start.
func (n *twNode) startFresh(t *testing.T, used map[int]bool) {
	t.Helper()
	for attempt := 0; ; attempt++ {
		n.rb = net.JoinHostPort("127.0.0.1", strconv.Itoa(twFreePort(t, used)))
		n.mc = net.JoinHostPort("127.0.0.1", strconv.Itoa(twFreePort(t, used)))
		s, err := startLocalServer(t, n.args()...)
		if err == nil {
			n.srv = s
			twWaitVersion(t, n)
			return
		}
		if attempt >= 3 || !strings.Contains(err.Error(), "address already in use") {
			t.Fatalf("%s: %v", n.name, err)
		}
	}
}

// restart starts n again on the ports it had, retrying while they are
// still held (for up to 10 s).
func (n *twNode) restart(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s, err := startLocalServer(t, n.args()...)
		if err == nil {
			n.srv = s
			twWaitVersion(t, n)
			t.Logf("%s started again on %s and %s", n.name, n.rb, n.mc)
			return
		}
		if time.Now().After(deadline) || !strings.Contains(err.Error(), "address already in use") {
			t.Fatalf("%s: start again on the same ports: %v", n.name, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// twFreePort is a loopback port free for TCP and UDP, not in used; it adds
// it to used.
func twFreePort(t *testing.T, used map[int]bool) int {
	t.Helper()
	for range 20 {
		if p := mcFreePort(t); !used[p] {
			used[p] = true
			return p
		}
	}
	t.Fatal("no new free loopback port")
	return 0
}

func twWaitVersion(t *testing.T, n *twNode) {
	t.Helper()
	twPoll(t, n.name+" answers version on "+n.mc, 10*time.Second, func() (string, bool) {
		select {
		case <-n.srv.done:
			t.Fatalf("%s exited: %v\n%s", n.name, n.srv.err, n.srv.Log())
		default:
		}
		c, err := twDialErr(n.mc)
		if err != nil {
			return err.Error(), false
		}
		defer c.close()
		line, err := c.roundTrip("version\r\n")
		if err != nil {
			return err.Error(), false
		}
		return line, strings.HasPrefix(line, "VERSION ")
	})
}

// twemproxyConfig is nutcracker's YAML: two memcached pools over the same
// servers, ketama over md5, one ejecting failed servers and one not.
func twemproxyConfig(ejectAddr, plainAddr string, nodes []*twNode) string {
	var servers strings.Builder
	for _, n := range nodes {
		// No server names: twemproxy then hashes "host:port" onto the
		// ring, as libmemcached and the client package do.
		fmt.Fprintf(&servers, "    - %s:1\n", n.mc)
	}
	return fmt.Sprintf(`eject:
  listen: %s
  hash: md5
  distribution: ketama
  timeout: %d
  auto_eject_hosts: true
  server_retry_timeout: %d
  server_failure_limit: %d
  servers:
%s
plain:
  listen: %s
  hash: md5
  distribution: ketama
  timeout: %d
  auto_eject_hosts: false
  servers:
%s`, ejectAddr, twemproxyTimeoutMS, twemproxyRetryMS, twemproxyFailLimit, servers.String(),
		plainAddr, twemproxyTimeoutMS, servers.String())
}

// twProxy is a running nutcracker.
type twProxy struct {
	cmd     *exec.Cmd
	done    chan struct{}
	err     error
	logPath string
}

func (p *twProxy) log() string {
	b, _ := os.ReadFile(p.logPath)
	return string(b)
}

func (p *twProxy) alive(t *testing.T) {
	t.Helper()
	select {
	case <-p.done:
		t.Fatalf("nutcracker exited during the test: %v\n%s", p.err, p.log())
	default:
	}
}

// startNutcracker checks conf with nutcracker -t, runs nutcracker on it
// (stats on loopback), waits until every listen address accepts, and kills
// it by its pid when the test ends.
func startNutcracker(t *testing.T, conf string, statsPort int, listen ...string) *twProxy {
	t.Helper()
	dir := t.TempDir()
	confPath := filepath.Join(dir, "nutcracker.yml")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, nutcrackerPath, "-t", "-c", confPath).CombinedOutput(); err != nil {
		t.Fatalf("nutcracker -t: %v\n%s\n%s", err, out, conf)
	}
	p := &twProxy{done: make(chan struct{}), logPath: filepath.Join(dir, "nutcracker.log")}
	p.cmd = exec.Command(nutcrackerPath, "-c", confPath, "-o", p.logPath, "-v", "6",
		"-a", "127.0.0.1", "-s", strconv.Itoa(statsPort), "-p", filepath.Join(dir, "nutcracker.pid"))
	out := &strings.Builder{}
	p.cmd.Stdout, p.cmd.Stderr = out, out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start nutcracker: %v", err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("nutcracker config:\n%s\nnutcracker log:\n%s", conf, p.log())
		}
	})
	for _, addr := range listen {
		twPoll(t, "nutcracker accepts on "+addr, 10*time.Second, func() (string, bool) {
			select {
			case <-p.done:
				t.Fatalf("nutcracker exited at start: %v\n%s", p.err, p.log())
			default:
			}
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err != nil {
				return err.Error(), false
			}
			c.Close()
			return "", true
		})
	}
	t.Logf("nutcracker pid %d: pool eject on %s, pool plain on %s", p.cmd.Process.Pid, listen[0], listen[1])
	return p
}

// twPoll calls f until it reports done, failing the test with f's last
// answer at the deadline; it returns that answer.
func twPoll(t *testing.T, what string, limit time.Duration, f func() (string, bool)) string {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		r, ok := f()
		if ok {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %v; last answer %q", what, limit, r)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// twConn is a plain memcached text-protocol client over one TCP connection.
type twConn struct {
	c net.Conn
	r *bufio.Reader
}

func twDialErr(addr string) (*twConn, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return nil, err
	}
	return &twConn{c: c, r: bufio.NewReader(c)}, nil
}

func twDial(t *testing.T, addr string) *twConn {
	t.Helper()
	c, err := twDialErr(addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(c.close)
	return c
}

func (m *twConn) close() { m.c.Close() }

func (m *twConn) line() (string, error) {
	s, err := m.r.ReadString('\n')
	if err != nil {
		return s, err
	}
	if !strings.HasSuffix(s, "\r\n") {
		return s, fmt.Errorf("line not ended by CRLF: %q", s)
	}
	return strings.TrimSuffix(s, "\r\n"), nil
}

// roundTrip sends req and reads one reply line.
func (m *twConn) roundTrip(req string) (string, error) {
	_ = m.c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.WriteString(m.c, req); err != nil {
		return "", err
	}
	return m.line()
}

// set stores key=value (flags 0, no expiry) and returns the reply line.
func (m *twConn) set(key, value string) (string, error) {
	return m.roundTrip(fmt.Sprintf("set %s 0 0 %d\r\n%s\r\n", key, len(value), value))
}

// get asks for keys and returns the values; errLine is a reply that is
// neither a value nor END (an error line, which ends the reply).
func (m *twConn) get(keys ...string) (vals map[string]string, errLine string, err error) {
	_ = m.c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.WriteString(m.c, "get "+strings.Join(keys, " ")+"\r\n"); err != nil {
		return nil, "", err
	}
	vals = map[string]string{}
	for {
		l, err := m.line()
		if err != nil {
			return vals, "", err
		}
		if l == "END" {
			return vals, "", nil
		}
		f := strings.Fields(l)
		if len(f) != 4 || f[0] != "VALUE" {
			return vals, l, nil
		}
		n, err := strconv.Atoi(f[3])
		if err != nil || n < 0 {
			return vals, "", fmt.Errorf("bad VALUE line %q", l)
		}
		data := make([]byte, n+2)
		if _, err := io.ReadFull(m.r, data); err != nil {
			return vals, "", err
		}
		if string(data[n:]) != "\r\n" {
			return vals, "", fmt.Errorf("value of %s not followed by CRLF", f[1])
		}
		if _, dup := vals[f[1]]; dup {
			return vals, "", fmt.Errorf("%s twice in one reply", f[1])
		}
		vals[f[1]] = string(data[:n])
	}
}

func (m *twConn) get1(key string) (v string, hit bool, errLine string, err error) {
	vals, errLine, err := m.get(key)
	v, hit = vals[key]
	if err == nil && errLine == "" && len(vals) > 1 {
		err = errors.New("values of other keys in the reply")
	}
	return v, hit, errLine, err
}

// twAnswer sends one get or set over a new connection and sums the reply
// up: "VALUE <value>", "END", "STORED", an error line, or "io: <error>".
func twAnswer(addr, op, key, value string) string {
	c, err := twDialErr(addr)
	if err != nil {
		return "io: " + err.Error()
	}
	defer c.close()
	if op == "set" {
		r, err := c.set(key, value)
		if err != nil {
			return "io: " + err.Error()
		}
		return r
	}
	v, hit, errLine, err := c.get1(key)
	switch {
	case err != nil:
		return "io: " + err.Error()
	case errLine != "":
		return errLine
	case hit:
		return "VALUE " + v
	}
	return "END"
}

// twKind is the kind of a twAnswer: what twemproxy answered, without the
// value.
func twKind(r string) string {
	if strings.HasPrefix(r, "VALUE ") {
		return "VALUE"
	}
	return r
}

// twDirect reads key from n itself.
func twDirect(t *testing.T, n *twNode, key string) (string, bool) {
	t.Helper()
	c := twDial(t, n.mc)
	defer c.close()
	v, hit, errLine, err := c.get1(key)
	if err != nil || errLine != "" {
		t.Fatalf("get %s on %s directly: %q, %v", key, n.name, errLine, err)
	}
	return v, hit
}

// twReadAll checks that every key of keys reads back with its value
// through addr.
func twReadAll(t *testing.T, addr string, keys []string, want map[string]string, when string) {
	t.Helper()
	c := twDial(t, addr)
	defer c.close()
	for _, k := range keys {
		v, hit, errLine, err := c.get1(k)
		if err != nil || errLine != "" || !hit || v != want[k] {
			t.Errorf("%s: get %s through %s: %q hit %v %q %v, want %q", when, k, addr, v, hit, errLine, err, want[k])
			return
		}
	}
}

// twKetama is twemproxy's ketama ring as its docs and README describe it
// for equal weights: 160 points a server, four from each md5 of
// "name-N" (N from 0), each point a little-endian uint32 of the digest;
// a key (hash md5: the first four bytes of its digest, little-endian)
// goes to the first point at or after its hash, wrapping around.
type twKetama struct {
	points []twPoint
}

type twPoint struct {
	v    uint32
	node *twNode
}

func newTwKetama(nodes []*twNode) *twKetama {
	k := &twKetama{}
	for _, n := range nodes {
		for i := range 40 {
			d := md5.Sum([]byte(n.mc + "-" + strconv.Itoa(i)))
			for j := range 4 {
				k.points = append(k.points, twPoint{binary.LittleEndian.Uint32(d[4*j:]), n})
			}
		}
	}
	sort.Slice(k.points, func(i, j int) bool { return k.points[i].v < k.points[j].v })
	return k
}

func (k *twKetama) pick(key string) *twNode {
	d := md5.Sum([]byte(key))
	h := binary.LittleEndian.Uint32(d[:4])
	i := sort.Search(len(k.points), func(i int) bool { return k.points[i].v >= h })
	if i == len(k.points) {
		i = 0
	}
	return k.points[i].node
}
