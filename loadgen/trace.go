package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// Sizes is a range of value sizes in bytes, both ends included.
type Sizes struct{ Min, Max int }

// ParseSizes reads "MIN-MAX" or "N" (bytes).
func ParseSizes(s string) (Sizes, error) {
	lo, hi, found := strings.Cut(s, "-")
	if !found {
		hi = lo
	}
	a, err1 := strconv.Atoi(strings.TrimSpace(lo))
	b, err2 := strconv.Atoi(strings.TrimSpace(hi))
	if err := errors.Join(err1, err2); err != nil || a < 1 || b < a {
		return Sizes{}, fmt.Errorf("value sizes %q: want MIN-MAX in bytes, 1 <= MIN <= MAX", s)
	}
	return Sizes{a, b}, nil
}

func (s Sizes) String() string { return fmt.Sprintf("%d-%d", s.Min, s.Max) }

// TraceConfig describes a trace replay: the cache-aside pattern (get; on a
// miss, set) over a seeded Zipf distribution of keys, in memcached's text
// protocol over one pipelined TCP connection, in three phases:
//
//   - warm-up: WarmupOps gets from an empty cache, keys of era 0 with
//     values of Small sizes;
//   - steady: Ops more gets of the same distribution;
//   - shift: Ops gets of a new key space (era 1) whose values have Large
//     sizes, as when an application starts caching something else.
//
// The sequence of requests depends on the configuration alone, never on
// timing: the trace goes in batches of Batch gets, then the sets of that
// batch's misses, each batch read back whole before the next goes out. Two
// servers given the same configuration see the same requests in the same
// order (up to the sets, which follow each server's own misses).
type TraceConfig struct {
	Target string
	TLS    *tls.Config // TLS on the connection (memcached -Z, rebound --tls-cert)
	// Keys is the size of each era's key space (default 1,000,000); for a
	// meaningful hit ratio, more than the server's memory holds.
	Keys      int
	KeySize   int     // key bytes (default 32)
	Zipf      float64 // the Zipf exponent, 0 < Zipf < 1 (default 0.99)
	Seed      uint64  // the seed of the key sequence and of the value sizes
	WarmupOps int     // gets of the warm-up phase (default Ops)
	Ops       int     // gets of the steady and of the shift phase (default 300,000)
	Small     Sizes   // value sizes before the shift (default 64-256)
	Large     Sizes   // value sizes after the shift (default 1024-4096)
	Batch     int     // gets per pipelined batch (default 256)
	// Check: every Check-th set is followed at once, on the same
	// connection, by a get of its key (not counted in the hit ratio),
	// which must hit unless the set was not acknowledged or the item was
	// evicted (default 16; negative: no read-backs).
	Check int
	// ServerPID, when set, is read for VmRSS and VmHWM after each phase.
	ServerPID int
	Timeout   time.Duration // a batch unanswered this long fails the run (default 10s)
	// Phase, when set, is called with each phase's result as it ends.
	Phase func(TracePhase)
}

// ServerStats are the counters of memcached's 'stats' a trace reports.
type ServerStats struct {
	Version       string `json:"version"`
	CurrItems     uint64 `json:"curr_items"`
	TotalItems    uint64 `json:"total_items"`
	Bytes         uint64 `json:"bytes"`
	LimitMaxbytes uint64 `json:"limit_maxbytes"`
	Evictions     uint64 `json:"evictions"`
}

// ProcMem is a process's memory from /proc/PID/status, in bytes.
type ProcMem struct {
	RSS uint64 `json:"rss"` // VmRSS
	HWM uint64 `json:"hwm"` // VmHWM: the peak RSS
}

