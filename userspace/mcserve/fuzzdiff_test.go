package mcserve_test

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rebound-net/rebound/internal/testutil"
	"github.com/rebound-net/rebound/userspace/mcserve"
	"github.com/rebound-net/rebound/userspace/store"
)

// The differential fuzzer: seeded random sequences of text and meta
// commands (pipelined, malformed, binary and large values, noreply and q,
// cas chains, expired and expiring items) sent to memcached 1.6 and to
// mcserve, over TCP and over UDP, with the replies compared after CAS
// values are replaced by the order in which each server first showed them
// (so a c0 against a real CAS, or two items sharing one, still differs).
// t may differ by 1 (the two clocks tick on different boundaries) and l is
// not compared (see docs/memcached.md).
//
// Every seed gives the same sequence. By default the test runs seeds 1, 2,
// ... up to fuzzSeedsTCP/UDP, within 3s; with REBOUND_FUZZ_TIME, as many
// as fit that time; `make fuzz` sets it longer and may set
// REBOUND_FUZZ_SEED, the first seed (a failure prints the seed and the
// sequence that led to it; rerun it with REBOUND_FUZZ_SEED=<seed>
// REBOUND_FUZZ_TIME=0). The generator leaves out what docs/memcached.md
// lists as a difference on purpose.

// fuzzSeeds is how many seeds a plain run (no REBOUND_FUZZ_TIME) tries at
// most, over TCP and over UDP: the same seeds on every machine, so that
// make test passes or fails alike on a fast and a slow one (the time
// budget only cuts them short on a slow one).
const fuzzSeedsTCP, fuzzSeedsUDP = 100, 300

func fuzzBudget(t *testing.T) (first uint64, d time.Duration, capped bool) {
	first, d, capped = 1, 3*time.Second, true
	if s := os.Getenv("REBOUND_FUZZ_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("REBOUND_FUZZ_SEED: %v", err)
		}
		first = v
	}
	if s := os.Getenv("REBOUND_FUZZ_TIME"); s != "" {
		v, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("REBOUND_FUZZ_TIME: %v", err)
		}
		d, capped = v, false
	}
	return first, d, capped
}

// gen builds the commands of one seed.
type gen struct {
	r   *rand.Rand
	udp bool
	now int64
}

func (g *gen) pick(s ...string) string { return s[g.r.IntN(len(s))] }
func (g *gen) chance(p float64) bool   { return g.r.Float64() < p }

// textKey: a small pool, so that commands meet the same items. binKey: the
// keys meta commands send with b; they decode to bytes no text command can
// name (so an item's key is never both: see "mg b k" in docs/memcached.md).
func (g *gen) textKey() string {
	if g.chance(0.02) {
		return g.pick(strings.Repeat("k", 250), "a\tb", "\x01k")
	}
	return "k" + strconv.Itoa(g.r.IntN(6))
}

func (g *gen) binKey() string {
	if g.chance(0.05) {
		return g.pick("YWJj!", "Y===", "!!", "YQ==YQ==", "=")
	}
	return base64.StdEncoding.EncodeToString([]byte{0, '\r', '\n', byte(g.r.IntN(4))})
}

func (g *gen) num() string {
	switch g.r.IntN(12) {
	case 0:
		return g.pick("x", "", "-1", "99999999999999999999", "1x", "+3", "-0", "\t4", "4\t", "18446744073709551615")
	case 1:
		return strconv.FormatUint(g.r.Uint64(), 10)
	}
	return strconv.Itoa(g.r.IntN(50))
}

func (g *gen) exptime() string {
	switch g.r.IntN(10) {
	case 0:
		return "-1"
	case 1:
		return strconv.FormatInt(g.now-10, 10) // absolute, past
	case 2:
		return strconv.FormatInt(g.now+5000, 10) // absolute, future
	case 3:
		return g.pick("2592000", "2592001", "x", "-2147483649")
	case 4, 5:
		return strconv.Itoa(50 + g.r.IntN(1000))
	}
	return "0"
}

func (g *gen) value() []byte {
	var n int
	switch {
	case g.chance(0.3):
		return []byte(g.pick("0", "10", "18446744073709551615", "-0", " 7", "7 ", "abc", "", "-5", "00042"))
	case !g.udp && g.chance(0.03):
		n = 10000 + g.r.IntN(300000)
	default:
		n = g.r.IntN(200)
	}
	v := make([]byte, n)
	for i := range v {
		if g.chance(0.1) {
			v[i] = byte(g.r.IntN(256)) // binary: NUL, \r, \n included
		} else {
			v[i] = byte('a' + g.r.IntN(26))
		}
	}
	return v
}

