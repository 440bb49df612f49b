package mcserve

import (
	"bytes"
	"math/bits"
	"net"
	"strconv"
	"time"

	mc "github.com/rebound-net/rebound/codec/memcache"
)

// memcached's "stats" family, as memcached 1.6 answers it, with Rebound's
// figures. The shape modelled is memcached's with its segmented LRU and its
// LRU crawler off (-o no_lru_maintainer,no_lru_crawler), the configuration
// whose fields Rebound's store can fill truthfully, less the fields that
// have no true value here (docs/memcached.md lists them and says why):
//   - a field whose event cannot happen in Rebound (slab moves, crawler
//     reclaims, malloc failures, ...) is reported, as 0, which is true;
//   - a gauge of a structure Rebound does not have (libevent, memcached's
//     response objects and read buffers, its hash table) is left out;
//   - a count the store does not keep (get_expired, expired_unfetched,
//     evicted_unfetched, ...) is left out rather than reported as 0.
//
// The store has no slab classes: each item is an allocation of its own
// size. "stats slabs" and "stats items" report it as one class, 1, whose
// chunks are the items.

// ServerInfo is what the transport tells "stats" and "stats settings":
// its connections, its bounds and where it listens.
type ServerInfo struct {
	CurrConns, TotalConns uint64
	RejectedConns         uint64 // refused over MaxConns
	MaxConns              int
	// Addr is the memcached listen address, "host:port"; an empty host
	// listens on every address.
	Addr string
	// UDP says datagrams are served on Addr's port too.
	UDP bool
	// TLS says the TCP listener requires TLS ("ssl_enabled").
	TLS         bool
	IdleTimeout time.Duration
	// Conns lists the listening sockets and the connections, for
	// "stats conns"; nil lists none.
	Conns func() []ConnInfo
}

// ConnInfo is one line group of "stats conns".
type ConnInfo struct {
	ID         int    // the socket's file descriptor, as memcached numbers them
	Addr       string // "tcp:host:port" or "udp:host:port": a listener's own, a connection's peer
	ListenAddr string // an accepted connection's listener, "tcp:host:port"; "" for listeners
	State      string // "conn_listening" (a TCP listener), "conn_read" (a UDP socket), or "" (not reported)
	UDP        bool   // a UDP socket (memcached prints "<id>:UDP UDP" first)
}

// SetServer tells the handler where its transport's figures come from
// (userspace.Server calls it). Call it before serving; f must be safe for
// concurrent use.
func (h *Handler) SetServer(f func() ServerInfo) {
	h.server.Store(&f)
}

func (h *Handler) serverInfo() ServerInfo {
	if f := h.server.Load(); f != nil {
		return (*f)()
	}
	var si ServerInfo
	if h.cfg.Conns != nil {
		si.CurrConns, si.TotalConns = h.cfg.Conns()
	}
	return si
}

// Stats is a snapshot of the counters "stats" reports, counted since the
// start ("stats reset" does not change them: the metrics read them and
// never go down).
type Stats struct {
	Pid                                int
	Uptime, Time                       int64
	Version                            string
	RusageUser, RusageSystem           time.Duration // the process's CPU time
	MaxConnections                     int
	CurrConnections, TotalConnections  uint64
	RejectedConnections                uint64
	Threads                            int
	CmdGet, CmdSet, CmdFlush, CmdTouch uint64
	CmdMeta                            uint64
	GetHits, GetMisses                 uint64
	DeleteHits, DeleteMisses           uint64
	IncrHits, IncrMisses               uint64
	DecrHits, DecrMisses               uint64
	CasHits, CasMisses, CasBadval      uint64
	TouchHits, TouchMisses             uint64
	StoreTooLarge                      uint64
	AuthCmds, AuthErrors               uint64 // logins tried, and failed
	BytesRead, BytesWritten            uint64
	LimitMaxbytes                      int64
	// The store's index, as memcached's hash table: log2 of its slots,
	// its bytes, and whether entries are moving to a table of another
	// size.
	HashPowerLevel               int
	HashBytes                    int64
	HashIsExpanding              bool
	CurrItems, TotalItems, Bytes int64
	Evictions                    int64
	Reclaimed                    int64 // expired or flushed items removed when found
}

