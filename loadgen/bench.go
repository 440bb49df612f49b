package loadgen

import (
	"bufio"
	"cmp"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
	"golang.org/x/sys/unix"

	"github.com/rebound-net/rebound/client"
	"github.com/rebound-net/rebound/codec/memcache"
	"github.com/rebound-net/rebound/codec/rebound"
	"github.com/rebound-net/rebound/internal/cpuset"
	"github.com/rebound-net/rebound/internal/udpbatch"
)

// BenchConfig describes a load test. Every loop is bounded by Duration (and
// Warmup) and stops by itself.
type BenchConfig struct {
	Target string
	TCP    bool
	// TLS, with TCP, wraps every connection in TLS with this client
	// configuration (a server with --tls-cert, memcached -Z). The Rebound
	// protocol's preload (for GETs) goes through package client, which
	// has no TLS: with TLS, bench PINGs or memcached's protocol.
	TLS *tls.Config
	// Protocol is what the requests speak: Rebound (the default) or
	// Memcache (memcached's text protocol; over UDP and AF_XDP behind its
	// 8-byte frame header).
	Protocol  Protocol
	Mix       []OpShare     // operations and their shares; default PING 100% (GET 100% with Memcache)
	Keys      int           // key space for GET/SET/DEL (default 1000)
	KeySize   int           // key bytes: "key:" and the key number, zero-padded (default 12; 32 with Memcache)
	ValueSize int           // SET value bytes (default 32)
	Payload   int           // PING message size: header + payload bytes (default 64)
	Window    int           // requests in flight per flow, closed loop (default 32)
	Rate      float64       // total requests/s: open loop when > 0
	Flows     int           // UDP sockets or TCP connections, one goroutine each (default 1)
	Duration  time.Duration // measured time (default 10s)
	Warmup    time.Duration // unmeasured time before (default 1s)
	Timeout   time.Duration // a request unanswered this long is lost (default 1s)
	Preload   bool          // SET every key once before a run with GETs (default on via cmd)
	// Pace, in open loop: a flow wakes to send no sooner than Pace
	// after the last request it sent was due (default DefaultPace), so
	// requests due closer together leave together, the later ones up to
	// Pace late (their lag). A wake-up costs CPU; see Pacing in pace.go.
	Pace time.Duration
	// XDP, when set, sends through an AF_XDP socket on the load
	// generator's interface instead of a UDP socket (root only).
	XDP *XDPLoad
	// CPUs, when set, pins flow i's goroutine (and OS thread) to CPU
	// CPUs[i % len(CPUs)].
	CPUs []int
	// Tick, when set, is called about every second with the last second's
	// figures (the live line).
	Tick func(Tick)
}

// OpShare is one operation of a mix and its weight.
type OpShare struct {
	Op     rebound.Op
	Weight int
}

// Protocol is the wire protocol of a bench.
type Protocol int

const (
	Rebound  Protocol = iota // Rebound's binary protocol (codec/rebound)
	Memcache                 // memcached's text protocol (get and set)
)

func (p Protocol) String() string {
	if p == Memcache {
		return "memcache"
	}
	return "rebound"
}

// ParseMix reads "ping", "get", "set", "del" or a mix like
// "get:90,set:10".
func ParseMix(s string) ([]OpShare, error) {
	ops := map[string]rebound.Op{"ping": rebound.OpPing, "get": rebound.OpGet, "set": rebound.OpSet, "del": rebound.OpDel}
	s = strings.TrimPrefix(strings.TrimPrefix(s, "mix="), "mix:")
	var mix []OpShare
	for _, part := range strings.Split(s, ",") {
		name, w, hasW := strings.Cut(strings.TrimSpace(part), ":")
		op, ok := ops[strings.ToLower(name)]
		if !ok {
			return nil, fmt.Errorf("op %q: want ping, get, set, del or a mix like get:90,set:10", name)
		}
		weight := 100
		if hasW {
			n, err := strconv.Atoi(w)
			if err != nil || n < 0 {
				return nil, fmt.Errorf("weight %q of %s: want a whole number", w, name)
			}
			weight = n
		}
		mix = append(mix, OpShare{op, weight})
	}
	return mix, nil
}