func (g *gen) noreply() string {
	if g.chance(0.1) {
		return " noreply"
	}
	return ""
}

// storage writes a text storage command with its data block; sometimes the
// block does not end in \r\n (bad data chunk) or is too large.
func (g *gen) storage(b *strings.Builder) {
	name := g.pick("set", "set", "set", "add", "replace", "append", "prepend", "cas")
	v := g.value()
	vlen := strconv.Itoa(len(v))
	if !g.udp && g.chance(0.01) {
		v = bytes.Repeat([]byte("L"), 1_100_000)
		vlen = strconv.Itoa(len(v))
	}
	flags := strconv.Itoa(g.r.IntN(3))
	if g.chance(0.05) {
		flags = g.num()
	}
	exp := g.exptime()
	if len(v) > 1000 || g.udp {
		// a refused line leaves its data block to be read as commands,
		// where a long line closes the connection: see "close" in
		// docs/memcached.md
		flags, exp = "0", strings.Replace(exp, "x", "0", 1)
	}
	fmt.Fprintf(b, "%s %s %s %s %s", name, g.textKey(), flags, exp, vlen)
	if name == "cas" {
		// not a literal CAS other than 0: which item has CAS 1 depends on
		// how each server numbers (casOrder compares them by order only)
		tok := g.pick("{CAS}", "{CAS}", "0", "{CAS}", "x")
		if (len(v) > 1000 || g.udp) && tok == "x" {
			tok = "0"
		}
		b.WriteString(" " + tok)
	}
	b.WriteString(g.noreply() + "\r\n")
	b.Write(v)
	if !g.udp && g.chance(0.02) && len(v) > 0 {
		b.WriteString("\n\r") // a bad chunk of the same length
	} else {
		b.WriteString("\r\n")
	}
}

func (g *gen) metaFlags(pool string, n int) string {
	var fs []string
	seen := map[byte]bool{}
	for range n {
		f := pool[g.r.IntN(len(pool))]
		if seen[f] && !g.chance(0.05) {
			continue
		}
		seen[f] = true
		switch f {
		case 'T', 'N', 'R':
			fs = append(fs, string(f)+g.exptime())
		case 'C':
			fs = append(fs, "C"+g.pick("{CAS}", "{CAS}", "0", "{CAS}", "x"))
		case 'O':
			if g.chance(0.05) {
				fs = append(fs, "O"+strings.Repeat("o", 40))
			} else {
				fs = append(fs, "O"+strconv.Itoa(g.r.IntN(1000)))
			}
		case 'F', 'J', 'D':
			fs = append(fs, string(f)+g.num())
		case 'M':
			fs = append(fs, "M"+g.pick("S", "E", "A", "P", "R", "I", "D", "+", "-", "X", "SS"))
		default:
			fs = append(fs, string(f))
		}
	}
	if g.chance(0.02) {
		fs = append(fs, g.pick("E5", "zz", "!", "\xff"))
	}
	if slices.Contains(fs, "O"+strings.Repeat("o", 40)) {
		// No N or T beside a long O: memcached changes the item, refuses
		// the O, and leaves the item without N's or T's TTL
		// (docs/memcached.md).
		fs = slices.DeleteFunc(fs, func(f string) bool { return f[0] == 'N' || f[0] == 'T' })
	}
	g.r.Shuffle(len(fs), func(i, j int) { fs[i], fs[j] = fs[j], fs[i] })
	if len(fs) == 0 {
		return ""
	}
	return " " + strings.Join(fs, " ")
}

