package userspace

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rebound-net/rebound/bpf"
	"github.com/rebound-net/rebound/codec"
	"github.com/rebound-net/rebound/codec/rebound"
	"github.com/rebound-net/rebound/internal/cpuset"
	"github.com/rebound-net/rebound/userspace/mcserve"
	"github.com/rebound-net/rebound/userspace/store"
	"github.com/rebound-net/rebound/xdp"
)

// Mode is the transport a server uses for UDP.
type Mode string

const (
	ModeAuto Mode = "auto" // xdp where it can be set up, else udp
	ModeXDP  Mode = "xdp"  // AF_XDP fast path, UDP sockets for what XDP leaves
	ModeUDP  Mode = "udp"  // UDP sockets only
)

// Memcached defaults.
const (
	DefaultMemcachePort = 11211
	DefaultMaxItemSize  = 1 << 20
)

// Config configures a Server. Zero values take the defaults noted.
type Config struct {
	Listen         string         // UDP and TCP address (default ":7000")
	Mode           Mode           // default auto
	Iface          string         // interface to attach XDP to (xdp and auto modes)
	XDPMode        bpf.Mode       // native, generic or auto (default)
	XDPReplace     bool           // replace an XDP program already attached (netlink-attached only)
	Queues         int            // rx queues to serve (default: all of the interface)
	Batch          int            // requests per batch (default 64)
	AllowSrc       []netip.Prefix // source allow-list, on every path (empty: every unicast source)
	Amplification  int            // rule 6 factor A (default 4; negative: off)
	MTU            int            // path MTU for UDP replies (default: the interface's, or 1500)
	Workers        int            // UDP sockets (default: number of CPUs)
	Frames         int            // UMEM frames per queue (default 4096)
	Bind           xdp.BindMode   // AF_XDP copy, zero-copy or auto
	MaxConns       int            // TCP connections served at once by the process, every TCP port together, as memcached's -c (default 1024); past it a new one is closed, on memcached's port after memcached's "ERROR Too many open connections"
	IdleTimeout    time.Duration  // TCP idle timeout (default 60s)
	WriteTimeout   time.Duration  // TCP write timeout for clients that do not read (default 5s)
	RequestTimeout time.Duration  // TCP: longest a request may take to arrive once begun, and a TLS handshake (default 10s)
	// TLS, when set, is required on every TCP listener (memcached's -Z),
	// and UDP is off: it cannot be encrypted.
	TLS     *TLS
	Handler Handler // required: the Rebound protocol's service

	// Memcache, when set, serves memcached's protocol (text and meta over
	// TCP, the 8-byte frame header over UDP and AF_XDP) on MemcacheListen.
	Memcache       *mcserve.Handler
	MemcacheListen string   // UDP and TCP address (default ":11211")
	MaxItemSize    int      // largest memcached value (default 1 MiB); sizes the TCP read buffer bound
	TrustSrc       Prefixes // sources whose UDP replies the amplification bound does not limit

	// Answers, in xdp mode, is the store whose hot small items the XDP
	// program answers Rebound GETs and memcached gets from (and Rebound
	// PINGs), with XDP_TX, kept coherent with it by store.Mirror. Set it
	// only when Handler and Memcache serve that store. Nil: every request
	// goes to the AF_XDP sockets.
	Answers     *store.Store
	AnswerItems int // items the XDP program holds (default bpf.DefaultAnswerItems)
	// BusyPoll, above 0 in xdp mode, makes each AF_XDP worker busy-poll
	// its queue (xdp.Config.BusyPoll): lower tail latency, a core kept
	// busy while there is traffic.
	BusyPoll time.Duration
	// CPUs, in xdp mode, pins queue q's worker (its OS thread) to CPU
	// CPUs[q]; the list must name a CPU for every queue served. Empty:
	// the workers run where the Go scheduler puts them. udp mode ignores
	// it (taskset the process instead).
	CPUs []int

	// Protocols are protocols of your own, each on an address of its own
	// (UDP and TCP) next to the built-in ones; in xdp mode their UDP ports
	// are steered into the AF_XDP sockets too. See package handler.
	Protocols []ProtocolListener
	Logger    *slog.Logger // default: discard
}