// Tick is one second of a running bench.
type Tick struct {
	Elapsed  time.Duration
	Rate     float64 // replies per second
	P50, P99 time.Duration
	Errors   uint64 // replies with an error status (memcache: bad replies), so far
	Lost     uint64 // requests lost (timed out), so far
}

// BenchResult is the outcome of a bench run.
type BenchResult struct {
	Sent, Received uint64
	Lost           uint64            // no reply within Timeout, or none at the end
	Errors         map[string]uint64 // replies by non-OK status
	Truncated      uint64
	// GET replies that found their key, that did not, and replies that
	// were not what the request asked for (a memcache reply with the
	// wrong key, length or shape; counted in Received too).
	Hits, Misses, Bad uint64
	Elapsed           time.Duration
	Throughput        float64 // replies per second
	// Hist holds every reply's latency, in nanoseconds: in open loop
	// from the time its request was due (the schedule's), so that a
	// server that stalls, or a load generator that falls behind, shows
	// in it (coordinated omission accounted for, as wrk2 does).
	Hist *hdrhistogram.Histogram
	// Lag holds how late each request left against its schedule (the
	// actual send time minus the intended one), and Service the time
	// from the actual send to the reply: latency is lag plus service
	// time. Nanoseconds; in closed loop every lag is 0.
	Lag, Service *hdrhistogram.Histogram
	// Queues, with XDP, is what each queue's socket carried.
	Queues []QueueResult
}

// Percentile returns a latency percentile (0-100).
func (r *BenchResult) Percentile(p float64) time.Duration {
	return time.Duration(r.Hist.ValueAtPercentile(p)) * time.Microsecond / 1000
}

// LagPercentile returns a percentile (0-100) of the schedule's lag.
func (r *BenchResult) LagPercentile(p float64) time.Duration {
	return time.Duration(r.Lag.ValueAtPercentile(p))
}

// ServicePercentile returns a percentile (0-100) of the service time.
func (r *BenchResult) ServicePercentile(p float64) time.Duration {
	return time.Duration(r.Service.ValueAtPercentile(p))
}

func (c *BenchConfig) defaults() error {
	if c.Target == "" {
		return errors.New("bench: no target")
	}
	if len(c.Mix) == 0 {
		c.Mix = []OpShare{{rebound.OpPing, 100}}
		if c.Protocol == Memcache {
			c.Mix = []OpShare{{rebound.OpGet, 100}}
		}
	}
	if c.Protocol == Memcache {
		for _, m := range c.Mix {
			if m.Op != rebound.OpGet && m.Op != rebound.OpSet {
				return fmt.Errorf("bench: memcache: op %s: the memcache bench sends get and set only", strings.ToLower(m.Op.String()))
			}
		}
	}
	total := 0
	for _, m := range c.Mix {
		total += m.Weight
	}
	if total == 0 {
		return errors.New("bench: the mix has no weight")
	}
	if c.Keys <= 0 {
		c.Keys = 1000
	}
	if c.KeySize == 0 {
		c.KeySize = 12
		if c.Protocol == Memcache {
			c.KeySize = 32
		}
	}
	if need := 4 + len(strconv.Itoa(c.Keys-1)); c.KeySize < need || c.KeySize > rebound.MaxKeyLen {
		return fmt.Errorf("bench: key size %d: %d keys need %d to %d bytes", c.KeySize, c.Keys, need, rebound.MaxKeyLen)
	}
	if c.ValueSize < 0 {
		return errors.New("bench: negative value size")
	}
	if c.ValueSize == 0 {
		c.ValueSize = 32
	}
	if c.Payload == 0 {
		c.Payload = 64
	}
	if c.Payload < rebound.HeaderLen || c.Payload > rebound.HeaderLen+rebound.MaxPayload {
		return fmt.Errorf("bench: payload %d: a message is 12 to 65547 bytes", c.Payload)
	}
	if c.Window <= 0 {
		c.Window = 32
	}
	if c.Pace <= 0 {
		c.Pace = DefaultPace
	}
	if c.Flows <= 0 {
		c.Flows = 1
		if c.XDP != nil {
			c.Flows = max(c.XDP.Queues, 1)
		}
	}
	for _, cpu := range c.CPUs {
		if cpu < 0 || cpu >= cpuset.MaxCPU {
			return fmt.Errorf("bench: CPU %d: out of range", cpu)
		}
	}
	if c.Duration <= 0 {
		c.Duration = 10 * time.Second
	}
	if c.Warmup < 0 {
		c.Warmup = 0
	}
	if c.Timeout <= 0 {
		c.Timeout = time.Second
	}
	if c.TLS != nil && (!c.TCP || c.XDP != nil) {
		return errors.New("bench: TLS goes over TCP only")
	}
	if c.Protocol == Memcache && !c.TCP && c.Window > maxMCWindow {
		return fmt.Errorf("bench: memcache over UDP: window %d: request ids are 16 bits, keep it under %d", c.Window, maxMCWindow)
	}
	return nil
}