// Stats returns a snapshot of the counters and the store's figures.
func (h *Handler) Stats() Stats {
	now := h.cfg.Now()
	st := h.cfg.Store.Stats()
	si := h.serverInfo()
	s := Stats{
		Pid: h.pid, Uptime: int64(now.Sub(h.started) / time.Second), Time: now.Unix(),
		Version: h.cfg.Version, Threads: h.cfg.Threads,
		MaxConnections:  si.MaxConns,
		CurrConnections: si.CurrConns, TotalConnections: si.TotalConns, RejectedConnections: si.RejectedConns,
		LimitMaxbytes: st.LimitBytes, CurrItems: st.Items, TotalItems: st.TotalItems, Bytes: st.Bytes,
		Evictions: st.Evictions, Reclaimed: st.Expired,
		HashPowerLevel: bits.Len64(uint64(st.IndexSlots)) - 1, HashBytes: st.IndexBytes, HashIsExpanding: st.IndexResizing,
	}
	for i := range h.shards { // the connections' counters, added up
		c := &h.shards[i].counters
		s.CmdGet += c.cmdGet.Load()
		s.CmdSet += c.cmdSet.Load()
		s.CmdFlush += c.cmdFlush.Load()
		s.CmdTouch += c.cmdTouch.Load()
		s.CmdMeta += c.cmdMeta.Load()
		s.GetHits += c.getHits.Load()
		s.GetMisses += c.getMisses.Load()
		s.DeleteHits += c.deleteHits.Load()
		s.DeleteMisses += c.deleteMisses.Load()
		s.IncrHits += c.incrHits.Load()
		s.IncrMisses += c.incrMisses.Load()
		s.DecrHits += c.decrHits.Load()
		s.DecrMisses += c.decrMisses.Load()
		s.CasHits += c.casHits.Load()
		s.CasMisses += c.casMisses.Load()
		s.CasBadval += c.casBadval.Load()
		s.TouchHits += c.touchHits.Load()
		s.TouchMisses += c.touchMisses.Load()
		s.StoreTooLarge += c.storeTooLarge.Load()
		s.AuthCmds += c.authCmds.Load()
		s.AuthErrors += c.authErrors.Load()
		s.BytesRead += c.bytesRead.Load()
		s.BytesWritten += c.bytesWritten.Load()
	}
	s.RusageUser, s.RusageSystem = rusage()
	if h.cfg.AnsweredGets != nil {
		g, m := h.cfg.AnsweredGets()
		s.CmdGet += g + m
		s.GetHits += g + m
		s.CmdMeta += m
	}
	return s
}

// sinceReset is Stats with the counters memcached's "stats reset" zeroes
// counted from the last reset.
func (h *Handler) sinceReset() Stats {
	s := h.Stats()
	h.baseMu.Lock()
	b := h.base
	h.baseMu.Unlock()
	d := func(v *uint64, b uint64) { *v = max(*v, b) - b }
	d(&s.TotalConnections, b.TotalConnections)
	d(&s.RejectedConnections, b.RejectedConnections)
	for _, p := range [...]struct {
		v *uint64
		b uint64
	}{
		{&s.CmdGet, b.CmdGet}, {&s.CmdSet, b.CmdSet}, {&s.CmdFlush, b.CmdFlush},
		{&s.CmdTouch, b.CmdTouch}, {&s.CmdMeta, b.CmdMeta},
		{&s.GetHits, b.GetHits}, {&s.GetMisses, b.GetMisses},
		{&s.DeleteHits, b.DeleteHits}, {&s.DeleteMisses, b.DeleteMisses},
		{&s.IncrHits, b.IncrHits}, {&s.IncrMisses, b.IncrMisses},
		{&s.DecrHits, b.DecrHits}, {&s.DecrMisses, b.DecrMisses},
		{&s.CasHits, b.CasHits}, {&s.CasMisses, b.CasMisses}, {&s.CasBadval, b.CasBadval},
		{&s.TouchHits, b.TouchHits}, {&s.TouchMisses, b.TouchMisses},
		{&s.StoreTooLarge, b.StoreTooLarge}, {&s.BytesRead, b.BytesRead}, {&s.BytesWritten, b.BytesWritten},
		{&s.AuthCmds, b.AuthCmds}, {&s.AuthErrors, b.AuthErrors},
	} {
		d(p.v, p.b)
	}
	d64 := func(v *int64, b int64) { *v = max(*v, b) - b }
	d64(&s.TotalItems, b.TotalItems)
	d64(&s.Evictions, b.Evictions)
	d64(&s.Reclaimed, b.Reclaimed)
	return s
}