// TracePhase is what one phase of a trace saw.
type TracePhase struct {
	Name     string  `json:"name"`
	Gets     int64   `json:"gets"`
	Hits     int64   `json:"hits"`
	HitRatio float64 `json:"hit_ratio"`
	Sets     int64   `json:"sets"`
	// NotStored counts sets answered with anything but STORED (memcached:
	// SERVER_ERROR out of memory storing object); FirstNotStored is the
	// first such answer.
	NotStored      int64  `json:"not_stored"`
	FirstNotStored string `json:"first_not_stored,omitempty"`
	// Checked counts the read-backs of acknowledged sets; Lost those that
	// missed, which the phase's evictions must account for.
	Checked int64 `json:"checked"`
	Lost    int64 `json:"lost"`
	// Bad counts hits whose value was not what was set (length or bytes).
	Bad       int64         `json:"bad"`
	Evictions uint64        `json:"evictions"` // the server's evictions during the phase
	Stats     ServerStats   `json:"stats"`     // at the end of the phase
	Mem       *ProcMem      `json:"mem,omitempty"`
	Elapsed   time.Duration `json:"elapsed_ns"`
	OpsPerSec float64       `json:"ops_per_s"` // requests (gets, sets, read-backs) per second
}

// TraceResult is a whole trace replay.
type TraceResult struct {
	Phases []TracePhase `json:"phases"`
}

func (c *TraceConfig) defaults() error {
	if c.Keys == 0 {
		c.Keys = 1_000_000
	}
	if c.KeySize == 0 {
		c.KeySize = 32
	}
	if c.Zipf == 0 {
		c.Zipf = 0.99
	}
	if c.Ops == 0 {
		c.Ops = 300_000
	}
	if c.WarmupOps == 0 {
		c.WarmupOps = c.Ops
	}
	if c.Small == (Sizes{}) {
		c.Small = Sizes{64, 256}
	}
	if c.Large == (Sizes{}) {
		c.Large = Sizes{1024, 4096}
	}
	if c.Batch == 0 {
		c.Batch = 256
	}
	if c.Check == 0 {
		c.Check = 16
	}
	if c.Timeout == 0 {
		c.Timeout = 10 * time.Second
	}
	switch {
	case c.Keys < 1 || c.Keys > 1<<31-1:
		return fmt.Errorf("trace: keys %d: want 1 to 2^31-1", c.Keys)
	case c.KeySize < len(traceKeyPrefix)+len(strconv.Itoa(c.Keys-1)) || c.KeySize > 250:
		return fmt.Errorf("trace: key size %d: too small for %d keys (or above memcached's 250)", c.KeySize, c.Keys)
	case !(c.Zipf > 0 && c.Zipf < 1):
		return fmt.Errorf("trace: zipf %g: want an exponent between 0 and 1 (exclusive)", c.Zipf)
	case c.Ops < 0 || c.WarmupOps < 0 || c.Ops > 1e9 || c.WarmupOps > 1e9:
		return fmt.Errorf("trace: ops %d, warm-up %d: want 0 to 1e9", c.Ops, c.WarmupOps)
	case c.Small.Min < 1 || c.Small.Max < c.Small.Min || c.Large.Min < 1 || c.Large.Max < c.Large.Min || c.Large.Max > 1<<30:
		return fmt.Errorf("trace: value sizes %v and %v: want 1 <= MIN <= MAX", c.Small, c.Large)
	case c.Batch < 1 || c.Batch > 1<<16:
		return fmt.Errorf("trace: batch %d: want 1 to 65536", c.Batch)
	}
	return nil
}

// traceKeyPrefix begins every trace key: "t", the era, ':'.
const traceKeyPrefix = "t0:"