// Bench runs a load test against a server and returns its figures.
func Bench(ctx context.Context, cfg BenchConfig) (*BenchResult, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	if cfg.Preload {
		load := preload
		if cfg.Protocol == Memcache {
			load = preloadMemcache
		}
		if err := load(ctx, cfg); err != nil {
			return nil, err
		}
	}
	var group *xdpGroup
	if cfg.XDP != nil {
		if err := checkXDP(cfg); err != nil {
			return nil, err
		}
		var err error
		if group, err = openXDPGroup(cfg); err != nil {
			return nil, err
		}
		defer group.Close()
	}
	flows := make([]*flow, cfg.Flows)
	for i := range flows {
		f, err := newFlow(ctx, cfg, i, group)
		if err != nil {
			for _, g := range flows[:i] {
				g.close()
			}
			return nil, err
		}
		flows[i] = f
	}
	if cfg.Rate > 0 && cfg.XDP == nil {
		// Open loop: every flow sleeps in ppoll on its own thread and
		// keeps its P meanwhile (see newPacer), so that a wake-up finds
		// one at once; one P more serves everything else. With fewer, a
		// flow that wakes waits for a P until the scheduler's monitor
		// takes one back from a sleeping flow: up to 10 ms, measured as
		// lag spikes of 9-12 ms with 3 flows on 2 Ps.
		if n := cfg.Flows + 1; runtime.GOMAXPROCS(0) < n {
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(n))
		}
	}
	measureFrom := time.Now().Add(cfg.Warmup)
	end := measureFrom.Add(cfg.Duration)
	var wg sync.WaitGroup
	for i, f := range flows {
		f.measureFrom, f.end = measureFrom, end
		wg.Add(1)
		go func() {
			defer wg.Done()
			if len(cfg.CPUs) > 0 {
				// Pinned: the goroutine ends locked, so the pinned
				// thread exits with it instead of running others.
				runtime.LockOSThread()
				if err := cpuset.Pin(cfg.CPUs[i%len(cfg.CPUs)]); err != nil {
					f.pinErr = err
					if group != nil {
						group.active.Add(-1) // the other queues need not wait for it
					}
					return
				}
			}
			f.run(ctx)
		}()
	}
	done := make(chan struct{})
	if cfg.Tick != nil {
		go tickLoop(flows, end, cfg.Tick, done)
	}
	wg.Wait()
	close(done)
	res := &BenchResult{Errors: map[string]uint64{}, Hist: newHist(), Lag: newHist(), Service: newHist()}
	var pinErr error
	for _, f := range flows {
		f.close()
		pinErr = cmp.Or(pinErr, f.pinErr)
		if f.xdp != nil {
			q := f.xdp.result()
			q.Sent, q.Received = f.sent.Load(), f.received.Load()
			res.Queues = append(res.Queues, q)
		}
		res.Sent += f.sent.Load()
		res.Received += f.received.Load()
		res.Lost += f.lost.Load()
		res.Truncated += f.truncated
		res.Hits += f.hits
		res.Misses += f.misses
		res.Bad += f.bad.Load()
		for st, n := range f.errs {
			if n > 0 {
				res.Errors[rebound.Status(st).String()] += n
			}
		}
		f.mu.Lock()
		res.Hist.Merge(f.hist)
		f.mu.Unlock()
		res.Lag.Merge(f.lag)
		res.Service.Merge(f.service)
	}
	res.Elapsed = cfg.Duration
	res.Throughput = float64(res.Hist.TotalCount()) / cfg.Duration.Seconds()
	if pinErr != nil {
		return nil, fmt.Errorf("bench: %w", pinErr)
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	return res, nil
}