// resetStats is "stats reset": the counters memcached zeroes (its global
// and per-thread counters, and its item counters) start again from 0 in
// what "stats" answers. The gauges (connections and items now, bytes)
// and the metrics are not touched.
func (h *Handler) resetStats() {
	s := h.Stats()
	h.baseMu.Lock()
	h.base = s
	h.baseMu.Unlock()
}

// appendStatsCmd answers "stats [sub ...]" as memcached 1.6 does: the
// first argument chooses the block and the rest are ignored (except by
// cachedump).
func (h *Handler) appendStatsCmd(out, args []byte) []byte {
	sub, _, _ := bytes.Cut(args, []byte(" "))
	switch string(sub) {
	case "":
		return h.appendStats(out)
	case "reset":
		h.resetStats()
		return append(out, "RESET\r\n"...)
	case "settings":
		return h.appendSettings(out)
	case "slabs":
		return h.appendSlabs(out)
	case "items":
		return h.appendItems(out)
	case "sizes":
		// No size histogram is kept (track_sizes no).
		out = mc.AppendStatString(out, "sizes_status", "disabled")
		return append(out, mc.ReplyEnd...)
	case "sizes_enable":
		// memcached's reply when it cannot keep the histogram; like
		// memcached's, these replies have no END.
		out = mc.AppendStatString(out, "sizes_status", "error")
		return mc.AppendStatString(out, "sizes_error", "not_supported")
	case "sizes_disable":
		return mc.AppendStatString(out, "sizes_status", "disabled")
	case "conns":
		return h.appendConns(out)
	case "cachedump":
		// dump_enabled no: memcached -X answers so.
		return append(out, "CLIENT_ERROR stats cachedump not allowed\r\n"...)
	case "extstore":
		// No external storage: memcached with none configured has no
		// figures either.
		return append(out, mc.ReplyEnd...)
	}
	return append(out, mc.ReplyError...)
}

