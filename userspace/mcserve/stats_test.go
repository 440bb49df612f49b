package mcserve_test

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rebound-net/rebound/userspace/mcserve"
	"github.com/rebound-net/rebound/userspace/store"
)

// The stats family beside memcached 1.6 in the configuration Rebound's
// answers model: without its segmented LRU and LRU crawler, cachedump
// off (-X). What Rebound leaves out of each block is listed here, so that
// a field dropped or added by accident fails; docs/memcached.md says why.
var statsOracleArgs = []string{"-o", "no_lru_maintainer,no_lru_crawler", "-X"}

var statsLeftOut = map[string][]string{
	"stats": {"libevent", "connection_structures", "response_obj_oom", "response_obj_count",
		"response_obj_bytes", "read_buf_count", "read_buf_bytes", "read_buf_bytes_free", "read_buf_oom",
		"reserved_fds", "get_expired", "get_flushed", "expired_unfetched", "evicted_unfetched"},
	"stats settings": {"oldest", "umask", "growth_factor", "chunk_size", "stat_key_prefix", "reqs_per_event",
		"tcp_backlog", "hashpower_init", "slab_automove_ratio", "slab_automove_window", "slab_chunk_max",
		"lru_crawler_sleep", "lru_crawler_tocrawl", "tail_repair_time", "hash_algorithm", "hot_lru_pct",
		"warm_lru_pct", "hot_max_factor", "warm_max_factor", "temporary_ttl", "watcher_logbuf_size",
		"worker_logbuf_size", "read_buf_mem_limit", "inline_ascii_response",
		"ext_item_size", "ext_item_age", "ext_low_ttl", "ext_recache_rate", "ext_wbuf_size", "ext_compact_under",
		"ext_drop_under", "ext_max_sleep", "ext_max_frag", "slab_automove_freeratio", "ext_drop_unread",
		"ssl_chain_cert", "ssl_key", "ssl_verify_mode", "ssl_keyformat", "ssl_ciphers", "ssl_ca_cert",
		"ssl_wbuf_size", "ssl_session_cache", "ssl_kernel_tls", "ssl_min_version",
		"num_napi_ids", "memory_file"},
	"stats slabs": nil,
	"stats items": {"items:1:age", "items:1:evicted_nonzero", "items:1:evicted_time",
		"items:1:expired_unfetched", "items:1:evicted_unfetched"},
}

// Fields whose values the same commands make equal on both servers.
var statsSameValue = map[string][]string{
	// Not cmd_meta: memcached 1.6.18 counts only "me" there, mcserve every
	// meta command. Not curr_connections: memcached counts its UDP
	// sockets as connections.
	"stats": {"pointer_size", "cmd_get", "cmd_set", "cmd_flush", "cmd_touch",
		"get_hits", "get_misses", "delete_misses", "delete_hits", "incr_misses", "incr_hits", "decr_misses",
		"decr_hits", "cas_misses", "cas_hits", "cas_badval", "touch_hits", "touch_misses", "store_too_large",
		"store_no_memory", "auth_cmds", "auth_errors", "accepting_conns", "listen_disabled_num", "threads",
		"conn_yields", "curr_items", "evictions", "reclaimed", "max_connections", "rejected_connections"},
	"stats settings": {"maxconns", "verbosity", "evictions", "domain_socket", "shutdown_command", "num_threads",
		"num_threads_per_udp", "detail_enabled", "cas_enabled", "auth_enabled_sasl", "auth_enabled_ascii",
		"item_size_max", "maxconns_fast", "lru_crawler", "flush_enabled", "dump_enabled",
		"lru_maintainer_thread", "lru_segmented", "temp_lru", "idle_timeout", "track_sizes", "ssl_enabled",
		"binding_protocol"},
	"stats slabs": {"1:used_chunks", "1:get_hits", "1:cmd_set", "1:delete_hits", "1:incr_hits", "1:decr_hits",
		"1:cas_hits", "1:cas_badval", "1:touch_hits", "active_slabs"},
	"stats items": {"items:1:number", "items:1:evicted", "items:1:outofmemory", "items:1:tailrepairs",
		"items:1:reclaimed", "items:1:crawler_reclaimed", "items:1:crawler_items_checked",
		"items:1:lrutail_reflocked"},
}