func newHist() *hdrhistogram.Histogram {
	return hdrhistogram.New(1, int64(60*time.Second), 3) // nanoseconds, 3 digits
}

func tickLoop(flows []*flow, end time.Time, tick func(Tick), done chan struct{}) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	start := time.Now()
	for {
		select {
		case <-done:
			return
		case now := <-t.C:
			h := newHist()
			var errs, lost uint64
			for _, f := range flows {
				f.mu.Lock()
				h.Merge(f.window)
				f.window.Reset()
				f.mu.Unlock()
				errs += f.errCount.Load()
				lost += f.lost.Load()
			}
			if now.After(end) {
				return
			}
			tick(Tick{Elapsed: now.Sub(start), Rate: float64(h.TotalCount()), P50: time.Duration(h.ValueAtPercentile(50)),
				P99: time.Duration(h.ValueAtPercentile(99)), Errors: errs, Lost: lost})
		}
	}
}

func preload(ctx context.Context, cfg BenchConfig) error {
	need := false
	for _, m := range cfg.Mix {
		need = need || m.Op == rebound.OpGet
	}
	if !need {
		return nil
	}
	if cfg.TLS != nil {
		return errors.New("bench: GETs of the Rebound protocol need their keys stored first, and that preload has no TLS: bench PINGs, or memcached's protocol, over TLS")
	}
	c, err := client.Dial(ctx, cfg.Target, client.Options{TCP: true, Timeout: 2 * time.Second})
	if err != nil {
		return fmt.Errorf("bench: preload keys: %w", err)
	}
	defer c.Close()
	value := benchValue(cfg.ValueSize)
	for k := 0; k < cfg.Keys; k++ {
		if err := c.Set(ctx, appendKey(nil, k, cfg.KeySize), value, 0); err != nil {
			return fmt.Errorf("bench: preload key %d: %w", k, err)
		}
	}
	return nil
}

// benchValue is the value every SET stores: a-z repeated.
func benchValue(n int) []byte {
	value := make([]byte, n)
	for i := range value {
		value[i] = byte('a' + i%26)
	}
	return value
}

// appendKey appends key number k as "key:" and the number zero-padded to
// size bytes in all (size 12: "key:%08d"), without fmt: no allocation
// into a buffer with room. The caller checks that size holds the number.
func appendKey(b []byte, k, size int) []byte {
	b = append(b, "key:"...)
	for i := size - 4 - 1; i >= 0; i-- {
		b = append(b, '0')
	}
	d := b[len(b)-(size-4):]
	for i := len(d) - 1; i >= 0 && k > 0; i-- {
		d[i] = byte('0' + k%10)
		k /= 10
	}
	return b
}

// flow is one socket or connection with its own window of requests.
type flow struct {
	cfg         BenchConfig
	conn        net.Conn // UDP or TCP; nil with xdp and with usock
	usock       *udpSock // open loop over UDP
	pfd         int      // open loop: the socket the pacer polls
	xdp         *xdpPort
	tcp         bool
	rng         *rand.Rand
	measureFrom time.Time
	end         time.Time
	opTable     []rebound.Op // weighted op choice, 100 entries

	// slots: request seq s uses slot s % len(slots); a slot holds the
	// intended send time of its request (0: free), sentAt the actual one.
	slots   []int64
	sentAt  []int64
	seqs    []uint32
	free    []int
	nextSeq uint32

	sent, received, lost, errCount atomic.Uint64
	truncated                      uint64
	errs                           [8]uint64
	hits, misses                   uint64
	bad                            atomic.Uint64
	// replyAt is when the reply being completed came in, as the kernel
	// stamped it (Unix ns; 0: now).
	replyAt int64

	mc *mcFlow // Memcache only

	xdpDone bool  // xdp: this flow's own work is done
	pinErr  error // pinning its thread to a CPU failed

	mu     sync.Mutex
	hist   *hdrhistogram.Histogram // measured period
	window *hdrhistogram.Histogram // since the last tick

	// The flow's own, read once it is done: the lag of requests sent and
	// the service time of replies received in the measured period.
	lag, service *hdrhistogram.Histogram
}