// meta writes one meta command.
func (g *gen) meta(b *strings.Builder) {
	key, bin := g.textKey(), g.chance(0.2)
	if bin {
		key = g.binKey()
	}
	bf := ""
	if bin {
		bf = " b"
	}
	switch g.r.IntN(4) {
	case 0:
		pool := "vfcstkOqhlTNR"
		if bin {
			// no N with a base64 key: memcached's vivified item forgets
			// the key was binary, and echoes its raw bytes (see "mg N
			// with b" in docs/memcached.md)
			pool = "vfcstkOqhlTR"
		}
		// not s: whether an incr that shortens a number pads it depends
		// on memcached's references to the item, which a reply still
		// being sent holds (see "incr in place" in docs/memcached.md); a
		// value's length is compared unpadded instead
		pool = strings.ReplaceAll(pool, "s", "")
		if g.udp {
			// nor h: whether it stays fetched depends on the same
			pool = strings.ReplaceAll(pool, "h", "")
		}
		fs := g.metaFlags(pool, g.r.IntN(6))
		if strings.Contains(fs, " T") || strings.Contains(fs, " N") {
			fs = strings.ReplaceAll(fs, " t", "") // see "mg t T" and "ma N" in docs/memcached.md
		}
		if strings.Contains(fs, " T") && strings.Contains(fs, " R") {
			// no R beside T: see "mg R with T" in docs/memcached.md
			f := slices.DeleteFunc(strings.Fields(fs), func(f string) bool { return f[0] == 'R' })
			fs = " " + strings.Join(f, " ")
		}

		fmt.Fprintf(b, "mg %s%s%s\r\n", key, bf, fs)
	case 1:
		v := g.value()
		fs := g.metaFlags("TFCMqkcOMI", g.r.IntN(5))
		fmt.Fprintf(b, "ms %s %d%s%s\r\n", key, len(v), bf, fs)
		b.Write(v)
		b.WriteString("\r\n")
	case 2:
		fmt.Fprintf(b, "md %s%s%s\r\n", key, bf, g.metaFlags("qCOkTI", g.r.IntN(3)))
	default:
		pool := "NJDMqvcktONT"
		if bin {
			pool = "JDMqvcktOT" // no N with a base64 key, as for mg
		}
		if g.udp {
			// no T over UDP: memcached applies it to the item it read,
			// which an incr replaces when a reply still holds it (see
			// "incr in place" in docs/memcached.md)
			pool = strings.ReplaceAll(pool, "T", "")
		}
		fs := g.metaFlags(pool, g.r.IntN(6))
		if strings.Contains(fs, " T") {
			fs = strings.ReplaceAll(fs, " t", "") // see "mg t T" in docs/memcached.md: ma walks its flags alike
		}
		if strings.Contains(fs, " N") {
			// memcached answers a q that creates the item, and its t
			// depends on where N stands: see "ma N" in
			// docs/memcached.md
			fs = strings.ReplaceAll(strings.ReplaceAll(fs, " q", ""), " t", "")
		}
		fmt.Fprintf(b, "ma %s%s%s\r\n", key, bf, fs)
	}
}

// malformed writes a line memcached refuses (or a mangled one).
func (g *gen) malformed(b *strings.Builder) {
	switch g.r.IntN(8) {
	case 0:
		b.WriteString(g.pick("bogus\r\n", "\r\n", "GET k0\r\n", "get\r\n", "gets\r\n", "set k0 0 0\r\n", "delete\r\n",
			"incr k0\r\n", "touch k0\r\n", "mg\r\n", "ms k0\r\n", "ms k0 x\r\n", "gat\r\n", "gat 10\r\n", "z\r\n"))
	case 1:
		fmt.Fprintf(b, "%s %s%s\r\n", g.pick("incr", "decr"), g.textKey(), g.pick(" noreply", " x noreply", " 1 2 3", ""))
	case 2:
		fmt.Fprintf(b, "set %s\x00x 0 0 1\r\nx\r\n", g.textKey())
	case 3:
		fmt.Fprintf(b, "delete %s %s\r\n", g.textKey(), g.pick("0", "5", "noreply", "0 noreply", "0 5", "x y z"))
	case 4:
		fmt.Fprintf(b, "verbosity %s\r\n", g.pick("0", "x", "0 noreply", "noreply", "", "0 1 2"))
	case 5:
		fmt.Fprintf(b, "flush_all%s\r\n", g.pick("", " noreply", " 0", " x", " 0 noreply", " 1 2 3"))
	case 6:
		fmt.Fprintf(b, "%s %s %s%s\r\n", g.pick("incr", "decr", "touch"), g.textKey(), g.num(), g.noreply())
	default:
		b.WriteString(g.pick("version\r\n", "version x y\r\n", "mn\r\n", "mz k0\r\n"))
	}
}