func (c *Config) defaults() error {
	if c.Handler == nil {
		return errors.New("server: no handler")
	}
	if c.Listen == "" {
		c.Listen = ":" + strconv.Itoa(rebound.DefaultPort)
	}
	if c.Mode == "" {
		c.Mode = ModeAuto
	}
	if c.Memcache != nil && c.MemcacheListen == "" {
		c.MemcacheListen = ":" + strconv.Itoa(DefaultMemcachePort)
	}
	if c.MaxItemSize <= 0 {
		c.MaxItemSize = DefaultMaxItemSize
	}
	switch c.Mode {
	case ModeAuto, ModeXDP, ModeUDP:
	default:
		return fmt.Errorf("mode %q: want auto, xdp or udp", c.Mode)
	}
	if c.Batch <= 0 {
		c.Batch = 64
	}
	if c.Batch > 1024 {
		return fmt.Errorf("batch %d: at most 1024", c.Batch)
	}
	if c.Amplification == 0 {
		c.Amplification = codec.DefaultAmplification
	}
	if c.Workers <= 0 {
		c.Workers = runtime.NumCPU()
	}
	if c.Frames <= 0 {
		c.Frames = xdp.DefaultFrameCount
	}
	if c.MaxConns <= 0 {
		c.MaxConns = DefaultMaxConns
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Server serves the Rebound protocol over AF_XDP, UDP sockets and TCP with
// one Handler.
type Server struct {
	cfg  Config
	log  *slog.Logger
	mode Mode
	why  string // why this mode, for the log and stats

	tcp      *tcpServer
	mcTCP    *tcpServer
	extraTCP []*tcpServer // protocols of your own
	retired  []*tcpServer // listeners replaced by SetListen: their connections run on
	conns    connLimit    // Config.MaxConns, shared by every TCP listener

	rebUDP, mcUDP     []*net.UDPConn // the built-in protocols' UDP sockets
	rebStats, mcStats []*WorkerStats // their counters, kept across SetListen
	mtu               int
	gate              gate
	trust             atomic.Pointer[Prefixes] // TrustSrc, swapped whole by SetTrust
	udp               []*net.UDPConn
	prog              *bpf.Program
	xdpW              []*xdpWorker
	socks             []*xdp.Socket
	umems             []*xdp.UMEM
	ethtool           *xdp.Ethtool // set when we turned rx-vlan-offload off
	stop              atomic.Bool
	wg                sync.WaitGroup
	stats             []*WorkerStats
	frames            []FrameAccount
	stopped           bool
	mu                sync.Mutex
	fatal             chan error // the server cannot go on (its interface is gone)
	// memcached get and mg hits answered in XDP, the highest seen (the
	// program's counters go with it)
	xdpGets, xdpMetaGets atomic.Uint64
	// pub guards what readers outside the workers see (stats, prog,
	// socks): a metrics scrape during Start or Stop reads them while they
	// are built or torn down, and must never see a closed socket.
	pub sync.RWMutex
}

// NewServer validates cfg.
func NewServer(cfg Config) (*Server, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger, fatal: make(chan error, 1)}
	s.conns.max = int64(cfg.MaxConns)
	if err := s.gate.set(cfg.AllowSrc); err != nil {
		return nil, err
	}
	trust, err := checkPrefixes(cfg.TrustSrc)
	if err != nil {
		return nil, fmt.Errorf("trust-src: %w", err)
	}
	s.trust.Store(&trust)
	if cfg.Memcache != nil {
		cfg.Memcache.SetServer(s.memcacheInfo) // memcached's stats and stats settings
	}
	return s, nil
}

// SetTrust replaces the sources whose memcached UDP replies the
// amplification bound spares, while serving; checked first and put in
// force whole, like SetAllow.
func (s *Server) SetTrust(list []netip.Prefix) error {
	next, err := checkPrefixes(list)
	if err != nil {
		return fmt.Errorf("trust-src: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// The XDP program first: a source trusted now is spared there too.
	if s.prog != nil {
		if err := s.prog.SetTrust(next); err != nil {
			return fmt.Errorf("trust-src: %w", err)
		}
	}
	s.trust.Store(&next)
	return nil
}

// SetAllow replaces the source allow-list on every path while serving
// (empty: every unicast source). The new list is checked first and put in
// force whole: an invalid prefix leaves the old list in force, and no
// request is ever served with no list at all.
func (s *Server) SetAllow(list []netip.Prefix) error {
	next, err := checkPrefixes(list)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return errNotRunning
	}
	if s.prog != nil {
		if err := s.prog.SetAllow(next); err != nil {
			return err
		}
	}
	s.gate.allow.Store(&next)
	s.cfg.AllowSrc = next
	// Connections accepted under the old list and refused by the new one
	// are closed: the list holds on every path, open streams included.
	s.pub.RLock()
	servers := slices.Concat([]*tcpServer{s.tcp, s.mcTCP}, s.extraTCP, s.retired)
	s.pub.RUnlock()
	for _, ts := range servers {
		if ts != nil {
			ts.refuse(&s.gate)
		}
	}
	return nil
}

// udpOff says why UDP is off, or "" when it is served: it cannot be
// encrypted, so it is off while TLS is required (no UDP socket is opened
// and XDP is not attached).
func (s *Server) udpOff() string {
	if s.cfg.TLS != nil {
		return "UDP is off: TLS is required on TCP (--tls-cert), and UDP cannot be encrypted"
	}
	if s.cfg.Memcache != nil && s.cfg.Memcache.AuthRequired() {
		return "UDP is off: memcached authentication is required (--auth-file), and UDP has no login"
	}
	return ""
}

// Mode returns the UDP mode the server runs in (xdp or udp) and why.
func (s *Server) Mode() (Mode, string) { return s.mode, s.why }

// Start sets up every transport and starts serving. On error nothing is
// left open.
func (s *Server) Start(ctx context.Context) (err error) {
	defer func() {
		if err != nil {
			s.Stop()
		}
	}()
	// TCP first, without SO_REUSEPORT: it doubles as the check that no
	// other server holds the port (UDP sockets share it by design).
	s.mtu = s.pathMTU()
	tst := &WorkerStats{Transport: "tcp"}
	s.addStats(tst)
	if s.tcp, err = s.listenReboundTCP(s.cfg.Listen, tst); err != nil {
		return err
	}
	s.cfg.Listen = resolved(s.cfg.Listen, s.tcp.ln)
	s.rebStats = s.workerStats("udp")
	// UDP sockets serve in every mode: in xdp mode they answer what the
	// XDP program leaves to the kernel (fragments, IPv6 extension headers,
	// queues without a socket, a failed worker's queue).
	if s.rebUDP, err = s.openReboundUDP(ctx, s.cfg.Listen); err != nil {
		return err
	}

	if s.cfg.Memcache != nil {
		st := &WorkerStats{Transport: "memcache-tcp"}
		s.addStats(st)
		if s.mcTCP, err = s.listenMemcacheTCP(s.cfg.MemcacheListen, st); err != nil {
			return err
		}
		s.cfg.MemcacheListen = resolved(s.cfg.MemcacheListen, s.mcTCP.ln)
		s.mcStats = s.workerStats("memcache-udp")
		if s.mcUDP, err = s.openMemcacheUDP(ctx, s.cfg.MemcacheListen); err != nil {
			return err
		}
	}
	if err := s.startProtocols(ctx); err != nil {
		return err
	}
	s.setOwnPorts()

	switch off := s.udpOff(); {
	case off != "" && s.cfg.Mode == ModeXDP:
		return fmt.Errorf("mode xdp serves UDP, and %s: use --mode udp or auto", off)
	case off != "":
		s.mode, s.why = ModeUDP, off
		s.log.Warn(off)
	case s.cfg.Mode == ModeUDP:
		s.mode, s.why = ModeUDP, "asked for with --mode udp"
	case s.cfg.Mode == ModeXDP:
		if err := s.startXDP(); err != nil {
			return err
		}
		s.mode, s.why = ModeXDP, "asked for with --mode xdp"
	case s.cfg.Mode == ModeAuto:
		if reason := s.xdpUnavailable(); reason != "" {
			s.mode, s.why = ModeUDP, reason
		} else if err := s.startXDP(); err != nil {
			s.closeXDP()
			s.log.Warn("XDP setup failed: serving through UDP sockets instead", "iface", s.cfg.Iface, "err", err)
			s.mode, s.why = ModeUDP, "XDP setup failed: "+err.Error()
		} else {
			s.mode, s.why = ModeXDP, "XDP attached to "+s.cfg.Iface
		}
	}
	s.log.Info("serving", "mode", string(s.mode), "why", s.why, "listen", s.cfg.Listen,
		"memcache", s.cfg.MemcacheListen, "udp_sockets", len(s.rebUDP)+len(s.mcUDP)+len(s.udp), "xdp_queues", len(s.xdpW), "iface", s.cfg.Iface)
	return nil
}

// AnsweredMemcacheGets returns the memcached get and meta get hits the
// XDP program answered since the start, for memcached's "stats". The
// figures never go down, also once the program is gone (a fallback to
// udp mode, a stop).
func (s *Server) AnsweredMemcacheGets() (gets, metaGets uint64) {
	s.inspect(func(prog *bpf.Program, _ []*xdp.Socket) {
		if prog == nil {
			return
		}
		if as, err := prog.AnswerCounters(); err == nil {
			storeMax(&s.xdpGets, as[bpf.AnswerMemcacheGet][bpf.AnswerHit])
			storeMax(&s.xdpMetaGets, as[bpf.AnswerMemcacheMetaGet][bpf.AnswerHit])
		}
	})
	return s.xdpGets.Load(), s.xdpMetaGets.Load()
}

// storeMax raises a to v if v is larger.
func storeMax(a *atomic.Uint64, v uint64) {
	for {
		old := a.Load()
		if v <= old || a.CompareAndSwap(old, v) {
			return
		}
	}
}

// MemcacheConns returns the memcached TCP connections open now and since
// the start, for memcached's "stats".
func (s *Server) MemcacheConns() (curr, total uint64) {
	s.pub.RLock()
	defer s.pub.RUnlock()
	if s.mcTCP == nil {
		return 0, 0
	}
	// Connections of listeners SetListen retired still count.
	for _, ts := range append([]*tcpServer{s.mcTCP}, s.retired...) {
		if ts.stats == s.mcTCP.stats {
			c, t := ts.counts()
			curr, total = curr+c, total+t
		}
	}
	return curr, total
}

// MemcacheAddr returns the memcached TCP listener's address (UDP shares
// its port), or nil when memcached is not served.
func (s *Server) MemcacheAddr() net.Addr {
	s.pub.RLock()
	defer s.pub.RUnlock()
	if s.mcTCP == nil {
		return nil
	}
	return s.mcTCP.ln.Addr()
}

// localAddrs returns the interface's addresses: XDP steers what is
// addressed to one of them (and, for a port with a listen host, to that
// host only: portHosts), and drops what comes from one of them.
func (s *Server) localAddrs(ifi *net.Interface) ([]netip.Addr, error) {
	addrs, err := ifi.Addrs()
	if err != nil {
		return nil, fmt.Errorf("addresses of %s: %w", ifi.Name, err)
	}
	var out []netip.Addr
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok && !ip.IsMulticast() {
				out = append(out, ip.Unmap())
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s has no address: XDP would steer nothing (add one, or give --listen HOST:PORT)", ifi.Name)
	}
	return out, nil
}

// listenPort returns the port of a listen address.
func listenPort(addr string) (uint16, error) {
	_, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, fmt.Errorf("listen address %q: %w", addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port <= 0 || port > 65535 {
		return 0, fmt.Errorf("listen address %q: port must be 1-65535", addr)
	}
	return uint16(port), nil
}

// xdpUnavailable says why auto mode should not even try XDP, or "".
func (s *Server) xdpUnavailable() string {
	if s.cfg.Iface == "" {
		return "no --iface given"
	}
	ifi, err := net.InterfaceByName(s.cfg.Iface)
	if err != nil {
		return fmt.Sprintf("interface %s not found", s.cfg.Iface)
	}
	if ifi.Flags&net.FlagLoopback != 0 {
		return errLoopback(s.cfg.Iface).Error()
	}
	if missing := missingXDPCaps(); missing != "" {
		return "missing " + missing + " (AF_XDP and XDP need CAP_NET_ADMIN, CAP_NET_RAW, CAP_BPF and CAP_PERFMON, or root)"
	}
	return ""
}

// errLoopback: XDP on a loopback device runs in generic mode only, gains
// nothing over the socket path, and does not answer IPv4 there (seen on
// Linux 6.18: the rewritten replies never reach the client's socket).
func errLoopback(iface string) error {
	return fmt.Errorf("%s is a loopback interface: XDP gains nothing there; serve it with --mode udp", iface)
}

func (s *Server) startXDP() error {
	if s.cfg.Iface == "" {
		return errors.New("xdp mode needs --iface")
	}
	if missing := missingXDPCaps(); missing != "" {
		return fmt.Errorf("xdp mode needs CAP_NET_ADMIN, CAP_NET_RAW, CAP_BPF and CAP_PERFMON (or root); missing %s: without them use --mode udp", missing)
	}
	ifi, err := net.InterfaceByName(s.cfg.Iface)
	if err != nil {
		return fmt.Errorf("interface %s not found", s.cfg.Iface)
	}
	if ifi.Flags&net.FlagLoopback != 0 {
		return errLoopback(s.cfg.Iface)
	}
	port, err := listenPort(s.cfg.Listen)
	if err != nil {
		return err
	}
	queues := s.cfg.Queues
	autoQueues := queues <= 0
	if autoQueues {
		if queues, err = bpf.InterfaceQueues(s.cfg.Iface); err != nil {
			return err
		}
	}
	if queues > bpf.MaxQueues {
		return fmt.Errorf("%d queues: at most %d", queues, bpf.MaxQueues)
	}
	local, err := s.localAddrs(ifi)
	if err != nil {
		return err
	}
	hosts, err := s.portHosts(s.cfg.Listen, s.cfg.MemcacheListen)
	if err != nil {
		return err
	}
	// Steer only what is addressed to us: this interface's MAC and
	// addresses, and each port's own listen host.
	opts := bpf.Options{Ports: []uint16{uint16(port)}, Allow: s.cfg.AllowSrc, Queues: queues,
		LocalMAC: ifi.HardwareAddr, LocalAddrs: local, PortHosts: hosts}
	var mcPort uint16
	if s.cfg.Memcache != nil {
		p, err := listenPort(s.cfg.MemcacheListen)
		if err != nil {
			return err
		}
		mcPort = p
		opts.MemcachePorts = []uint16{mcPort}
	}
	var raw []rawProto
	for _, pl := range s.cfg.Protocols {
		if pl.Datagram == nil {
			continue
		}
		p, err := listenPort(pl.Listen)
		if err != nil {
			return err
		}
		opts.RawPorts = append(opts.RawPorts, p)
		raw = append(raw, rawProto{port: p, ds: datagramServer{d: pl.Datagram, amp: s.cfg.Amplification, trust: &s.trust}})
	}
	if s.cfg.BusyPoll > 0 {
		if err := s.checkBusyPoll(); err != nil {
			return err
		}
	}
	if s.cfg.Answers != nil {
		opts.AnswerItems = s.cfg.AnswerItems
		if opts.AnswerItems <= 0 {
			opts.AnswerItems = bpf.DefaultAnswerItems
		}
	}
	prog, err := bpf.Load(opts)
	if err != nil {
		return err
	}
	s.pub.Lock()
	s.prog = prog
	s.pub.Unlock()
	if t := s.trust.Load(); t != nil {
		if err := prog.SetTrust(*t); err != nil {
			return err
		}
	}
	if items := prog.Items(); items != nil {
		if err := items.Configure(true, max(s.cfg.Amplification, 0), s.mtu); err != nil {
			return err
		}
		if err := s.cfg.Answers.SetMirror(items); err != nil {
			return err
		}
	}
	// Attach first: a second server on the interface fails here with an
	// error that names the program already there.
	if err := prog.Attach(s.cfg.Iface, s.cfg.XDPMode, s.cfg.XDPReplace); err != nil {
		return err
	}
	s.keepVLANTags()
	ring := min(xdp.DefaultRingSize, pow2Floor(s.cfg.Frames/2))
	for q := 0; q < queues; q++ {
		u, err := xdp.NewUMEM(xdp.UMEMConfig{FrameCount: s.cfg.Frames})
		if err != nil {
			return err
		}
		s.umems = append(s.umems, u)
		xc := xdp.Config{Bind: s.cfg.Bind, RxSize: ring, TxSize: ring, FillSize: ring, CompletionSize: ring, TxBudget: s.cfg.Batch * 4,
			BusyPoll: s.cfg.BusyPoll, BusyPollBudget: s.cfg.Batch}
		sock, err := xdp.Open(ifi.Index, q, u, xc)
		if err != nil && xc.TxBudget > 0 && !errors.Is(err, unix.EINVAL) {
			// Kernels before 6.16 lack XDP_MAX_TX_SKB_BUDGET: keep their 32.
			xc.TxBudget = 0
			sock, err = xdp.Open(ifi.Index, q, u, xc)
		}
		if err != nil && autoQueues && q > 0 && errors.Is(err, unix.EINVAL) {
			// netlink reports the queues a device allocated (a veth
			// allocates one per CPU); binding accepts only those in use.
			s.log.Debug("queue not in use: serving fewer queues", "queue", q, "err", err)
			queues = q
			break
		}
		if err != nil {
			return err
		}
		s.pub.Lock()
		s.socks = append(s.socks, sock)
		s.pub.Unlock()
		pool, err := u.NewPool(u.Frames())
		if err != nil {
			return err
		}
		st := &WorkerStats{Transport: "xdp", Queue: q}
		s.addStats(st)
		w := newXDPWorker(sock, pool, s.cfg.Handler, st, s.cfg.Batch, s.cfg.Amplification, s.mtu)
		if prog.Items() != nil && s.cfg.BusyPoll == 0 {
			// With answers in XDP the kernel's receive work on this core
			// is most of the server, and what reaches the worker comes in
			// its gaps: a worker that spins and yields runs again only
			// after a time slice of it (memcached's 90/10 mix: sets at a
			// p99 of 3 ms), one asleep in poll(2) when its request comes.
			w.spin = 0
		}
		w.gate = &s.gate
		if s.cfg.Memcache != nil {
			w.mc = newMCDatagram(s.cfg.Memcache, s.cfg.Amplification, &s.trust, st)
			w.mcPort.Store(uint32(mcPort))
		}
		for _, r := range raw {
			r.ds.stats = st // counted with the queue's other requests
			w.raw = append(w.raw, r)
		}
		s.xdpW = append(s.xdpW, w)
	}
	if n := len(s.cfg.CPUs); n > 0 {
		if n < queues {
			return fmt.Errorf("cpus %s: %d CPU(s) for %d queues: name one for each queue's worker", cpuset.Format(s.cfg.CPUs), n, queues)
		}
		if err := cpuset.Check(s.cfg.CPUs[:queues]); err != nil {
			return fmt.Errorf("cpus: %w", err)
		}
		for q, w := range s.xdpW {
			w.cpu = s.cfg.CPUs[q]
		}
	}
	// Register every socket before any worker starts: after this point
	// nothing can fail, so a failed setup never closes a socket under a
	// running worker.
	for _, w := range s.xdpW {
		// Fill ring first: a request steered to a socket with an empty
		// fill ring is dropped by the kernel.
		w.refill()
		if err := prog.RegisterSocket(w.sock.Queue(), w.sock.FD()); err != nil {
			return err
		}
	}
	for _, w := range s.xdpW {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			w.run(&s.stop)
			if w.err != nil && !s.stop.Load() {
				s.workerFailed(w)
			}
		}()
	}
	s.wg.Add(1)
	go func() { defer s.wg.Done(); s.watchInterface(ifi.Index) }()
	_, m, _ := prog.Attached()
	zc := len(s.socks) > 0 && s.socks[0].ZeroCopy()
	s.log.Info("xdp attached", "iface", s.cfg.Iface, "xdp_mode", m.String(), "queues", queues, "zerocopy", zc,
		"frames_per_queue", s.cfg.Frames, "ring", ring, "cpus", cpuset.Format(s.cfg.CPUs[:min(len(s.cfg.CPUs), queues)]))
	return nil
}

// workerFailed takes the socket of a worker that stopped on an error out
// of the XDP program's map at once, so that its queue falls back to the
// kernel and the socket path answers it instead of a black hole; logs it
// and marks it in the metrics. If the interface itself is gone, the server
// cannot go on: Fatal says so.
func (s *Server) workerFailed(w *xdpWorker) {
	w.stats.Failed.Store(true)
	q := w.sock.Queue()
	if err := s.prog.UnregisterSocket(q); err != nil {
		s.log.Error("xdp worker failed and its socket could not be taken out of the steering map", "queue", q, "err", err)
	}
	s.log.Error("xdp worker stopped: its queue is served by the kernel and the UDP sockets from now on", "queue", q, "err", w.err)
	if _, err := net.InterfaceByName(s.cfg.Iface); err != nil {
		select {
		case s.fatal <- fmt.Errorf("interface %s is gone (deleted while serving): %w", s.cfg.Iface, w.err):
		default:
		}
	}
}

// watchInterface checks twice a second that the interface XDP is attached
// to still exists: deleting it unbinds every AF_XDP socket without waking
// them, so the workers alone would wait forever.
func (s *Server) watchInterface(index int) {
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for !s.stop.Load() {
		<-t.C
		if _, err := net.InterfaceByIndex(index); err != nil {
			select {
			case s.fatal <- fmt.Errorf("interface %s is gone (deleted while serving)", s.cfg.Iface):
			default:
			}
			return
		}
	}
}

// Fatal delivers an error when the server cannot go on serving as
// configured (its interface was deleted); the caller should Stop it.
func (s *Server) Fatal() <-chan error { return s.fatal }

// keepVLANTags turns off rx-vlan-offload on the interface: with it, the
// checkBusyPoll refuses busy polling on an interface with threaded NAPI
// (measured on veth: the worker's polling and the NAPI thread stalled each
// other, down to a few replies a second), and says when the settings that
// make busy polling pay off are missing.
func (s *Server) checkBusyPoll() error {
	read := func(name string) string {
		b, err := os.ReadFile("/sys/class/net/" + s.cfg.Iface + "/" + name)
		if err != nil {
			return ""
		}
		return strings.TrimSpace(string(b))
	}
	if t := read("threaded"); t != "" && t != "0" {
		return fmt.Errorf("busy polling and threaded NAPI on %s stall each other: turn one off (echo 0 > /sys/class/net/%s/threaded)", s.cfg.Iface, s.cfg.Iface)
	}
	if read("napi_defer_hard_irqs") == "0" || read("gro_flush_timeout") == "0" {
		s.log.Warn("busy polling without napi_defer_hard_irqs and gro_flush_timeout: the kernel keeps polling the queue too (see docs/operations.md)",
			"iface", s.cfg.Iface, "napi_defer_hard_irqs", read("napi_defer_hard_irqs"), "gro_flush_timeout", read("gro_flush_timeout"))
	}
	return nil
}

// NIC moves 802.1Q tags into packet metadata that AF_XDP never sees, and a
// tagged request would be answered untagged. The setting is restored at
// Stop.
func (s *Server) keepVLANTags() {
	et, err := xdp.NewEthtool(s.cfg.Iface)
	if err != nil {
		s.log.Warn("cannot check rx-vlan-offload: VLAN-tagged requests may be answered untagged", "err", err)
		return
	}
	on, err := et.RxVLANOffload()
	if err != nil || !on {
		et.Close()
		return
	}
	if err := et.SetRxVLANOffload(false); err != nil {
		et.Close()
		s.log.Warn("rx-vlan-offload is on and cannot be turned off: VLAN-tagged requests will be answered untagged; try 'ethtool -K "+s.cfg.Iface+" rxvlan off'", "err", err)
		return
	}
	s.log.Info("turned rx-vlan-offload off so VLAN tags stay in the frames AF_XDP sees; restored at exit", "iface", s.cfg.Iface)
	s.ethtool = et
}

func pow2Floor(n int) int {
	p := 1
	for p*2 <= n {
		p *= 2
	}
	return max(p, 1)
}

// closeXDP undoes a failed or finished XDP setup: detach first, so the
// interface goes back to the kernel, then close sockets and UMEMs.
func (s *Server) closeXDP() {
	s.pub.Lock()
	defer s.pub.Unlock()
	if s.prog != nil {
		if items := s.prog.Items(); items != nil {
			// Answering off first: from here on the store's writes are
			// no longer told to the kernel's copy.
			_ = items.Configure(false, 0, 0)
			_ = s.cfg.Answers.SetMirror(nil)
		}
		_ = s.prog.Close()
		s.prog = nil
	}
	if s.ethtool != nil {
		if err := s.ethtool.SetRxVLANOffload(true); err != nil {
			s.log.Warn("could not restore rx-vlan-offload", "iface", s.cfg.Iface, "err", err)
		}
		s.ethtool.Close()
		s.ethtool = nil
	}
	for _, w := range s.xdpW {
		s.frames = append(s.frames, w.account())
	}
	for _, sk := range s.socks {
		_ = sk.Close()
	}
	for _, u := range s.umems {
		_ = u.Close()
	}
	s.xdpW, s.socks, s.umems = nil, nil, nil
}

// Stop stops serving: XDP requests are steered away from the sockets, the
// workers drain what they hold, the program is detached, sockets close.
// It is idempotent.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return
	}
	s.stopped = true
	if s.prog != nil {
		for _, sk := range s.socks {
			_ = s.prog.UnregisterSocket(sk.Queue())
		}
	}
	s.stop.Store(true)
	for _, c := range slices.Concat(s.udp, s.rebUDP, s.mcUDP) {
		c.Close()
	}
	for _, ts := range s.retired {
		ts.close()
	}
	if s.tcp != nil {
		s.tcp.close()
	}
	if s.mcTCP != nil {
		s.mcTCP.close()
	}
	for _, ts := range s.extraTCP {
		ts.close()
	}
	s.wg.Wait()
	for _, w := range s.xdpW {
		if w.err != nil {
			s.log.Error("xdp worker stopped", "queue", w.sock.Queue(), "err", w.err)
		}
	}
	s.closeXDP()
}