// Settings that differ, on purpose: slab_reassign and slab_automove (no
// slabs to move).

type statLine struct{ name, value string }

func parseStats(t *testing.T, reply string) []statLine {
	t.Helper()
	var out []statLine
	for _, l := range strings.Split(strings.TrimSuffix(reply, "\r\n"), "\r\n") {
		if l == "END" {
			break
		}
		f := strings.SplitN(l, " ", 3)
		if len(f) != 3 || f[0] != "STAT" {
			t.Fatalf("not a STAT line: %q in %q", l, reply)
		}
		out = append(out, statLine{f[1], f[2]})
	}
	return out
}

func statMap(ls []statLine) map[string]string {
	m := map[string]string{}
	for _, l := range ls {
		m[l.name] = l.value
	}
	return m
}

// statsPair is the differential pair with the oracle in stats's
// configuration and mcserve told what memcached's transport would say.
func statsPair(t *testing.T) *pair {
	p := newPair(t, statsOracleArgs...)
	p.h.SetServer(func() mcserve.ServerInfo {
		return mcserve.ServerInfo{CurrConns: 1, TotalConns: 1, MaxConns: 1024, Addr: "127.0.0.1:1", UDP: true}
	})
	return p
}

// statsWorkload: every counted command, hit and miss, the same on both.
const statsWorkload = "set a 0 0 1\r\nx\r\nset b 0 0 2\r\nyy\r\nset n 0 0 1\r\n5\r\nadd a 0 0 1\r\nz\r\n" +
	"get a\r\nget a b\r\nget nope\r\ngat 100 a nope\r\ndelete b\r\ndelete nope\r\n" +
	"incr n 2\r\nincr nope 1\r\ndecr n 1\r\ndecr nope 1\r\n" +
	"cas nope 0 0 1 1\r\nq\r\ntouch a 100\r\ntouch nope 100\r\nmg a v\r\nmg nope v\r\n"

func TestStatsBesideMemcached(t *testing.T) {
	p := statsPair(t)
	p.run(t, statsWorkload)
	for _, cmd := range []string{"stats", "stats settings", "stats slabs", "stats items"} {
		theirs, _ := p.oracle.exchange(t, cmd+"\r\n")
		ours, _ := p.ours.exchange(t, cmd+"\r\n")
		compareStats(t, cmd, parseStats(t, theirs), parseStats(t, ours))
	}
}

// compareStats checks ours lists memcached's fields in memcached's order,
// less exactly the ones statsLeftOut names, and that the comparable
// values agree.
func compareStats(t *testing.T, cmd string, theirs, ours []statLine) {
	t.Helper()
	ourNames := map[string]bool{}
	for _, l := range ours {
		ourNames[l.name] = true
	}
	var expect []string
	var leftOut []string
	for _, l := range theirs {
		if ourNames[l.name] {
			expect = append(expect, l.name)
		} else {
			leftOut = append(leftOut, l.name)
		}
	}
	var got []string
	for _, l := range ours {
		got = append(got, l.name)
	}
	if !slices.Equal(got, expect) {
		t.Errorf("%s: fields, in order:\n memcached (those we have): %v\n mcserve:                   %v", cmd, expect, got)
	}
	want := statsLeftOut[cmd]
	if !slices.Equal(leftOut, want) {
		t.Errorf("%s: left out %v, want exactly %v", cmd, leftOut, want)
	}
	tm, om := statMap(theirs), statMap(ours)
	for _, f := range statsSameValue[cmd] {
		if tm[f] != om[f] {
			t.Errorf("%s: %s: memcached %q, mcserve %q", cmd, f, tm[f], om[f])
		}
	}
}

