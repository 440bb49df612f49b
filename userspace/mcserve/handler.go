package mcserve

import (
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/rebound-net/rebound/userspace/store"
)

// DefaultVersion is what "version" and "stats" report unless
// Config.Version says otherwise.
const DefaultVersion = "1.6.18-rebound"

// Config configures a Handler.
type Config struct {
	// Store holds the items; required.
	Store *store.Store
	// MaxItemSize is the largest value accepted (default: the store's
	// MaxItemSize, 1 MiB unless configured). A larger one is answered
	// "SERVER_ERROR object too large for cache" and swallowed.
	MaxItemSize int
	// Version is reported by "version" and "stats" (DefaultVersion).
	Version string
	// Conns reports the transports' connection gauges for "stats"
	// (curr_connections, total_connections) when no server has said more
	// (SetServer); nil reports 0.
	Conns func() (curr, total uint64)
	// AnsweredGets reports the gets answered outside the handler, every
	// one a hit of one key: the XDP program's memcached "get" and meta
	// get ("mg") answers. "stats" counts them in cmd_get and get_hits
	// (the meta gets in cmd_meta too), as memcached counts what it
	// answers; nil: none.
	AnsweredGets func() (gets, metaGets uint64)
	// Threads is reported as "threads" by stats.
	Threads int
	// Now is the clock (default: the store's). It must agree with the
	// store's.
	Now func() time.Time
	// Auth, when set, requires every connection to log in before it is
	// served (auth.go): text as memcached -Y, binary through SASL PLAIN;
	// UDP is not answered. Nil: no authentication.
	Auth *Auth
}

// Handler executes memcached commands against a store. It is safe for
// concurrent use by many Conns.
type Handler struct {
	cfg     Config
	maxVal  int
	started time.Time
	pid     int
	// shards hold the command counters: each Conn counts in one, taken
	// in turn, and Stats adds them up. One shared set of counters was a
	// handful of atomic adds per request on cache lines every worker's
	// core wrote: their cost grew with the cores.
	shards    [counterShards]counterShard
	nextShard atomic.Uint32

	// server reports the transport's figures (SetServer); nil: none.
	server atomic.Pointer[func() ServerInfo]
	// base is the snapshot "stats reset" took: the text "stats" reports
	// the counters since then, Stats (the metrics) since the start.
	baseMu sync.Mutex
	base   Stats
}

// counterShards is how many sets of counters the connections share (a
// connection per worker, over UDP and AF_XDP: up to this many workers
// never share one).
const counterShards = 16

// counterShard is a set of counters on cache lines of its own.
type counterShard struct {
	counters
	_ [256 - unsafe.Sizeof(counters{})%256]byte
}

type counters struct {
	cmdGet, cmdSet, cmdFlush, cmdTouch, cmdMeta atomic.Uint64
	getHits, getMisses                          atomic.Uint64
	deleteHits, deleteMisses                    atomic.Uint64
	incrHits, incrMisses, decrHits, decrMisses  atomic.Uint64
	casHits, casMisses, casBadval               atomic.Uint64
	touchHits, touchMisses                      atomic.Uint64
	storeTooLarge, bytesRead, bytesWritten      atomic.Uint64
	authCmds, authErrors                        atomic.Uint64
}

// New returns a Handler.
func New(cfg Config) *Handler {
	if cfg.Store == nil {
		panic("mcserve: Config.Store is required")
	}
	if cfg.Version == "" {
		cfg.Version = DefaultVersion
	}
	if cfg.Now == nil {
		// The store's clock: shared, ticking every 10 ms, far cheaper
		// per request than time.Now, and the one expiry is judged by.
		cfg.Now = cfg.Store.Now
	}
	h := &Handler{cfg: cfg, maxVal: cfg.MaxItemSize, pid: os.Getpid()}
	if h.maxVal <= 0 {
		h.maxVal = cfg.Store.MaxItemSize()
	}
	h.started = cfg.Now()
	return h
}