// Trace replays the trace of cfg against its target and returns each
// phase's hit ratio. A reply out of protocol, a broken connection or a
// batch unanswered within Timeout ends it with an error (and the phases
// done so far).
func Trace(ctx context.Context, cfg TraceConfig) (*TraceResult, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	c, err := dialMC(ctx, cfg.Target, cfg.TLS, cfg.Timeout)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	zipf := newZipf(cfg.Keys, cfg.Zipf)
	rng := rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))
	maxVal := max(cfg.Small.Max, cfg.Large.Max)
	r := &replayer{cfg: cfg, c: c, pattern: valuePattern(maxVal), data: make([]byte, maxVal+2),
		keys: make([]int32, cfg.Batch), hit: make([]bool, cfg.Batch)}
	before, err := c.stats()
	if err != nil {
		return nil, err
	}
	res := &TraceResult{}
	phases := []struct {
		name string
		ops  int
		era  int
	}{{"warm-up", cfg.WarmupOps, 0}, {"steady", cfg.Ops, 0}, {"shift", cfg.Ops, 1}}
	for _, ph := range phases {
		p := TracePhase{Name: ph.name}
		sizes := cfg.Small
		if ph.era == 1 {
			sizes = cfg.Large
		}
		start := time.Now()
		for done := 0; done < ph.ops; {
			if err := ctx.Err(); err != nil {
				return res, err
			}
			n := min(cfg.Batch, ph.ops-done)
			for i := range n {
				r.keys[i] = int32(zipf.next(rng))
			}
			if err := r.batch(&p, r.keys[:n], ph.era, sizes); err != nil {
				return res, fmt.Errorf("trace: %s phase: %w", ph.name, err)
			}
			done += n
		}
		p.Elapsed = time.Since(start)
		if p.Elapsed > 0 {
			p.OpsPerSec = float64(p.Gets+p.Sets+p.Checked) / p.Elapsed.Seconds()
		}
		if p.Gets > 0 {
			p.HitRatio = float64(p.Hits) / float64(p.Gets)
		}
		if p.Stats, err = c.stats(); err != nil {
			return res, err
		}
		p.Evictions = p.Stats.Evictions - before.Evictions
		before = p.Stats
		if cfg.ServerPID > 0 {
			m, err := ReadProcMem(cfg.ServerPID)
			if err != nil {
				return res, err
			}
			p.Mem = &m
		}
		res.Phases = append(res.Phases, p)
		if cfg.Phase != nil {
			cfg.Phase(p)
		}
	}
	return res, nil
}

// replayer is the state of one trace on its connection.
type replayer struct {
	cfg     TraceConfig
	c       *mcConn
	pattern []byte // every value is a window of it (valuePattern)
	data    []byte // a reply's data block
	keys    []int32
	hit     []bool
	check   []bool // per set of the batch: read back
	key     []byte
	sets    int64 // sets so far, for the choice of read-backs
}

// batch sends the gets of keys, then a set for each miss (with its
// read-back where due), and reads every reply.
func (r *replayer) batch(p *TracePhase, keys []int32, era int, sizes Sizes) error {
	c := r.c
	c.deadline()
	for _, k := range keys {
		r.key = traceKey(r.key[:0], era, int(k), r.cfg.KeySize)
		c.get(r.key)
	}
	if err := c.w.Flush(); err != nil {
		return err
	}
	for i, k := range keys {
		r.key = traceKey(r.key[:0], era, int(k), r.cfg.KeySize)
		hit, good, err := c.readGet(r.key, r.data, r.expect(era, int(k), sizes))
		if err != nil {
			return err
		}
		r.hit[i] = hit
		p.Gets++
		if hit {
			p.Hits++
			if !good {
				p.Bad++
			}
		}
	}
	// The sets of the misses, each read-back right behind its set.
	check := r.check[:0]
	for i, k := range keys {
		if r.hit[i] {
			continue
		}
		r.key = traceKey(r.key[:0], era, int(k), r.cfg.KeySize)
		c.set(r.key, r.expect(era, int(k), sizes))
		r.sets++
		back := r.cfg.Check > 0 && r.sets%int64(r.cfg.Check) == 0
		if back {
			c.get(r.key)
		}
		check = append(check, back)
	}
	r.check = check
	if len(check) == 0 {
		return nil
	}
	if err := c.w.Flush(); err != nil {
		return err
	}
	j := 0
	for i, k := range keys {
		if r.hit[i] {
			continue
		}
		stored, line, err := c.readSet()
		if err != nil {
			return err
		}
		p.Sets++
		if !stored {
			p.NotStored++
			if p.FirstNotStored == "" {
				p.FirstNotStored = line
			}
		}
		if check[j] {
			r.key = traceKey(r.key[:0], era, int(k), r.cfg.KeySize)
			hit, good, err := c.readGet(r.key, r.data, r.expect(era, int(k), sizes))
			if err != nil {
				return err
			}
			if stored {
				p.Checked++
				if !hit {
					p.Lost++
				}
			}
			if hit && !good {
				p.Bad++
			}
		}
		j++
	}
	return nil
}