// Frames returns the frame accounting of each XDP worker, taken at Stop
// after the workers drained (empty before Stop or without XDP).
func (s *Server) Frames() []FrameAccount {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.frames
}

// Stats returns the live counters of every worker.
func (s *Server) Stats() []*WorkerStats {
	s.pub.RLock()
	defer s.pub.RUnlock()
	return s.stats[:len(s.stats):len(s.stats)]
}

func (s *Server) addStats(w *WorkerStats) {
	s.pub.Lock()
	s.stats = append(s.stats, w)
	s.pub.Unlock()
}

// inspect calls f with the XDP program (nil without XDP) and sockets while
// they cannot be closed, for readers such as a metrics scrape.
func (s *Server) inspect(f func(prog *bpf.Program, socks []*xdp.Socket)) {
	s.pub.RLock()
	defer s.pub.RUnlock()
	f(s.prog, s.socks)
}

// Program returns the XDP program in xdp mode, or nil.
func (s *Server) Program() *bpf.Program {
	s.pub.RLock()
	defer s.pub.RUnlock()
	return s.prog
}

// Sockets returns the AF_XDP sockets in xdp mode.
func (s *Server) Sockets() []*xdp.Socket {
	s.pub.RLock()
	defer s.pub.RUnlock()
	return s.socks[:len(s.socks):len(s.socks)]
}

// Addr returns the TCP listener's address (the UDP sockets share its port).
func (s *Server) Addr() net.Addr {
	s.pub.RLock()
	defer s.pub.RUnlock()
	if s.tcp == nil {
		return nil
	}
	return s.tcp.ln.Addr()
}