// stats reset zeroes what memcached zeroes, in both.
func TestStatsResetBesideMemcached(t *testing.T) {
	p := statsPair(t)
	p.run(t, statsWorkload, "stats reset\r\n", "stats reset extra words\r\n")
	for _, cmd := range []string{"stats", "stats slabs", "stats items"} {
		theirs, _ := p.oracle.exchange(t, cmd+"\r\n")
		ours, _ := p.ours.exchange(t, cmd+"\r\n")
		tm, om := statMap(parseStats(t, theirs)), statMap(parseStats(t, ours))
		for _, f := range append(statsSameValue[cmd], "total_items", "total_connections") {
			if tm[f] != om[f] {
				t.Errorf("%s after reset: %s: memcached %q, mcserve %q", cmd, f, tm[f], om[f])
			}
		}
		if cmd == "stats" && (om["cmd_get"] != "0" || om["curr_items"] != "2" || om["total_items"] != "0") {
			t.Errorf("after reset: cmd_get %s curr_items %s total_items %s, want 0 2 0", om["cmd_get"], om["curr_items"], om["total_items"])
		}
	}
	// The metrics count on: a reset is the text protocol's alone.
	if s := p.h.Stats(); s.CmdGet == 0 || s.CmdSet == 0 || s.TotalItems == 0 {
		t.Errorf("Stats after reset: %+v", s)
	}
}

// The subcommands whose replies are the same bytes.
func TestStatsSubcommandsBesideMemcached(t *testing.T) {
	p := statsPair(t)
	p.run(t,
		"stats sizes\r\n",
		"stats sizes_disable\r\nversion\r\n", // no END, as memcached
		"stats nosuch\r\n", "stats Settings\r\n", "stats proxy\r\n", "stats slabsx\r\n",
		"stats cachedump 1 1\r\n", "stats cachedump\r\n",
		"stats extstore\r\n",
		"stats slabs\r\nstats items\r\n", // empty store: no class yet
	)
}

func TestStatsDifferences(t *testing.T) {
	h := newHandler()
	for _, c := range []struct{ in, want string }{
		// No per-prefix stats: memcached answers OK, a usage line, or the dump.
		{"stats detail on\r\n", "ERROR\r\n"},
		{"stats detail dump\r\n", "ERROR\r\n"},
		// No size histogram to turn on; no END, as memcached's reply.
		{"stats sizes_enable\r\n", "STAT sizes_status error\r\nSTAT sizes_error not_supported\r\n"},
	} {
		_, out, _, _ := h.NewConn().Serve([]byte(c.in), nil)
		if string(out) != c.want {
			t.Errorf("%q: %q, want %q", c.in, out, c.want)
		}
	}
}

var timeval = regexp.MustCompile(`^\d+\.\d{6}$`)

func TestStatsRusageAndConns(t *testing.T) {
	h := newHandler()
	h.SetServer(func() mcserve.ServerInfo {
		return mcserve.ServerInfo{Addr: ":11211", IdleTimeout: time.Minute, Conns: func() []mcserve.ConnInfo {
			return []mcserve.ConnInfo{
				{ID: 7, Addr: "tcp:0.0.0.0:11211", State: "conn_listening"},
				{ID: 8, Addr: "udp:0.0.0.0:11211", State: "conn_read", UDP: true},
				{ID: 9, Addr: "tcp:127.0.0.1:5000", ListenAddr: "tcp:127.0.0.1:11211"},
			}
		}}
	})
	_, out, _, _ := h.NewConn().Serve([]byte("stats\r\n"), nil)
	m := map[string]string{}
	for _, l := range strings.Split(string(out), "\r\n") {
		if f := strings.Fields(l); len(f) == 3 {
			m[f[1]] = f[2]
		}
	}
	for _, f := range []string{"rusage_user", "rusage_system"} {
		if !timeval.MatchString(m[f]) {
			t.Errorf("%s %q: want seconds.microseconds", f, m[f])
		}
	}
	_, out, _, _ = h.NewConn().Serve([]byte("stats settings\r\n"), nil)
	for _, want := range []string{"STAT inter NULL\r\n", "STAT tcpport 11211\r\n", "STAT udpport 0\r\n", "STAT idle_timeout 60\r\n"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("stats settings lacks %q:\n%s", want, out)
		}
	}
	_, out, _, _ = h.NewConn().Serve([]byte("stats conns\r\n"), nil)
	want := "STAT 7:addr tcp:0.0.0.0:11211\r\nSTAT 7:state conn_listening\r\n" +
		"STAT 8:UDP UDP\r\nSTAT 8:addr udp:0.0.0.0:11211\r\nSTAT 8:state conn_read\r\n" +
		"STAT 9:addr tcp:127.0.0.1:5000\r\nSTAT 9:listen_addr tcp:127.0.0.1:11211\r\nEND\r\n"
	if string(out) != want {
		t.Errorf("stats conns:\n%q\nwant\n%q", out, want)
	}
}