// appendStats writes the general stats block in memcached's order.
func (h *Handler) appendStats(out []byte) []byte {
	s := h.sinceReset()
	u := func(name string, v uint64) { out = mc.AppendStat(out, name, v) }
	z := func(names ...string) { // events that cannot happen here: 0 is true
		for _, n := range names {
			out = mc.AppendStat(out, n, 0)
		}
	}
	u("pid", uint64(s.Pid))
	u("uptime", uint64(s.Uptime))
	u("time", uint64(s.Time))
	out = mc.AppendStatString(out, "version", s.Version)
	u("pointer_size", strconv.IntSize)
	out = appendTimeval(out, "rusage_user", s.RusageUser)
	out = appendTimeval(out, "rusage_system", s.RusageSystem)
	u("max_connections", uint64(s.MaxConnections))
	u("curr_connections", s.CurrConnections)
	u("total_connections", s.TotalConnections)
	u("rejected_connections", s.RejectedConnections)
	u("cmd_get", s.CmdGet)
	u("cmd_set", s.CmdSet)
	u("cmd_flush", s.CmdFlush)
	u("cmd_touch", s.CmdTouch)
	u("cmd_meta", s.CmdMeta)
	u("get_hits", s.GetHits)
	u("get_misses", s.GetMisses)
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
	z("store_no_memory") // the store evicts rather than refuse
	u("auth_cmds", s.AuthCmds)
	u("auth_errors", s.AuthErrors)
	u("bytes_read", s.BytesRead)
	u("bytes_written", s.BytesWritten)
	u("limit_maxbytes", uint64(s.LimitMaxbytes))
	u("accepting_conns", 1)
	z("listen_disabled_num", "time_in_listen_disabled_us") // over maxconns it refuses, it never stops listening
	u("threads", uint64(s.Threads))
	z("conn_yields")
	u("hash_power_level", uint64(s.HashPowerLevel))
	u("hash_bytes", uint64(s.HashBytes))
	expanding := uint64(0)
	if s.HashIsExpanding {
		expanding = 1
	}
	u("hash_is_expanding", expanding)
	z("slab_reassign_rescues", "slab_reassign_chunk_rescues", "slab_reassign_evictions_nomem",
		"slab_reassign_inline_reclaim", "slab_reassign_busy_items", "slab_reassign_busy_deletes",
		"slab_reassign_running", "slabs_moved", "malloc_fails",
		"log_worker_dropped", "log_worker_written", "log_watcher_skipped", "log_watcher_sent", "log_watchers",
		"unexpected_napi_ids", "round_robin_fallback")
	u("bytes", uint64(s.Bytes))
	u("curr_items", uint64(s.CurrItems))
	u("total_items", uint64(s.TotalItems))
	z("slab_global_page_pool")
	u("evictions", uint64(s.Evictions))
	u("reclaimed", uint64(s.Reclaimed))
	z("crawler_reclaimed", "crawler_items_checked", "lrutail_reflocked")
	return append(out, mc.ReplyEnd...)
}

// appendTimeval writes a duration as memcached writes a struct timeval:
// seconds, a dot, six digits of microseconds.
func appendTimeval(out []byte, name string, d time.Duration) []byte {
	us := d.Microseconds()
	out = append(out, "STAT "...)
	out = append(out, name...)
	out = append(out, ' ')
	out = strconv.AppendInt(out, us/1e6, 10)
	out = append(out, '.')
	frac := strconv.FormatInt(us%1e6+1e6, 10) // 1xxxxxx: keeps the leading zeros
	out = append(out, frac[1:]...)
	return append(out, '\r', '\n')
}

// appendSettings writes "stats settings" in memcached's order: the
// settings that mean something here, with Rebound's values.
func (h *Handler) appendSettings(out []byte) []byte {
	si := h.serverInfo()
	st := h.cfg.Store.Stats()
	u := func(name string, v uint64) { out = mc.AppendStat(out, name, v) }
	str := func(name, v string) { out = mc.AppendStatString(out, name, v) }
	host, port := "", 0
	if h, p, err := net.SplitHostPort(si.Addr); err == nil {
		host = h
		port, _ = strconv.Atoi(p)
	}
	udpPort := 0
	if si.UDP {
		udpPort = port
	}
	if host == "" {
		host = "NULL" // memcached's word for every address
	}
	u("maxbytes", uint64(st.LimitBytes))
	u("maxconns", uint64(si.MaxConns))
	u("tcpport", uint64(port))
	u("udpport", uint64(udpPort))
	str("inter", host)
	u("verbosity", 0) // "verbosity" is accepted and changes nothing
	str("evictions", "on")
	str("domain_socket", "NULL")
	str("shutdown_command", "no")
	u("num_threads", uint64(h.cfg.Threads))
	u("num_threads_per_udp", uint64(h.cfg.Threads))
	str("detail_enabled", "no")
	str("cas_enabled", "yes")
	str("binding_protocol", "auto-negotiate") // text or binary, by a connection's first byte
	// One --auth-file serves both the ASCII login and SASL PLAIN; memcached
	// names its -Y file here.
	if a := h.cfg.Auth; a != nil {
		str("auth_enabled_sasl", "yes")
		str("auth_enabled_ascii", a.path)
	} else {
		str("auth_enabled_sasl", "no")
		str("auth_enabled_ascii", "no")
	}
	u("item_size_max", uint64(h.maxVal))
	str("maxconns_fast", "yes") // over maxconns: an error line, then close
	str("slab_reassign", "no")
	u("slab_automove", 0)
	str("lru_crawler", "no")
	str("flush_enabled", "yes")
	str("dump_enabled", "no")
	str("lru_maintainer_thread", "no")
	str("lru_segmented", "no")
	str("temp_lru", "no")
	u("idle_timeout", uint64(si.IdleTimeout/time.Second))
	str("track_sizes", "no")
	if si.TLS {
		str("ssl_enabled", "yes")
	} else {
		str("ssl_enabled", "no")
	}
	return append(out, mc.ReplyEnd...)
}