// expect is the value key k of era has in the trace: its size is drawn
// from sizes by a hash of the seed, the era and k (so that it is the same
// in every run and on every server), its bytes a window of the pattern
// that begins at k mod 26.
func (r *replayer) expect(era, k int, sizes Sizes) []byte {
	h := splitmix(r.cfg.Seed ^ uint64(era)<<40 ^ uint64(k))
	n := sizes.Min + int(h%uint64(sizes.Max-sizes.Min+1))
	off := k % 26
	return r.pattern[off : off+n]
}

// valuePattern is the alphabet repeated: a value of n bytes for key k is
// pattern[k%26:][:n], so a value handed back under the wrong key or cut
// short shows.
func valuePattern(n int) []byte {
	b := make([]byte, n+26)
	for i := range b {
		b[i] = byte('a' + i%26)
	}
	return b
}

func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// traceKey appends key k of era: "t", the era, ':' and k zero-padded to
// size bytes in all.
func traceKey(b []byte, era, k, size int) []byte {
	b = append(b, 't', byte('0'+era%10), ':')
	start := len(b)
	for range size - len(traceKeyPrefix) {
		b = append(b, '0')
	}
	for i := len(b) - 1; i >= start && k > 0; i-- {
		b[i] = byte('0' + k%10)
		k /= 10
	}
	return b
}

// zipf draws ranks 0..n-1 with probability proportional to 1/(rank+1)^theta
// for 0 < theta < 1, by the method of Gray et al., "Quickly Generating
// Billion-Record Synthetic Databases" (SIGMOD 1994), as YCSB does:
// math/rand's Zipf wants an exponent above 1.
type zipf struct {
	n                        int
	theta, alpha, zetan, eta float64
	half                     float64 // 1 + 0.5^theta
}

func newZipf(n int, theta float64) *zipf {
	zetan := 0.0
	for i := 1; i <= n; i++ {
		zetan += 1 / math.Pow(float64(i), theta)
	}
	zeta2 := 1 + 1/math.Pow(2, theta)
	return &zipf{n: n, theta: theta, alpha: 1 / (1 - theta), zetan: zetan,
		eta:  (1 - math.Pow(2/float64(n), 1-theta)) / (1 - zeta2/zetan),
		half: 1 + math.Pow(0.5, theta)}
}

func (z *zipf) next(rng *rand.Rand) int {
	u := rng.Float64()
	uz := u * z.zetan
	if uz < 1 {
		return 0
	}
	if uz < z.half && z.n > 1 {
		return 1
	}
	return min(z.n-1, int(float64(z.n)*math.Pow(z.eta*u-z.eta+1, z.alpha)))
}

// FillConfig describes a fill: Keys sets of ValueSize-byte values under
// distinct KeySize-byte keys, pipelined over one TCP connection.
type FillConfig struct {
	Target    string
	TLS       *tls.Config
	Keys      int           // sets (default 1,000,000)
	KeySize   int           // key bytes (default 32)
	ValueSize int           // value bytes (default 64)
	Batch     int           // sets per pipelined batch (default 256)
	ServerPID int           // when set, its VmRSS and VmHWM are read at the end
	Timeout   time.Duration // a batch unanswered this long fails the fill (default 10s)
}

// FillResult is what a fill left in the server.
type FillResult struct {
	Sets           int64         `json:"sets"`
	NotStored      int64         `json:"not_stored"`
	FirstNotStored string        `json:"first_not_stored,omitempty"`
	Stats          ServerStats   `json:"stats"`
	Mem            *ProcMem      `json:"mem,omitempty"`
	Elapsed        time.Duration `json:"elapsed_ns"`
	// RSSPerItem is Mem.RSS / Stats.CurrItems (0 without both).
	RSSPerItem float64 `json:"rss_per_item"`
}