// command writes one command.
func (g *gen) command(b *strings.Builder) {
	switch n := g.r.IntN(20); {
	case n < 5:
		g.storage(b)
	case n < 8:
		fmt.Fprintf(b, "%s %s", g.pick("get", "gets", "get", "gets"), g.textKey())
		for range g.r.IntN(3) {
			b.WriteString(" " + g.textKey())
		}
		b.WriteString("\r\n")
	case n < 9:
		fmt.Fprintf(b, "%s %s %s\r\n", g.pick("gat", "gats"), g.exptime(), g.textKey())
	case n < 10:
		fmt.Fprintf(b, "%s %s %s%s\r\n", g.pick("incr", "decr"), g.textKey(), g.num(), g.noreply())
	case n < 11:
		fmt.Fprintf(b, "touch %s %s%s\r\n", g.textKey(), g.exptime(), g.noreply())
	case n < 12:
		fmt.Fprintf(b, "delete %s%s\r\n", g.textKey(), g.noreply())
	case n < 17 || g.udp:
		// Over UDP nothing malformed: memcached keeps a connection's
		// state from one datagram to the next (docs/memcached.md, "every
		// UDP datagram stands alone"), so after a malformed one its
		// answers depend on what came before, across seeds too.
		g.meta(b)
	default:
		g.malformed(b)
	}
}

// step is what is sent at once over TCP: one to four commands, pipelined,
// or alone one that closes the connection (memcached then also drops the
// replies to earlier commands of the same read, depending on timing).
func (g *gen) step() string {
	var b strings.Builder
	if !g.udp && g.chance(0.01) {
		// alone too: a get of a key too long (memcached drops the replies
		// queued before it, see docs/memcached.md)
		return g.pick("quit\r\n", "GET / HTTP/1.1\r\n", "x /y HTTP/1.0\r\n", strings.Repeat("z", 3000)+"\r\n",
			"get k0 "+strings.Repeat("k", 251)+"\r\n", "set "+strings.Repeat("k", 251)+" 0 0 1\r\nx\r\n")
	}
	n := 1
	if !g.udp {
		n += g.r.IntN(4)
	}
	for i := range n {
		for {
			var c strings.Builder
			g.command(&c)
			// incr, decr and ma only first: see "incr in place" in
			// docs/memcached.md
			if i == 0 || !isArith(c.String()) {
				b.WriteString(c.String())
				break
			}
		}
	}
	return b.String()
}

func isArith(cmd string) bool {
	return strings.HasPrefix(cmd, "incr ") || strings.HasPrefix(cmd, "decr ") || strings.HasPrefix(cmd, "ma ")
}

// casOrder replaces each CAS a server shows by the order in which it first
// showed it (0 stays 0).
type casOrder map[string]int

var fuzzCAS = regexp.MustCompile(`(?m)^(VALUE [^ \r\n]+ \d+ \d+ )(\d+)\r$|(?m)^((?:VA \d+|HD|EN|NS|EX|NF)(?: [^\r\n]*)?)\r$`)

// paddedNumber is a value that an in-place incr or decr left as digits
// and spaces: memcached pads a shorter number with spaces only while no
// other reference holds the item (its refcount is 2), else it writes a
// new, unpadded item: which one depends on its internals (a reply still
// queued, a UDP response not yet released), not on the commands. Both
// servers' values are compared without the padding (docs/memcached.md,
// "incr in place").
var paddedNumber = regexp.MustCompile(`(?m)^(VALUE [^ \r\n]+ \d+ |VA )(\d+)((?: [^\r\n]*)?\r\n)(\d+) +\r$`)

func unpad(s string) string {
	return paddedNumber.ReplaceAllStringFunc(s, func(v string) string {
		m := paddedNumber.FindStringSubmatch(v)
		return m[1] + strconv.Itoa(len(m[4])) + m[3] + m[4] + "\r"
	})
}

func (o casOrder) normalise(s string) string {
	s = unpad(s)
	id := func(v string) string {
		if v == "0" {
			return "0"
		}
		if _, ok := o[v]; !ok {
			o[v] = len(o) + 1
		}
		return "#" + strconv.Itoa(o[v])
	}
	return fuzzCAS.ReplaceAllStringFunc(s, func(line string) string {
		m := fuzzCAS.FindStringSubmatch(line)
		if m[1] != "" {
			return m[1] + id(m[2]) + "\r"
		}
		f := strings.Split(m[3], " ")
		for i := 1; i < len(f); i++ {
			if len(f[i]) > 1 && (f[i][0] == 'c' || f[i][0] == 'l') {
				if _, err := strconv.ParseUint(f[i][1:], 10, 64); err == nil {
					if f[i][0] == 'l' {
						f[i] = "l?"
					} else {
						f[i] = "c" + id(f[i][1:])
					}
				}
			}
		}
		return strings.Join(f, " ") + "\r"
	})
}