// TestStatsSettingsTLS: "ssl_enabled" says whether the TCP listener
// requires TLS, as memcached -Z reports it.
func TestStatsSettingsTLS(t *testing.T) {
	for _, tls := range []bool{false, true} {
		h := newHandler()
		h.SetServer(func() mcserve.ServerInfo { return mcserve.ServerInfo{Addr: ":11211", TLS: tls} })
		_, out, _, _ := h.NewConn().Serve([]byte("stats settings\r\n"), nil)
		want := "STAT ssl_enabled no\r\n"
		if tls {
			want = "STAT ssl_enabled yes\r\n"
		}
		if !strings.Contains(string(out), want) {
			t.Errorf("TLS %v: stats settings lacks %q", tls, want)
		}
	}
}

// hash_power_level, hash_bytes and hash_is_expanding describe the
// store's index as memcached's describe its hash table: they follow it
// as it grows with the items.
func TestStatsHashFollowsTheIndex(t *testing.T) {
	st := store.New(store.Config{MemoryLimit: 64 << 20})
	h := mcserve.New(mcserve.Config{Store: st})
	c := h.NewConn()
	read := func() map[string]string {
		t.Helper()
		_, out, _, _ := c.Serve([]byte("stats\r\n"), nil)
		return statMap(parseStats(t, string(out)))
	}
	check := func(m map[string]string) (level int, bytes int64) {
		t.Helper()
		s := st.Stats()
		level, _ = strconv.Atoi(m["hash_power_level"])
		bytes, _ = strconv.ParseInt(m["hash_bytes"], 10, 64)
		if int64(1)<<level != s.IndexSlots || bytes != s.IndexBytes || bytes < s.IndexSlots*8 {
			t.Fatalf("hash_power_level %s, hash_bytes %s; the index has %d slots in %d bytes", m["hash_power_level"], m["hash_bytes"], s.IndexSlots, s.IndexBytes)
		}
		return level, bytes
	}
	level0, bytes0 := check(read())
	var in []byte
	for i := range 200_000 {
		in = fmt.Appendf(in[:0], "set key:%024d 0 0 8 noreply\r\n12345678\r\n", i)
		c.Serve(in, nil)
	}
	for deadline := time.Now().Add(10 * time.Second); st.Stats().IndexResizing; {
		if time.Now().After(deadline) {
			t.Fatal("the index still resizing after 10 s")
		}
		time.Sleep(time.Millisecond)
	}
	m := read()
	level, bytes := check(m)
	t.Logf("hash_power_level %d -> %d, hash_bytes %d -> %d", level0, level, bytes0, bytes)
	if level <= level0 || bytes <= bytes0 || m["hash_is_expanding"] != "0" {
		t.Fatalf("after 200,000 items: hash_power_level %d (was %d), hash_bytes %d (was %d), hash_is_expanding %s",
			level, level0, bytes, bytes0, m["hash_is_expanding"])
	}
}