func (f *flow) close() {
	switch {
	case f.xdp != nil:
		_ = f.xdp.Close()
	case f.usock != nil:
		f.usock.close()
	default:
		f.conn.Close()
	}
}

// checkXDP checks the settings an AF_XDP bench cannot run with.
func checkXDP(cfg BenchConfig) error {
	if cfg.TCP {
		return errors.New("bench: xdp sends UDP datagrams: not with TCP")
	}
	if n := max(cfg.XDP.Queues, 1); cfg.Flows != n {
		return fmt.Errorf("bench: xdp runs one flow per queue: %d flows for %d queues (set the queues, not the workers)", cfg.Flows, n)
	}
	return nil
}

func newFlow(ctx context.Context, cfg BenchConfig, i int, g *xdpGroup) (*flow, error) {
	f, err := newFlowState(cfg, i)
	if err != nil {
		return nil, err
	}
	if g != nil {
		if f.msgBytes() > 1400 {
			return nil, errors.New("bench: xdp sends one frame per request: keep messages under 1400 bytes")
		}
		if f.mc != nil && f.mc.maxReply() > memcache.UDPMaxPayload {
			return nil, fmt.Errorf("bench: xdp takes memcache replies of one datagram: keep --value-size under %d",
				len(f.mc.value)-(f.mc.maxReply()-memcache.UDPMaxPayload))
		}
		if f.xdp, err = g.openXDPPort(i); err != nil {
			return nil, err
		}
		return f, nil
	}
	if cfg.Rate > 0 {
		// Open loop: a socket of its own, which the pacer polls.
		if !cfg.TCP {
			if f.usock, err = openUDPSock(cfg.Target, udpBatch, rebound.HeaderLen+rebound.MaxPayload); err != nil {
				return nil, err
			}
			f.pfd = f.usock.fd
			return f, nil
		}
		c, err := dialFD(ctx, cfg.Target)
		if err != nil {
			return nil, err
		}
		f.pfd, f.conn = c.fd, c
		if cfg.TLS != nil {
			if f.conn, err = handshakeFD(c, cfg.TLS); err != nil {
				return nil, err
			}
		}
		return f, nil
	}
	if f.conn, err = dialFlow(ctx, cfg); err != nil {
		return nil, err
	}
	return f, nil
}

func dialFlow(ctx context.Context, cfg BenchConfig) (net.Conn, error) {
	network := "udp"
	if cfg.TCP {
		network = "tcp"
	}
	// Big socket buffers: hundreds of replies in flight must not overflow
	// the load generator's own receive queue (forced past rmem_max as root).
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) {
			for _, o := range [][2]int{{unix.SO_RCVBUFFORCE, unix.SO_RCVBUF}, {unix.SO_SNDBUFFORCE, unix.SO_SNDBUF}} {
				if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, o[0], 8<<20) != nil {
					_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, o[1], 8<<20)
				}
			}
		})
	}}
	conn, err := d.DialContext(ctx, network, cfg.Target)
	if err != nil {
		return nil, fmt.Errorf("bench: dial %s %s: %w", network, cfg.Target, err)
	}
	if cfg.TCP && cfg.TLS != nil {
		return handshake(ctx, conn, cfg.TLS)
	}
	return conn, nil
}

// handshake wraps conn in TLS and shakes hands (within 5s); it closes conn
// on failure.
func handshake(ctx context.Context, conn net.Conn, conf *tls.Config) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	tc := tls.Client(conn, conf)
	if err := tc.HandshakeContext(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("bench: TLS handshake with %s: %w", conn.RemoteAddr(), err)
	}
	return smallRecords{tc}, nil
}

// tlsRecordMax bounds one Write over TLS, and so one TLS record: memcached
// -Z (1.6.18) stops serving a pipeline whose requests come in larger
// records (it answers the first few and then waits, for a read event that
// never comes, with the rest already read off the socket). So the load
// sends small records, the same to every server it is compared with.
const tlsRecordMax = 1024

// smallRecords splits writes into tlsRecordMax pieces.
type smallRecords struct{ net.Conn }