func TestDifferentialFuzzTCP(t *testing.T) {
	first, budget, capped := fuzzBudget(t)
	p := newPair(t)
	deadline := time.Now().Add(budget * 2 / 3)
	seeds, fresh := 0, 0
	for seed := first; seeds == 0 || time.Now().Before(deadline) && (!capped || seeds < fuzzSeedsTCP); seed++ {
		seeds++
		diff := fuzzTCP(t, p, seed)
		if diff == "" {
			continue
		}
		// memcached's answers now and then depend on its own threads'
		// timing (seed 28 after the 27 before it: a 20-digit number
		// "set" was non-numeric to its decr, about one run in 40; seed 28
		// alone never): a difference counts only if a fresh memcached and
		// a fresh mcserve show it again, as over UDP.
		fresh++
		p = newPair(t)
		if again := fuzzTCP(t, p, seed); again != "" {
			t.Fatal(again)
		}
		t.Logf("tcp seed %d differed after the seeds before it, not on a fresh memcached:\n%s", seed, diff)
	}
	t.Logf("%d seeds from %d (%d replayed on a fresh memcached)", seeds, first, fresh)
}

// fuzzTCP runs one seed's commands against both and describes the first
// difference ("" if none).
func fuzzTCP(t *testing.T, p *pair, seed uint64) string {
	g := &gen{r: rand.New(rand.NewPCG(seed, 18)), now: time.Now().Unix()}
	p.oracle.dial(t)
	p.ours.dial(t)
	oa, ob := casOrder{}, casOrder{}
	steps := []string{"flush_all\r\n"}
	for range 40 {
		steps = append(steps, g.step())
	}
	for i, step := range steps {
		a, closedA := p.oracle.exchange(t, step)
		b, closedB := p.ours.exchange(t, step)
		if na, nb := oa.normalise(a), ob.normalise(b); !fuzzSame(na, nb) {
			var seq strings.Builder
			for _, s := range steps[:i+1] {
				fmt.Fprintf(&seq, "\t%q\n", trunc(s))
			}
			return fmt.Sprintf("seed %d (REBOUND_FUZZ_SEED=%d REBOUND_FUZZ_TIME=0), step %d of:\n%s memcached: %q\n mcserve:   %q\n normalised:\n memcached: %q\n mcserve:   %q",
				seed, seed, i, seq.String(), trunc(a), trunc(b), trunc(na), trunc(nb))
		}
		if closedA {
			p.oracle.dial(t)
		}
		if closedB {
			p.ours.dial(t)
		}
	}
	return ""
}

// fuzzSame compares normalised replies, letting t differ by 1.
func fuzzSame(a, b string) bool {
	if a == b {
		return true
	}
	la, lb := strings.Split(a, "\n"), strings.Split(b, "\n")
	if len(la) != len(lb) {
		return false
	}
	for i := range la {
		if la[i] == lb[i] {
			continue
		}
		fa, fb := strings.Split(la[i], " "), strings.Split(lb[i], " ")
		if len(fa) != len(fb) || !metaFlag.MatchString(la[i]+"\n") {
			return false
		}
		for j := range fa {
			if fa[j] == fb[j] {
				continue
			}
			x, e1 := strconv.Atoi(strings.TrimSuffix(fa[j][1:], "\r"))
			y, e2 := strconv.Atoi(strings.TrimSuffix(fb[j][1:], "\r"))
			if j == 0 || fa[j][0] != 't' || fb[j][0] != 't' || e1 != nil || e2 != nil || x-y > 1 || y-x > 1 || (x < 0) != (y < 0) {
				return false
			}
		}
	}
	return true
}

// udpPeer sends one request per datagram and reads its reply up to the
// reply of a sentinel request (mn) sent right after it.
type udpPeer struct {
	conn    net.Conn
	id      uint16
	lastCAS string
}

func dialUDP(t *testing.T, addr string) *udpPeer {
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &udpPeer{conn: c}
}

