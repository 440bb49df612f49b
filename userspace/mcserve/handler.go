package mcserve

import (
	"os"
	"sync/atomic"
	"time"

	mc "github.com/rebound-net/rebound/codec/memcache"
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
	// (curr_connections, total_connections); nil reports 0.
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
}

// Handler executes memcached commands against a store. It is safe for
// concurrent use by many Conns.
type Handler struct {
	cfg     Config
	maxVal  int
	started time.Time
	pid     int
	c       counters
}

type counters struct {
	cmdGet, cmdSet, cmdFlush, cmdTouch, cmdMeta atomic.Uint64
	getHits, getMisses                          atomic.Uint64
	deleteHits, deleteMisses                    atomic.Uint64
	incrHits, incrMisses, decrHits, decrMisses  atomic.Uint64
	casHits, casMisses, casBadval               atomic.Uint64
	touchHits, touchMisses                      atomic.Uint64
	storeTooLarge, bytesRead, bytesWritten      atomic.Uint64
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

// Stats is a snapshot of the counters "stats" reports.
type Stats struct {
	Pid                                     int
	Uptime, Time                            int64
	Version                                 string
	CurrConnections, TotalConnections       uint64
	Threads                                 int
	CmdGet, CmdSet, CmdFlush, CmdTouch      uint64
	CmdMeta                                 uint64
	GetHits, GetMisses                      uint64
	GetExpired, GetFlushed                  uint64 // always 0: the store does not tell a miss from an expired item
	DeleteHits, DeleteMisses                uint64
	IncrHits, IncrMisses                    uint64
	DecrHits, DecrMisses                    uint64
	CasHits, CasMisses, CasBadval           uint64
	TouchHits, TouchMisses                  uint64
	StoreTooLarge                           uint64
	BytesRead, BytesWritten                 uint64
	LimitMaxbytes                           int64
	CurrItems, TotalItems, Bytes, Evictions int64
}

// Stats returns a snapshot of the counters and the store's figures.
func (h *Handler) Stats() Stats {
	now := h.cfg.Now()
	st := h.cfg.Store.Stats()
	s := Stats{
		Pid: h.pid, Uptime: int64(now.Sub(h.started) / time.Second), Time: now.Unix(),
		Version: h.cfg.Version, Threads: h.cfg.Threads,
		CmdGet: h.c.cmdGet.Load(), CmdSet: h.c.cmdSet.Load(), CmdFlush: h.c.cmdFlush.Load(),
		CmdTouch: h.c.cmdTouch.Load(), CmdMeta: h.c.cmdMeta.Load(),
		GetHits: h.c.getHits.Load(), GetMisses: h.c.getMisses.Load(),
		DeleteHits: h.c.deleteHits.Load(), DeleteMisses: h.c.deleteMisses.Load(),
		IncrHits: h.c.incrHits.Load(), IncrMisses: h.c.incrMisses.Load(),
		DecrHits: h.c.decrHits.Load(), DecrMisses: h.c.decrMisses.Load(),
		CasHits: h.c.casHits.Load(), CasMisses: h.c.casMisses.Load(), CasBadval: h.c.casBadval.Load(),
		TouchHits: h.c.touchHits.Load(), TouchMisses: h.c.touchMisses.Load(),
		StoreTooLarge: h.c.storeTooLarge.Load(),
		BytesRead:     h.c.bytesRead.Load(), BytesWritten: h.c.bytesWritten.Load(),
		LimitMaxbytes: st.LimitBytes, CurrItems: st.Items, TotalItems: st.TotalItems, Bytes: st.Bytes,
		Evictions: st.Evictions,
	}
	if h.cfg.Conns != nil {
		s.CurrConnections, s.TotalConnections = h.cfg.Conns()
	}
	if h.cfg.AnsweredGets != nil {
		g, m := h.cfg.AnsweredGets()
		s.CmdGet += g + m
		s.GetHits += g + m
		s.CmdMeta += m
	}
	return s
}

// appendStats writes the general stats block, in memcached's order, of the
// fields we keep.
func (h *Handler) appendStats(out []byte) []byte {
	s := h.Stats()
	u := func(name string, v uint64) { out = mc.AppendStat(out, name, v) }
	u("pid", uint64(s.Pid))
	u("uptime", uint64(s.Uptime))
	u("time", uint64(s.Time))
	out = mc.AppendStatString(out, "version", s.Version)
	u("pointer_size", 64)
	u("curr_connections", s.CurrConnections)
	u("total_connections", s.TotalConnections)
	u("cmd_get", s.CmdGet)
	u("cmd_set", s.CmdSet)
	u("cmd_flush", s.CmdFlush)
	u("cmd_touch", s.CmdTouch)
	u("cmd_meta", s.CmdMeta)
	u("get_hits", s.GetHits)
	u("get_misses", s.GetMisses)
	u("get_expired", s.GetExpired)
	u("get_flushed", s.GetFlushed)
	u("delete_misses", s.DeleteMisses)
	u("delete_hits", s.DeleteHits)
	u("incr_misses", s.IncrMisses)
	u("incr_hits", s.IncrHits)
	u("decr_misses", s.DecrMisses)
	u("decr_hits", s.DecrHits)
	u("cas_misses", s.CasMisses)
	u("cas_hits", s.CasHits)
	u("cas_badval", s.CasBadval)
	u("touch_hits", s.TouchHits)
	u("touch_misses", s.TouchMisses)
	u("store_too_large", s.StoreTooLarge)
	u("bytes_read", s.BytesRead)
	u("bytes_written", s.BytesWritten)
	u("limit_maxbytes", uint64(s.LimitMaxbytes))
	u("threads", uint64(s.Threads))
	u("bytes", uint64(s.Bytes))
	u("curr_items", uint64(s.CurrItems))
	u("total_items", uint64(s.TotalItems))
	u("evictions", uint64(s.Evictions))
	return append(out, mc.ReplyEnd...)
}