// Fill stores cfg.Keys items and reports the server's item count, its
// evictions and, with ServerPID, its RSS: the density of a store.
func Fill(ctx context.Context, cfg FillConfig) (*FillResult, error) {
	if cfg.Keys == 0 {
		cfg.Keys = 1_000_000
	}
	if cfg.KeySize == 0 {
		cfg.KeySize = 32
	}
	if cfg.ValueSize == 0 {
		cfg.ValueSize = 64
	}
	if cfg.Batch == 0 {
		cfg.Batch = 256
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Keys < 1 || cfg.KeySize < len(traceKeyPrefix)+len(strconv.Itoa(cfg.Keys-1)) || cfg.KeySize > 250 ||
		cfg.ValueSize < 1 || cfg.ValueSize > 1<<30 || cfg.Batch < 1 {
		return nil, fmt.Errorf("fill: %d keys of %d bytes, values of %d, batches of %d: out of range", cfg.Keys, cfg.KeySize, cfg.ValueSize, cfg.Batch)
	}
	c, err := dialMC(ctx, cfg.Target, cfg.TLS, cfg.Timeout)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	pattern := valuePattern(cfg.ValueSize)
	res := &FillResult{}
	start := time.Now()
	var key []byte
	for done := 0; done < cfg.Keys; {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		n := min(cfg.Batch, cfg.Keys-done)
		c.deadline()
		for k := done; k < done+n; k++ {
			key = traceKey(key[:0], 9, k, cfg.KeySize)
			c.set(key, pattern[k%26:][:cfg.ValueSize])
		}
		if err := c.w.Flush(); err != nil {
			return res, err
		}
		for range n {
			stored, line, err := c.readSet()
			if err != nil {
				return res, fmt.Errorf("fill: %w", err)
			}
			res.Sets++
			if !stored {
				res.NotStored++
				if res.FirstNotStored == "" {
					res.FirstNotStored = line
				}
			}
		}
		done += n
	}
	res.Elapsed = time.Since(start)
	if res.Stats, err = c.stats(); err != nil {
		return res, err
	}
	if cfg.ServerPID > 0 {
		m, err := ReadProcMem(cfg.ServerPID)
		if err != nil {
			return res, err
		}
		res.Mem = &m
		if res.Stats.CurrItems > 0 {
			res.RSSPerItem = float64(m.RSS) / float64(res.Stats.CurrItems)
		}
	}
	return res, nil
}

// ReadProcMem reads VmRSS and VmHWM of process pid.
func ReadProcMem(pid int) (ProcMem, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return ProcMem{}, fmt.Errorf("server memory: %w", err)
	}
	var m ProcMem
	for _, line := range strings.Split(string(b), "\n") {
		name, v, ok := strings.Cut(line, ":")
		if !ok || (name != "VmRSS" && name != "VmHWM") {
			continue
		}
		f := strings.Fields(v) // "12345 kB"
		if len(f) != 2 || f[1] != "kB" {
			return ProcMem{}, fmt.Errorf("server memory: /proc/%d/status: %q", pid, line)
		}
		kb, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return ProcMem{}, fmt.Errorf("server memory: /proc/%d/status: %q", pid, line)
		}
		if name == "VmRSS" {
			m.RSS = kb << 10
		} else {
			m.HWM = kb << 10
		}
	}
	if m.RSS == 0 {
		return ProcMem{}, fmt.Errorf("server memory: no VmRSS for pid %d", pid)
	}
	return m, nil
}

// mcConn is one pipelined TCP connection speaking memcached's text
// protocol.
type mcConn struct {
	conn    net.Conn
	r       *bufio.Reader
	w       *bufio.Writer
	timeout time.Duration
	num     []byte
}

func dialMC(ctx context.Context, target string, conf *tls.Config, timeout time.Duration) (*mcConn, error) {
	d := net.Dialer{Timeout: timeout}
	var conn net.Conn
	var err error
	if conf != nil {
		td := tls.Dialer{NetDialer: &d, Config: conf}
		conn, err = td.DialContext(ctx, "tcp", target)
	} else {
		conn, err = d.DialContext(ctx, "tcp", target)
	}
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", target, err)
	}
	return &mcConn{conn: conn, r: bufio.NewReaderSize(conn, 256<<10), w: bufio.NewWriterSize(conn, 256<<10), timeout: timeout}, nil
}

func (c *mcConn) Close() error { return c.conn.Close() }

// deadline gives the next exchange Timeout to complete.
func (c *mcConn) deadline() { _ = c.conn.SetDeadline(time.Now().Add(c.timeout)) }

func (c *mcConn) get(key []byte) {
	c.w.WriteString("get ")
	c.w.Write(key)
	c.w.WriteString("\r\n")
}