func (p *udpPeer) send(t *testing.T, payload string) uint16 {
	p.id++
	var hdr [8]byte
	binary.BigEndian.PutUint16(hdr[0:], p.id)
	binary.BigEndian.PutUint16(hdr[4:], 1)
	if _, err := p.conn.Write(append(hdr[:], payload...)); err != nil {
		t.Fatal(err)
	}
	return p.id
}

// exchange returns the reply to req, its datagrams put in sequence order.
func (p *udpPeer) exchange(t *testing.T, req string) string {
	req = strings.ReplaceAll(req, "{CAS}", p.lastCAS)
	id := p.send(t, req)
	sentinel := p.send(t, "mn\r\n")
	parts := map[uint16][]byte{}
	buf := make([]byte, 65536)
	for {
		_ = p.conn.SetReadDeadline(time.Now().Add(3 * time.Second))
		n, err := p.conn.Read(buf)
		if err != nil {
			t.Fatalf("udp %q: %v", trunc(req), err)
		}
		if n < 8 {
			continue
		}
		rid, seq := binary.BigEndian.Uint16(buf[0:]), binary.BigEndian.Uint16(buf[2:])
		if rid == sentinel {
			break
		}
		if rid == id {
			parts[seq] = append([]byte(nil), buf[8:n]...)
		}
	}
	var out []byte
	for i := range uint16(len(parts)) {
		out = append(out, parts[i]...)
	}
	for _, m := range casRe.FindAllStringSubmatch(string(out), -1) {
		p.lastCAS = m[1] + m[2]
	}
	return string(out)
}

func TestDifferentialFuzzUDP(t *testing.T) {
	first, budget, capped := fuzzBudget(t)
	addr := testutil.StartMemcached(t)
	h := mcserve.New(mcserve.Config{Store: store.New(store.Config{}), Version: oracleVersion(t, addr), Threads: 1})
	oracle, ours := dialUDP(t, addr), dialUDP(t, serveUDP(t, h))
	deadline := time.Now().Add(budget / 3)
	seeds, fresh := 0, 0
	for seed := first; seeds == 0 || time.Now().Before(deadline) && (!capped || seeds < fuzzSeedsUDP); seed++ {
		seeds++
		diff := fuzzUDPSeed(t, oracle, ours, seed)
		if diff == "" {
			continue
		}
		// memcached keeps state in its UDP connection from one datagram
		// to the next, across seeds too (docs/memcached.md, "every UDP
		// datagram stands alone"): a difference counts only if a fresh
		// memcached and a fresh mcserve show it too.
		fresh++
		addr2 := testutil.StartMemcached(t)
		h2 := mcserve.New(mcserve.Config{Store: store.New(store.Config{}), Version: oracleVersion(t, addr2), Threads: 1})
		if again := fuzzUDPSeed(t, dialUDP(t, addr2), dialUDP(t, serveUDP(t, h2)), seed); again != "" {
			t.Fatal(again)
		}
		t.Logf("udp seed %d differed after the seeds before it, not on a fresh memcached", seed)
	}
	t.Logf("%d seeds from %d (%d replayed on a fresh memcached)", seeds, first, fresh)
}

// fuzzUDPSeed runs one seed's datagrams against both and describes the
// first difference ("" if none).
func fuzzUDPSeed(t *testing.T, oracle, ours *udpPeer, seed uint64) string {
	g := &gen{r: rand.New(rand.NewPCG(seed, 18)), udp: true, now: time.Now().Unix()}
	oa, ob := casOrder{}, casOrder{}
	steps := []string{"flush_all\r\n"}
	for range 40 {
		steps = append(steps, g.step())
	}
	for i, step := range steps {
		a, b := oracle.exchange(t, step), ours.exchange(t, step)
		if a == "ERROR\r\n" && b == "" {
			continue // over UDP an unknown command is not answered: see docs/memcached.md
		}
		if !fuzzSame(oa.normalise(a), ob.normalise(b)) {
			var seq strings.Builder
			for _, s := range steps[:i+1] {
				fmt.Fprintf(&seq, "\t%q\n", trunc(s))
			}
			return fmt.Sprintf("udp seed %d (REBOUND_FUZZ_SEED=%d REBOUND_FUZZ_TIME=0), step %d of:\n%s memcached: %q\n mcserve:   %q",
				seed, seed, i, seq.String(), trunc(a), trunc(b))
		}
	}
	return ""
}