func (c smallRecords) Write(b []byte) (int, error) {
	n := 0
	for len(b) > 0 {
		k, err := c.Conn.Write(b[:min(len(b), tlsRecordMax)])
		n += k
		if err != nil {
			return n, err
		}
		b = b[k:]
	}
	return n, nil
}

func newFlowState(cfg BenchConfig, i int) (*flow, error) {
	window := cfg.Window
	if cfg.Rate > 0 {
		// Open loop: room for every request that can be in flight within
		// the timeout at this flow's rate.
		window = max(1024, int(cfg.Rate/float64(cfg.Flows)*cfg.Timeout.Seconds())*2)
		if cfg.Protocol == Memcache && !cfg.TCP {
			window = min(window, maxMCWindow)
		}
	}
	f := &flow{cfg: cfg, tcp: cfg.TCP, rng: rand.New(rand.NewPCG(uint64(i), uint64(time.Now().UnixNano()))),
		slots: make([]int64, window), sentAt: make([]int64, window), seqs: make([]uint32, window), free: make([]int, 0, window),
		hist: newHist(), window: newHist(), lag: newHist(), service: newHist()}
	for s := window - 1; s >= 0; s-- {
		f.free = append(f.free, s)
	}
	total := 0
	for _, m := range cfg.Mix {
		total += m.Weight
	}
	for _, m := range cfg.Mix {
		for j := 0; j < m.Weight*100/total; j++ {
			f.opTable = append(f.opTable, m.Op)
		}
	}
	if len(f.opTable) == 0 {
		f.opTable = append(f.opTable, cfg.Mix[0].Op)
	}
	f.nextSeq = uint32(i) << 24
	if cfg.Protocol == Memcache {
		var err error
		if f.mc, err = newMCFlow(cfg, window); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// msgBytes is the size of the largest request.
func (f *flow) msgBytes() int {
	if f.mc != nil {
		return f.mc.msgBytes(!f.tcp)
	}
	return rebound.HeaderLen + max(f.cfg.Payload, 5+f.cfg.KeySize+f.cfg.ValueSize)
}

// encode writes the next request into b and returns its size.
func (f *flow) encode(b []byte, seq uint32) int {
	op := f.opTable[f.rng.IntN(len(f.opTable))]
	if f.mc != nil {
		return f.encodeMC(b, seq, op, f.rng.IntN(f.cfg.Keys))
	}
	// The key is built where SET puts it; GET and DEL move it forward.
	key := appendKey(b[rebound.HeaderLen+5:rebound.HeaderLen+5], f.rng.IntN(f.cfg.Keys), f.cfg.KeySize)
	var n int
	switch op {
	case rebound.OpGet:
		n, _ = rebound.EncodeGet(b, seq, key, 0)
	case rebound.OpDel:
		n, _ = rebound.EncodeDel(b, seq, key)
	case rebound.OpSet:
		v := b[rebound.HeaderLen+5+len(key) : rebound.HeaderLen+5+len(key)+f.cfg.ValueSize]
		n, _ = rebound.EncodeSet(b, seq, key, 0, v)
	default:
		p := b[rebound.HeaderLen:f.cfg.Payload]
		n, _ = rebound.EncodePing(b, seq, p)
	}
	return n
}

// udpBatch is how many datagrams a UDP flow sends or receives in one
// system call.
const udpBatch = 64

// run sends and receives until the end time, then waits (bounded by the
// timeout) for the replies still in flight. UDP uses recvmmsg/sendmmsg
// batches so that the load generator is not the bottleneck.
func (f *flow) run(ctx context.Context) {
	if f.xdp != nil {
		f.runXDP(ctx)
		return
	}
	if f.usock != nil {
		f.runPacedUDP(ctx)
		return
	}
	const batch = udpBatch
	msgBytes := f.msgBytes()
	out := make([]byte, 0, max(256<<10, 4*msgBytes))
	var (
		br     *bufio.Reader
		uc     *udpbatch.Conn
		bufs   [][]byte // per slot in the send batch
		msgBuf = make([]byte, msgBytes)
	)
	if f.tcp {
		br = bufio.NewReaderSize(f.conn, max(2*(rebound.HeaderLen+rebound.MaxPayload), 4*f.cfg.ValueSize))
	} else {
		// udpbatch, not x/net/ipv4: its batches allocate nothing per
		// datagram (ipv4.ReadBatch makes a net.UDPAddr for each).
		var err error
		if uc, err = udpbatch.New(f.conn.(*net.UDPConn), batch, rebound.HeaderLen+rebound.MaxPayload); err != nil {
			f.lost.Add(uint64(len(f.slots) - len(f.free)))
			return
		}
		// Datagrams one by one, as clients on a network send them: a
		// GSO train stays one frame up to the server's device, and a
		// server behind generic XDP would see it as one request.
		uc.SetGSO(false)
		bufs = make([][]byte, batch)
		for i := range bufs {
			bufs[i] = make([]byte, msgBytes)
		}
	}
	start := time.Now()
	perFlow := f.cfg.Rate / float64(f.cfg.Flows)
	var pc *pacer
	if perFlow > 0 {
		// Open loop over TCP: wait for replies and due times in ppoll,
		// to within microseconds (see Pacing in pace.go).
		pc = newPacer(f.pfd, f.cfg.Flows < runtime.GOMAXPROCS(0))
		defer pc.close()
	}
	sched := newSchedule(start, max(perFlow, 1))
	lastScan := start
	sending := true
	for {
		now := time.Now()
		if f.over(ctx, now, &sending) {
			return
		}
		out = out[:0]
		nq := 0
		if sending {
			for quota := f.quota(now, start, perFlow); quota > 0 && (f.tcp && len(out)+msgBytes <= cap(out) || !f.tcp && nq < batch); quota-- {
				seq := f.take(now, start, perFlow)
				if f.tcp {
					n := f.encode(msgBuf, seq)
					out = append(out, msgBuf[:n]...)
				} else {
					n := f.encode(bufs[nq], seq)
					uc.QueueTo(bufs[nq][:n], netip.AddrPort{}) // connected: to the target
					nq++
				}
			}
		}
		if f.tcp && len(out) > 0 {
			_ = f.conn.SetWriteDeadline(time.Now().Add(f.cfg.Timeout))
			if _, err := f.conn.Write(out); err != nil {
				f.lost.Add(uint64(len(f.slots) - len(f.free)))
				return
			}
		}
		if nq > 0 {
			_, _ = uc.Flush() // a refused datagram shows up as a timeout
		}
		ready := true
		if pc != nil {
			// Until a reply comes or the next request is due: none is
			// while the window is full, or once sending is over.
			var due time.Time
			if sending && len(f.free) > 0 {
				due = sched.nextWake(f.sent.Load(), f.cfg.Pace)
			}
			ready = pc.wait(due, true)
		}
		if ready {
			// Receive for a short while (open loop: what has come,
			// the deadline a bound in case it was not a whole reply).
			_ = f.conn.SetReadDeadline(time.Now().Add(2 * time.Millisecond))
			switch {
			case f.tcp && f.mc != nil:
				f.readMCTCP(br)
			case f.tcp:
				f.readTCP(br)
			default:
				f.readUDP(uc)
			}
		}
		// A memcache TCP stream answers in order: nothing is lost until
		// the connection fails, and a reply must find its request.
		if now.Sub(lastScan) > 20*time.Millisecond && !(f.tcp && f.mc != nil) {
			f.expire(now)
			lastScan = now
		}
	}
}

// over starts a round of a flow's loop: sending stops at the end time (or
// once ctx is done); then the flow is over when nothing is in flight, or
// when what is has had its timeout (counted lost).
func (f *flow) over(ctx context.Context, now time.Time, sending *bool) bool {
	if *sending && (now.After(f.end) || ctx.Err() != nil) {
		*sending = false
	}
	switch {
	case *sending:
		return false
	case len(f.free) == len(f.slots):
		return true
	case now.After(f.end.Add(f.cfg.Timeout)):
		f.lost.Add(uint64(len(f.slots) - len(f.free)))
		return true
	}
	return false
}

// quota is how many requests may be sent now: as many as there are free
// slots in closed loop; in open loop, those due by now and not yet sent,
// within the free slots.
func (f *flow) quota(now, start time.Time, perFlow float64) int {
	if perFlow <= 0 {
		return len(f.free)
	}
	due := newSchedule(start, perFlow).dueBy(now)
	return int(min(due-min(due, f.sent.Load()), uint64(len(f.free))))
}

// take claims a free slot for a new request sent now, counts it as sent and
// returns its sequence number. In open loop its latency will count from
// when it was due, not from when a late sender got to it, and how late that
// was is its lag.
func (f *flow) take(now, start time.Time, perFlow float64) uint32 {
	s := f.free[len(f.free)-1]
	f.free = f.free[:len(f.free)-1]
	seq := f.nextSeq - f.nextSeq%uint32(len(f.slots)) + uint32(s)
	f.nextSeq += uint32(len(f.slots))
	sent := now.UnixNano()
	intended := sent
	if perFlow > 0 {
		intended = min(newSchedule(start, perFlow).due(f.sent.Load()).UnixNano(), sent)
	}
	f.slots[s], f.sentAt[s], f.seqs[s] = intended, sent, seq
	f.sent.Add(1)
	if f.measured(now) {
		_ = f.lag.RecordValue(sent - intended)
	}
	return seq
}

// measured reports whether t falls in the measured period.
func (f *flow) measured(t time.Time) bool { return t.After(f.measureFrom) && !t.After(f.end) }

func (f *flow) readUDP(uc *udpbatch.Conn) {
	for {
		n, err := uc.Read()
		if err != nil {
			return
		}
		for i := 0; i < n; i++ {
			f.complete(uc.Data(i))
		}
		if n < uc.Batch() {
			return
		}
		// A full batch: take what else is queued, without waiting.
		_ = f.conn.SetReadDeadline(time.Now())
	}
}

func (f *flow) readTCP(br *bufio.Reader) {
	for {
		hdr, err := br.Peek(rebound.HeaderLen)
		if err != nil {
			return
		}
		total := rebound.HeaderLen + int(binary.BigEndian.Uint16(hdr[8:10]))
		// Peek the whole reply before consuming any of it, so a read
		// deadline in the middle of a reply never loses stream framing.
		msg, err := br.Peek(total)
		if err != nil {
			return
		}
		f.complete(msg)
		_, _ = br.Discard(total)
		_ = f.conn.SetReadDeadline(time.Now())
	}
}

// complete matches one reply to its slot and records its latency from the
// intended send time.
func (f *flow) complete(b []byte) {
	if f.mc != nil {
		f.completeMCDatagram(b)
		return
	}
	m, err := rebound.DecodeReply(b)
	if err != nil {
		return
	}
	s := int(m.Seq % uint32(len(f.slots)))
	if f.slots[s] == 0 || f.seqs[s] != m.Seq {
		return // late reply of a request already counted lost
	}
	if m.Status != rebound.StatusOK {
		f.errs[min(int(m.Status), len(f.errs)-1)]++
		f.errCount.Add(1)
	}
	if m.Flags&rebound.FlagTruncated != 0 {
		f.truncated++
	}
	if m.Op == rebound.OpGet {
		switch m.Status {
		case rebound.StatusOK:
			f.hits++
		case rebound.StatusNotFound:
			f.misses++
		}
	}
	f.finish(s)
}

// finish frees slot s, whose reply has come, and records its latency from
// the intended send time.
func (f *flow) finish(s int) {
	var now time.Time
	t := f.replyAt
	if t == 0 {
		now = time.Now()
		t = now.UnixNano()
	} else {
		now = time.Unix(0, t)
	}
	lat, svc := max(t-f.slots[s], 0), max(t-f.sentAt[s], 0)
	f.slots[s] = 0
	f.free = append(f.free, s)
	f.received.Add(1)
	measured := f.measured(now)
	f.mu.Lock()
	_ = f.window.RecordValue(lat) // the live line shows the warmup too
	if measured {
		_ = f.hist.RecordValue(lat)
	}
	f.mu.Unlock()
	if measured {
		_ = f.service.RecordValue(svc)
	}
}

// expire counts requests older than the timeout as lost and frees their
// slots.
func (f *flow) expire(now time.Time) {
	limit := now.Add(-f.cfg.Timeout).UnixNano()
	for s, t := range f.slots {
		if t != 0 && t < limit {
			f.slots[s] = 0
			f.free = append(f.free, s)
			f.lost.Add(1)
		}
	}
}