func (c *mcConn) set(key, value []byte) {
	c.w.WriteString("set ")
	c.w.Write(key)
	c.w.WriteString(" 0 0 ")
	c.num = strconv.AppendInt(c.num[:0], int64(len(value)), 10)
	c.w.Write(c.num)
	c.w.WriteString("\r\n")
	c.w.Write(value)
	c.w.WriteString("\r\n")
}

var errReply = errors.New("reply out of protocol")

// readGet reads the reply to a get of key: hit or miss, and for a hit
// whether the value is want (buf holds the data block).
func (c *mcConn) readGet(key, buf, want []byte) (hit, good bool, err error) {
	line, err := c.r.ReadSlice('\n')
	if err != nil {
		return false, false, fmt.Errorf("get %s: %w", key, err)
	}
	if string(line) == "END\r\n" {
		return false, false, nil
	}
	rest, ok := bytes.CutPrefix(line, []byte("VALUE "))
	if !ok {
		return false, false, fmt.Errorf("get %s: %q: %w", key, line, errReply)
	}
	f := bytes.Fields(rest) // key flags bytes [cas]
	if len(f) < 3 {
		return false, false, fmt.Errorf("get %s: %q: %w", key, line, errReply)
	}
	n, err := strconv.Atoi(string(f[2]))
	if err != nil || n < 0 || n+2 > len(buf) {
		return false, false, fmt.Errorf("get %s: %q: length out of range: %w", key, line, errReply)
	}
	good = bytes.Equal(f[0], key)
	if _, err := io.ReadFull(c.r, buf[:n+2]); err != nil {
		return false, false, fmt.Errorf("get %s: data: %w", key, err)
	}
	if string(buf[n:n+2]) != "\r\n" {
		return false, false, fmt.Errorf("get %s: data block not ended by CRLF: %w", key, errReply)
	}
	good = good && bytes.Equal(buf[:n], want)
	if line, err = c.r.ReadSlice('\n'); err != nil {
		return false, false, fmt.Errorf("get %s: %w", key, err)
	}
	if string(line) != "END\r\n" {
		return false, false, fmt.Errorf("get %s: %q after the value: %w", key, line, errReply)
	}
	return true, good, nil
}

// readSet reads the reply to a set: STORED, or the line of a refusal
// (SERVER_ERROR, NOT_STORED).
func (c *mcConn) readSet() (stored bool, refusal string, err error) {
	line, err := c.r.ReadSlice('\n')
	if err != nil {
		return false, "", fmt.Errorf("set: %w", err)
	}
	s := strings.TrimRight(string(line), "\r\n")
	switch {
	case s == "STORED":
		return true, "", nil
	case strings.HasPrefix(s, "SERVER_ERROR"), s == "NOT_STORED":
		return false, s, nil
	}
	return false, "", fmt.Errorf("set: %q: %w", line, errReply)
}

// stats asks for 'stats' and reads the counters a trace reports.
func (c *mcConn) stats() (ServerStats, error) {
	c.deadline()
	c.w.WriteString("stats\r\n")
	if err := c.w.Flush(); err != nil {
		return ServerStats{}, err
	}
	var s ServerStats
	seen := 0
	for {
		line, err := c.r.ReadSlice('\n')
		if err != nil {
			return s, fmt.Errorf("stats: %w", err)
		}
		f := strings.Fields(string(line))
		if len(f) == 1 && f[0] == "END" {
			break
		}
		if len(f) != 3 || f[0] != "STAT" {
			return s, fmt.Errorf("stats: %q: %w", line, errReply)
		}
		u := func(dst *uint64) {
			if v, err := strconv.ParseUint(f[2], 10, 64); err == nil {
				*dst = v
				seen++
			}
		}
		switch f[1] {
		case "version":
			s.Version = f[2]
		case "curr_items":
			u(&s.CurrItems)
		case "total_items":
			u(&s.TotalItems)
		case "bytes":
			u(&s.Bytes)
		case "limit_maxbytes":
			u(&s.LimitMaxbytes)
		case "evictions":
			u(&s.Evictions)
		}
	}
	if seen < 5 {
		return s, fmt.Errorf("stats: curr_items, total_items, bytes, limit_maxbytes or evictions missing")
	}
	return s, nil
}