// appendSlabs writes "stats slabs": the store as one class, 1, whose
// chunks are its items, each sized to fit (chunk_size is their mean, a
// page holds one), with the per-class counters memcached keeps. The class
// appears once anything was stored, as memcached's do once they have a
// page.
func (h *Handler) appendSlabs(out []byte) []byte {
	s := h.sinceReset()
	active := 0
	if s.CurrItems > 0 || h.everStored() {
		active = 1
		items := uint64(max(s.CurrItems, 0))
		var chunk uint64
		if items > 0 {
			chunk = (uint64(s.Bytes) + items - 1) / items
		}
		u := func(name string, v uint64) { out = mc.AppendStat(out, "1:"+name, v) }
		u("chunk_size", chunk)
		u("chunks_per_page", 1)
		u("total_pages", items)
		u("total_chunks", items)
		u("used_chunks", items)
		u("free_chunks", 0)
		u("free_chunks_end", 0)
		u("get_hits", s.GetHits)
		u("cmd_set", s.CmdSet)
		u("delete_hits", s.DeleteHits)
		u("incr_hits", s.IncrHits)
		u("decr_hits", s.DecrHits)
		u("cas_hits", s.CasHits)
		u("cas_badval", s.CasBadval)
		u("touch_hits", s.TouchHits)
	}
	out = mc.AppendStat(out, "active_slabs", uint64(active))
	out = mc.AppendStat(out, "total_malloced", uint64(max(s.Bytes, 0)))
	return append(out, mc.ReplyEnd...)
}

// everStored reports whether the store has held an item since the start.
func (h *Handler) everStored() bool { return h.cfg.Store.Stats().TotalItems > 0 }

// appendItems writes "stats items": class 1 while it holds items, as
// memcached lists a class, with the fields of memcached without its
// segmented LRU that the store keeps.
func (h *Handler) appendItems(out []byte) []byte {
	s := h.sinceReset()
	if s.CurrItems > 0 {
		u := func(name string, v uint64) { out = mc.AppendStat(out, "items:1:"+name, v) }
		u("number", uint64(s.CurrItems))
		u("mem_requested", uint64(s.Bytes))
		u("evicted", uint64(s.Evictions))
		u("outofmemory", 0) // the store evicts rather than refuse
		u("tailrepairs", 0)
		u("reclaimed", uint64(s.Reclaimed))
		u("crawler_reclaimed", 0) // no crawler
		u("crawler_items_checked", 0)
		u("lrutail_reflocked", 0)
	}
	return append(out, mc.ReplyEnd...)
}

// appendConns writes "stats conns": the transport's sockets, each by its
// file descriptor, with the fields Rebound knows (no per-connection state
// machine or last-command time is kept).
func (h *Handler) appendConns(out []byte) []byte {
	si := h.serverInfo()
	if si.Conns != nil {
		for _, c := range si.Conns() {
			id := strconv.Itoa(c.ID) + ":"
			if c.UDP {
				out = mc.AppendStatString(out, id+"UDP", "UDP")
			}
			out = mc.AppendStatString(out, id+"addr", c.Addr)
			if c.ListenAddr != "" {
				out = mc.AppendStatString(out, id+"listen_addr", c.ListenAddr)
			}
			if c.State != "" {
				out = mc.AppendStatString(out, id+"state", c.State)
			}
		}
	}
	return append(out, mc.ReplyEnd...)
}
