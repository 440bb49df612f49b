// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// Rebound's XDP steering program: redirect requests of the protocols
// Rebound serves (its own, memcached's UDP framing, and raw datagrams of the
// user's own protocols) into AF_XDP sockets, pass everything else to the
// kernel untouched.
//
// Per packet: Ethernet, at most one 802.1Q tag, IPv4 (any IHL, not a
// fragment) or IPv6 (UDP as the next header), UDP to a port in `ports`.
// The port's value says which protocol it speaks, and so what the UDP
// payload must look like:
//   - PORT_REBOUND: at least the 12-byte header, starting with the Rebound
//     magic and version;
//   - PORT_MEMCACHE: memcached's 8-byte frame header (request id, sequence
//     number, total datagrams, reserved; big endian) with total 1, and at
//     least one byte of command after it. Reserved is not checked, as
//     memcached does not check it (memcaslap sends 0x0100 there). Requests
//     that span several datagrams are left to the kernel (socket path).
//   - PORT_RAW: a protocol of the user's own, which the program cannot
//     parse: every datagram with a payload of at least one byte is a
//     request; its content is left to userspace. An empty datagram is
//     not ours.
//
// A match must then be addressed to this host and come from a source that
// can be answered, or it is passed to the kernel (CNT_PASS_NOT_LOCAL):
//   - always: the destination MAC is unicast, the source MAC is unicast,
//     and the source IP is not 0.0.0.0, 255.255.255.255, 224.0.0.0/4, ::
//     or ff00::/8 (a reply would go to a group or to nobody);
//   - when config.check_mac: the destination MAC is config.mac, the
//     interface's own;
//   - when config.check_dst: the destination IP is in local4/local6, the
//     host's own addresses. Routed traffic passing through is not ours;
//   - when the port has an entry in port_hosts (its listen address names
//     one host): the destination IP is that address. A port listening on
//     every address has none.
// Userspace fills local4/local6 before it sets check_dst and clears
// check_dst before it empties them, so an address in both the old and the
// new set is never refused during an update.
//
// A local match whose source IP is one of ours (the destination itself,
// an address in local4/local6, or a loopback address) is dropped
// (CNT_DROP_OWN_SOURCE): no host sends that on a wire, the kernel drops it
// as a martian, and an answer to it could start a loop between our own
// sockets. A local match from a source outside the allow-list (when one is
// set) is dropped; otherwise it goes to the socket of its rx queue in
// `xsks`, or to the kernel when that queue has none.
//
// The allow-list is one LPM trie (IPv4 and IPv6 keyed apart by a family
// byte) held in slot 0 of the array-of-maps `allow`; an empty slot means no
// list. Userspace builds a new trie aside and swaps it in with one update
// of the slot, so a packet sees the old list or the new one, whole; the
// kernel frees the old trie once no program run can still hold it.

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define REBOUND_MAGIC 0xB5
#define REBOUND_VERSION 0x01
#define REBOUND_HEADER_LEN 12
#define MEMCACHE_HEADER_LEN 8
#define ETH_P_8021Q_ 0x8100
#define MAX_QUEUES 256

// Outcomes, one per-CPU counter each. Keep in step with bpf.Counter in Go.
enum counter {
	CNT_SEEN = 0,        // every packet the program ran on
	CNT_REDIRECTED,      // request (any protocol) sent to an AF_XDP socket
	CNT_PASS_NOT_OURS,   // not a request for its port (other protocol, port, header...)
	CNT_PASS_NO_SOCKET,  // request on a queue without a socket
	CNT_DROP_ALLOWLIST,  // request from a source outside the allow-list
	CNT_PASS_MALFORMED,  // truncated or inconsistent Ethernet/IP/UDP headers
	CNT_PASS_FRAGMENT,   // IPv4 fragment: left to the kernel (socket path)
	CNT_PASS_NOT_LOCAL,  // request not addressed to us, or from a group/unset source
	CNT_ANSWERED,        // request answered here with XDP_TX (see answer())
	CNT_DROP_UNFINISHED, // a reply begun here that could not be finished: dropped
	CNT_DROP_OWN_SOURCE, // request whose source IP is one of ours (or loopback): dropped
	CNT_MAX,
};

// What the program tries to answer itself, and how that went: counter
// CNT_MAX + op * AO_MAX + outcome. Keep in step with bpf.AnswerOp and
// bpf.AnswerOutcome in Go.
enum answer_op {
	AOP_PING = 0, // Rebound PING
	AOP_GET,      // Rebound GET
	AOP_MC_GET,   // memcached "get <key>"
	AOP_MC_MG,    // memcached "mg <key>" with v and f or neither
	AOP_MAX,
};

enum answer_outcome {
	AO_HIT = 0,        // answered with XDP_TX
	AO_MISS,           // key not in the map (or flushed): to userspace
	AO_EXPIRED,        // item past its expiry: to userspace
	AO_TOO_LARGE,      // reply over the path MTU or the frame's room: to userspace
	AO_AMPLIFICATION,  // reply over the amplification bound: to userspace
	AO_BAD_CHECKSUM,   // request checksum wrong: to userspace, which drops it
	AO_MAX,
};

#define NUM_COUNTERS (CNT_MAX + AOP_MAX * AO_MAX)

struct eth_hdr {
	__u8 dst[6];
	__u8 src[6];
	__be16 proto;
};

struct vlan_hdr {
	__be16 tci;
	__be16 proto;
};

struct ipv4_hdr {
	__u8 ver_ihl;
	__u8 tos;
	__be16 tot_len;
	__be16 id;
	__be16 frag_off;
	__u8 ttl;
	__u8 protocol;
	__sum16 check;
	__be32 saddr;
	__be32 daddr;
};

struct ipv6_hdr {
	__be32 ver_tc_flow;
	__be16 payload_len;
	__u8 nexthdr;
	__u8 hop_limit;
	__u8 saddr[16];
	__u8 daddr[16];
};

struct udp_hdr {
	__be16 source;
	__be16 dest;
	__be16 len;
	__sum16 check;
};

#define ALLOW_FAMILY_V4 4
#define ALLOW_FAMILY_V6 6

// Key of the allow-list trie. prefixlen counts the family byte: 8 + the
// prefix's bits. IPv4 addresses take the first 4 bytes of addr.
struct allow_key {
	__u32 prefixlen;
	__u8 family; // ALLOW_FAMILY_V4 or ALLOW_FAMILY_V6
	__u8 addr[16];
	__u8 pad[3]; // zero, never compared
};

struct addr6 {
	__u8 b[16];
};

struct config {
	__u8 mac[6];    // the interface's MAC, compared when check_mac
	__u8 check_mac; // 1: the destination MAC must be mac
	__u8 check_dst; // 1: the destination IP must be in local4/local6
};

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, MAX_QUEUES);
	__type(key, __u32);
	__type(value, __u32);
} xsks SEC(".maps");

// What a UDP destination port (host order index into `ports`) speaks.
// Keep in step with bpf.go.
enum port_kind {
	PORT_NONE = 0,     // not steered
	PORT_REBOUND = 1,  // Rebound protocol
	PORT_MEMCACHE = 2, // memcached UDP protocol
	PORT_RAW = 3,      // the user's own protocol: any non-empty payload
};

// ports[port]: the port_kind of each UDP destination port.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u8);
} ports SEC(".maps");

// The allow-list trie; userspace creates one per list from this template.
// Sizes rather than types: clang leaves an inner map's key type a forward
// declaration in BTF. Keep struct allowKey in bpf.go in step.
struct allow_trie {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 2048);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(key_size, sizeof(struct allow_key));
	__uint(value_size, sizeof(__u8));
};

// allow[0]: the allow-list in force, or empty for none.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 1);
	__type(key, __u32);
	__array(values, struct allow_trie);
} allow SEC(".maps");

// trust[0]: the sources memcached replies answered here are not bounded
// for (--trust-src), or empty for none; swapped whole, as allow.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 1);
	__type(key, __u32);
	__array(values, struct allow_trie);
} trust SEC(".maps");

// port_hosts[port]: the one destination address a port is steered for
// (its listen host); no entry: any local address. Elements are freed
// after an RCU grace period (no preallocation), so a lookup never reads
// one that an update is reusing.
struct port_host {
	__u8 family; // ALLOW_FAMILY_V4 or ALLOW_FAMILY_V6
	__u8 pad[3];
	__u8 addr[16]; // IPv4: the first 4 bytes
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, struct port_host);
} port_hosts SEC(".maps");

// The host's own addresses (keys in network order), when config.check_dst.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u8);
} local4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct addr6);
	__type(value, __u8);
} local6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct config);
} config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NUM_COUNTERS);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

static __always_inline int count(__u32 c, int verdict)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &c);
	if (v)
		*v += 1;
	return verdict;
}

// allowed reports whether the source may be served: always when no
// allow-list is in force. The trie is looked up once, so the whole packet
// sees one list.
static __always_inline int allowed(struct allow_key *key)
{
	__u32 zero = 0;
	void *trie = bpf_map_lookup_elem(&allow, &zero);
	if (!trie)
		return 1;
	return bpf_map_lookup_elem(trie, key) != 0;
}

// trusted reports whether the source is in the trusted list (none when
// the list is empty).
static __always_inline int trusted(struct allow_key *key)
{
	__u32 zero = 0;
	void *trie = bpf_map_lookup_elem(&trust, &zero);
	if (!trie)
		return 0;
	return bpf_map_lookup_elem(trie, key) != 0;
}

// mac_local reports whether the Ethernet addresses allow an answer: both
// unicast and, when configured, the destination the interface's own.
static __always_inline int mac_local(struct eth_hdr *eth, struct config *cfg)
{
	if ((eth->dst[0] | eth->src[0]) & 1) // group bit: multicast, broadcast
		return 0;
	if (!cfg || !cfg->check_mac)
		return 1;
	return ((eth->dst[0] ^ cfg->mac[0]) | (eth->dst[1] ^ cfg->mac[1]) |
		(eth->dst[2] ^ cfg->mac[2]) | (eth->dst[3] ^ cfg->mac[3]) |
		(eth->dst[4] ^ cfg->mac[4]) | (eth->dst[5] ^ cfg->mac[5])) == 0;
}

// src_answerable reports whether a reply to the source IP (in key) can
// reach one host: not unset, broadcast or multicast.
static __always_inline int src_answerable(struct allow_key *key, int v6)
{
	if (v6) {
		__u8 any = 0;
#pragma unroll
		for (int i = 0; i < 16; i++)
			any |= key->addr[i];
		return any && key->addr[0] != 0xff; // not ::, not ff00::/8
	}
	__u32 a = ((__u32)key->addr[0] << 24) | ((__u32)key->addr[1] << 16) |
		  ((__u32)key->addr[2] << 8) | key->addr[3];
	return a != 0 && a != 0xffffffff && (a & 0xf0000000) != 0xe0000000;
}

// port_host_ok reports whether the destination is the port's listen
// host, when it has one.
static __always_inline int port_host_ok(__u32 port, __be32 dst4, struct addr6 *dst6, int v6)
{
	struct port_host *h = bpf_map_lookup_elem(&port_hosts, &port);
	if (!h)
		return 1;
	if (v6) {
		if (h->family != ALLOW_FAMILY_V6)
			return 0;
		__u8 diff = 0;
#pragma unroll
		for (int i = 0; i < 16; i++)
			diff |= h->addr[i] ^ dst6->b[i];
		return diff == 0;
	}
	return h->family == ALLOW_FAMILY_V4 && __builtin_memcmp(h->addr, &dst4, 4) == 0;
}

// local reports whether a request is addressed to this host on its port,
// from a source that can be answered (see the header).
static __always_inline int local(struct eth_hdr *eth, struct allow_key *src,
				 __be32 dst4, struct addr6 *dst6, int v6, __u32 port)
{
	__u32 zero = 0;
	struct config *cfg = bpf_map_lookup_elem(&config, &zero);
	if (!mac_local(eth, cfg) || !src_answerable(src, v6))
		return 0;
	if (!port_host_ok(port, dst4, dst6, v6))
		return 0;
	if (!cfg || !cfg->check_dst)
		return 1;
	if (v6)
		return bpf_map_lookup_elem(&local6, dst6) != 0;
	return bpf_map_lookup_elem(&local4, &dst4) != 0;
}

// own_source reports whether the source IP (in src) is one of ours: the
// destination itself, one of the host's addresses (when they are set), or
// a loopback address. See the header.
static __always_inline int own_source(struct allow_key *src, __be32 dst4, struct addr6 *dst6, int v6)
{
	if (v6) {
		__u8 diff = 0, low = 0;
#pragma unroll
		for (int i = 0; i < 16; i++)
			diff |= src->addr[i] ^ dst6->b[i];
#pragma unroll
		for (int i = 0; i < 15; i++)
			low |= src->addr[i];
		if (diff == 0 || (low == 0 && src->addr[15] == 1)) // the destination, ::1
			return 1;
	} else {
		if (__builtin_memcmp(src->addr, &dst4, 4) == 0 || src->addr[0] == 127)
			return 1;
	}
	__u32 zero = 0;
	struct config *cfg = bpf_map_lookup_elem(&config, &zero);
	if (!cfg || !cfg->check_dst)
		return 0;
	if (v6)
		return bpf_map_lookup_elem(&local6, src->addr) != 0;
	return bpf_map_lookup_elem(&local4, src->addr) != 0;
}

// ---- Answers in XDP -------------------------------------------------------
//
// When answers.on, requests the program can answer exactly are answered
// here: the reply is written over the request in its frame and sent back
// with XDP_TX. Everything else goes on to the AF_XDP socket unchanged.
// Answered here:
//   - Rebound PING (any payload): the request with the RESPONSE flag;
//   - Rebound GET of an item in the map: header and value;
//   - memcached "get <key>\r\n" (one key, nothing else in the datagram) of
//     an item in the map: "VALUE <key> <flags> <bytes>\r\n<data>\r\nEND\r\n"
//     in one datagram (request id echoed, sequence 0, total 1).
// The rules are the userspace path's: the request's checksums must hold
// (or be partial, as the kernel accepts them); the reply is bounded by the
// path MTU and by the amplification factor times the request (an item over
// the bound is left to userspace, which knows the trusted sources); the
// reply has its MACs, addresses and ports swapped, TTL/hop limit 64, IPv4
// options kept, and full IPv4 and UDP checksums.
//
// The items: userspace (the Go store) is the only writer. An item's
// metadata and replies live in a slot, behind the slot's sequence count
// (see struct item): a slot of `items_small` (256 bytes) when its
// memcached reply fits in one, else of `items`. `item_buckets` maps a
// key's 64-bit hash (read_key) to its slot: the hash picks a bucket of
// eight entries, each the slot's number and size class under the rest of
// the hash (its tag); no two keys in a bucket share a tag (userspace
// leaves such a key unheld). Userspace writes a new key's slot before the
// entry that points to it, and both in place through shared mappings, so
// a write costs no system call. The program copies the slot out while its
// count shows no write, and checks there that the slot holds the key it
// looked up, whole (a slot can pass to another key while a run holds it).
// So it never answers with a torn or a foreign value.
//
// Userspace builds the replies when it stores the item: the slot holds the
// memcached get reply after the frame header, "VALUE <key> <flags>
// <bytes>\r\n<data>\r\nEND\r\n", whole, with its one's complement sum; the
// key is compared in it, and a Rebound GET and a meta get take the data
// (and its sum) and the flags from inside it. What a GET reads of a small
// item is a few cache lines in a row, and the slots of many keys fit the
// caches: with 1.4 KiB slots, 10,000 keys cost a GET answered here more
// than half again as much as a few keys did.

#define ITEM_KEY_MAX 250   // longest key answered here (memcached's limit)
#define ITEM_VALUE_MAX 1024 // largest value answered here
#define MC_SUFFIX_MAX 24   // " <flags> <bytes>\r\n" of a memcached VALUE line
#define MC_UDP_MAX_PAYLOAD 1392 // reply bytes in one memcached datagram
#define REPLY_TTL 64
#define FLAG_RESPONSE 0x01
#define OP_PING 0x01
#define OP_GET 0x02
#define MAX_FRAME 4096

#define ITEM_KEY_WORDS 32 // ITEM_KEY_MAX bytes, zero-padded to whole words
// "VALUE " key suffix: where the data starts in the memcached reply.
#define MC_HEAD_MAX (6 + ITEM_KEY_MAX + MC_SUFFIX_MAX)
// The memcached reply: head, data, "\r\nEND\r\n" (1311 bytes at most),
// copied 32 bytes a round.
#define MC_REPLY_ROUNDS 41
#define MC_AREA (MC_REPLY_ROUNDS * 32)
// A small slot: 256 bytes, of which 208 for the reply; userspace puts an
// item there when its reply's rounds fit (192 bytes).
#define SMALL_SLOT 256
#define SMALL_AREA (SMALL_SLOT - 8 - 40)
#define SMALL_ROUNDS (SMALL_AREA / 32)
#define SMALL_KEY_WORDS ((SMALL_AREA - 6) / 8) // what the key compare may read
// The per-CPU copy: the reply, and room after it for reads that start
// at the data (up to MC_HEAD_MAX in) and go on for up to COPY_MAX bytes.
#define COPY_MAX MC_AREA
#define COPY_ROOM (MC_HEAD_MAX + COPY_MAX + 8)

#define BUCKET_WAYS 8
#define SLOT_BITS 20 // slots: at most 1 << 20 of each size (bpf.MaxAnswerItems)
#define SLOT_MASK ((1ULL << SLOT_BITS) - 1)
#define SMALL_BIT (1ULL << SLOT_BITS) // the entry's slot is in items_small
#define TAG_MASK (~((1ULL << (SLOT_BITS + 1)) - 1))
#define NO_SLOT 0xffffffff

// A key as read from a request: its bytes in whole words, the last word's
// bytes past the key zero.
struct item_key {
	__u64 w[ITEM_KEY_WORDS];
};

struct item_meta {
	__u64 expire_ns; // now_ns() deadline: expired from then on; 0: never
	__u64 stored_ns; // when it was stored, in unix ns (compared with the flush state only)
	__u64 cas;
	__u32 flags;
	__u16 len;       // bytes of data
	__u8 key_len;    // bytes of key
	__u8 suffix_len; // bytes of suffix (" <flags> <bytes>\r\n", after the key in mc)
	__u16 data_sum;  // one's complement sum of data, in memory order, as from an even offset
	__u16 mc_sum;    // the same of the memcached reply (mc_len bytes of mc)
	__u16 mc_len;    // bytes of the memcached reply: mc_head + len + 7
	__u16 mc_head;   // where the data starts in mc: 6 + key_len + suffix_len
};

#define ITEM_META_WORDS (sizeof(struct item_meta) / 8)

// A slot: the item, behind a sequence count. Userspace writes slots in
// place through a shared mapping of the map (BPF_F_MMAPABLE): it makes seq
// odd, writes the item, then makes seq even again, each step ordered
// after the one before. The program copies from the slot between two
// readings of seq (seq_read) and uses the copy only when they are equal
// and even: one version of the slot, whole.
struct item {
	__u32 seq;
	__u32 pad;
	struct item_meta m;
	__u8 mc[MC_AREA]; // "VALUE <key><suffix><data>\r\nEND\r\n"
};

struct item_small {
	__u32 seq;
	__u32 pad;
	struct item_meta m;
	__u8 mc[SMALL_AREA];
};

// A bucket of item_buckets: entries of tag | SMALL_BIT | slot, 0 for none.
struct bucket {
	__u64 e[BUCKET_WAYS];
};

struct answer_config {
	__u32 on;  // 1: answer what can be answered
	__u32 amp; // amplification factor; 0: no bound
	__u32 mtu; // of the interface
	__u32 pad;
};

// flush_all, as the store applies it: an item with cas <= cas or
// stored_ns <= past is gone; so is, from at_clock on (now_ns()), one
// stored at or before at. past and at are unix ns, as stored_ns; 0 and ~0
// mean none. Userspace writes it in place behind seq, as an item slot
// (struct item), and the program reads it the same way: one version of
// the three, never a mix of two flushes.
struct flush_state {
	__u32 seq;
	__u32 pad;
	__u64 cas;
	__u64 past;
	__u64 at;
	__u64 at_clock;
};

// Set by the loader (bpf.go): the hash's seed, chosen at random for each
// load so that no one can pick keys that crowd one bucket; the bucket
// count less one (a power of two less one); and whether the CPU keeps
// loads in order (x86): then a sequence count is read with plain loads,
// as the kernel's read_seqcount does there, else with atomic operations
// (full barriers).
volatile const __u64 hash_seed = 0;
volatile const __u32 bucket_mask = 0;
volatile const __u32 ordered_loads = 0;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 8192); // userspace sets it: a power of two
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct bucket);
} item_buckets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 10240); // userspace sets it
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct item);
} items SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 10240); // userspace sets it
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct item_small);
} items_small SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct answer_config);
} answers SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct flush_state);
} flush SEC(".maps");

// now_ns is the clock item deadlines are on: CLOCK_TAI, which steps with
// the wall clock the store compares expiry times with (it is the wall
// clock plus a whole number of seconds). On a kernel without the helper
// (before 6.1) the loader turns the call into bpf_ktime_get_ns (the
// monotonic clock) and userspace rebases the deadlines when the wall
// clock steps (bpf/answers.go).
static __always_inline __u64 now_ns(void)
{
	return bpf_ktime_get_tai_ns();
}

// seq_read reads a sequence count with the ordering a seqcount reader
// needs: no load after it moves before it, none before it moves after
// it.
static __always_inline __u32 seq_read(__u32 *seq)
{
	if (!ordered_loads)
		return __sync_fetch_and_add(seq, 0);
	asm volatile("" ::: "memory");
	__u32 v = *(volatile __u32 *)seq;
	asm volatile("" ::: "memory");
	return v;
}

#define NO_FLUSH_AT 0xffffffffffffffffULL

// The flush state, as read.
struct flush_vals {
	__u64 cas, past, at, at_clock;
};

// read_flush reads the flush state, whole: 0 when it is being written
// (userspace then answers).
static __always_inline int read_flush(struct flush_vals *v)
{
	__u32 zero = 0;
	struct flush_state *f = bpf_map_lookup_elem(&flush, &zero);
	if (!f)
		return 0;
	__u32 seq = seq_read(&f->seq);
	if (seq & 1)
		return 0;
	v->cas = f->cas;
	v->past = f->past;
	v->at = f->at;
	v->at_clock = f->at_clock;
	return seq_read(&f->seq) == seq;
}

// What a reply takes from a slot: the metadata and the memcached reply.
struct item_copy {
	struct item_meta m;
	__u8 b[COPY_ROOM];
};

// Per-CPU room for what is copied out of the slot.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct item_copy);
} item_copy SEC(".maps");

// Per-CPU room for the key being looked up (too big for the stack).
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct item_key);
} key_scratch SEC(".maps");

static __always_inline void count_answer(__u32 op, __u32 outcome)
{
	count(CNT_MAX + op * AO_MAX + outcome, 0);
}

// Where the request's layers start, as offsets into the frame (the
// pointers do not survive bpf_xdp_adjust_tail).
struct layout {
	__u32 l3;   // IP header
	__u32 l4;   // UDP header
	__u32 ulen; // UDP length, header included
	__u32 v6;
	__u32 vlan;
	__u32 poff;    // UDP payload (at most 128: checked by unpack)
	__u32 plen;    // its length
};

// off8 bounds a header offset (all are under 256) in a way the verifier
// sees: the barrier stops the compiler from dropping the mask when it
// knows the bound from an earlier check the verifier has forgotten.
static __always_inline __u32 off8(__u32 v)
{
	asm volatile("" : "+r"(v));
	return v & 0xff;
}

#define SUM_ERR 0x10000

// sum_range returns the 16-bit one's complement sum of len bytes at frame
// offset off, in memory byte order (so that it can be stored as is), or
// SUM_ERR when they are not all inside the frame. off must be even
// relative to the start of what is summed with it.
__noinline __u32 sum_range(struct xdp_md *ctx, __u64 off, __u64 len)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u64 acc = 0;
	__u32 i;

	asm volatile("" : "+r"(off));
	if (off > MAX_FRAME || len > MAX_FRAME)
		return SUM_ERR;
	__u8 *p = data + off;
	// 32 bytes a round with one bounds check, then 4 a round.
	__u32 blocks = len / 32;
	for (i = 0; i < MAX_FRAME / 32; i++) {
		if (i >= blocks)
			break;
		__u32 *w = (void *)(p + i * 32);
		if ((void *)(w + 8) > data_end)
			return SUM_ERR;
		acc += (__u64)w[0] + w[1] + w[2] + w[3] + w[4] + w[5] + w[6] + w[7];
	}
	p += blocks * 32;
	len -= blocks * 32;
	for (i = 0; i < 8; i++) {
		if (i * 4 + 4 > len)
			break;
		__u32 *w = (void *)(p + i * 4);
		if ((void *)(w + 1) > data_end)
			return SUM_ERR;
		acc += *w;
	}
	i *= 4;
	if (i + 2 <= len) {
		__u16 *w = (void *)(p + i);
		if ((void *)(w + 1) > data_end)
			return SUM_ERR;
		acc += *w;
		i += 2;
	}
	if (i < len) {
		__u8 *b = p + i;
		if ((void *)(b + 1) > data_end)
			return SUM_ERR;
		acc += *b; // the high byte of a big-endian word: low in memory order
	}
	acc = (acc >> 32) + (acc & 0xffffffff);
	acc = (acc >> 32) + (acc & 0xffffffff);
	acc = (acc >> 16) + (acc & 0xffff);
	acc = (acc >> 16) + (acc & 0xffff);
	acc = (acc >> 16) + (acc & 0xffff);
	return acc;
}

static __always_inline __u32 fold16(__u32 a)
{
	a = (a >> 16) + (a & 0xffff);
	a = (a >> 16) + (a & 0xffff);
	return a;
}

// pseudo_sum sums the pseudo-header's addresses (in memory order) plus
// protocol and UDP length; SUM_ERR on a short frame.
static __always_inline __u32 pseudo_sum(struct xdp_md *ctx, struct layout *lo, __u32 ulen)
{
	__u32 a = lo->v6 ? sum_range(ctx, lo->l3 + 8, 32) : sum_range(ctx, lo->l3 + 12, 8);
	if (a == SUM_ERR)
		return SUM_ERR;
	return fold16(a + bpf_htons(IPPROTO_UDP) + bpf_htons(ulen));
}

// request_sums_ok checks the request's checksums as the socket path does:
// the IPv4 header's; the UDP one in full, or partial (the field holds the
// folded pseudo-header sum: offload between namespaces), or absent over
// IPv4.
static __always_inline int request_sums_ok(struct xdp_md *ctx, struct layout *lo)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	if (!lo->v6) {
		if (lo->l4 - lo->l3 > 60)
			return 0;
		if (sum_range(ctx, lo->l3, lo->l4 - lo->l3) != 0xffff)
			return 0;
	}
	if (lo->l4 > MAX_FRAME)
		return 0;
	struct udp_hdr *udp = data + off8(lo->l4);
	if ((void *)(udp + 1) > data_end)
		return 0;
	__u16 field = udp->check;
	if (field == 0)
		return !lo->v6;
	__u32 ps = pseudo_sum(ctx, lo, lo->ulen);
	__u32 us = sum_range(ctx, lo->l4, lo->ulen);
	if (ps == SUM_ERR || us == SUM_ERR)
		return 0;
	if (fold16(ps + us) == 0xffff)
		return 1;
	return field == ps;
}

// finish_reply turns the frame, whose UDP payload (plen bytes) is already
// the reply, into the reply frame: codec.Frame.Reply in Go does the same.
// The frame must already have its final length. The UDP checksum covers
// the first head payload bytes, summed here, and the rest, whose sum the
// caller knows (tail_sum, in memory order as from an even offset of the
// UDP header: item values come with their sum).
static __always_inline int finish_reply(struct xdp_md *ctx, struct layout *lo, __u32 plen, __u32 head,
					__u32 tail_sum)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct eth_hdr *eth = data;
	__u32 ulen = sizeof(struct udp_hdr) + plen;

	if ((void *)(eth + 1) > data_end)
		return 0;
	__u8 mac[6];
	__builtin_memcpy(mac, eth->dst, 6);
	__builtin_memcpy(eth->dst, eth->src, 6);
	__builtin_memcpy(eth->src, mac, 6);

	if (lo->l3 > 64 || lo->l4 > 128)
		return 0;
	if (lo->v6) {
		struct ipv6_hdr *ip6 = data + off8(lo->l3);
		if ((void *)(ip6 + 1) > data_end)
			return 0;
		struct addr6 a;
		__builtin_memcpy(a.b, ip6->saddr, 16);
		__builtin_memcpy(ip6->saddr, ip6->daddr, 16);
		__builtin_memcpy(ip6->daddr, a.b, 16);
		ip6->payload_len = bpf_htons(ulen);
		ip6->hop_limit = REPLY_TTL;
	} else {
		struct ipv4_hdr *ip = data + off8(lo->l3);
		if ((void *)(ip + 1) > data_end)
			return 0;
		__be32 a = ip->saddr;
		ip->saddr = ip->daddr;
		ip->daddr = a;
		ip->tot_len = bpf_htons(lo->l4 - lo->l3 + ulen);
		ip->ttl = REPLY_TTL;
		ip->check = 0;
		__u32 s = sum_range(ctx, lo->l3, lo->l4 - lo->l3);
		if (s == SUM_ERR)
			return 0;
		data = (void *)(long)ctx->data;
		data_end = (void *)(long)ctx->data_end;
		ip = data + off8(lo->l3);
		if ((void *)(ip + 1) > data_end)
			return 0;
		ip->check = ~s & 0xffff;
	}
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	struct udp_hdr *udp = data + off8(lo->l4);
	if ((void *)(udp + 1) > data_end)
		return 0;
	__be16 port = udp->source;
	udp->source = udp->dest;
	udp->dest = port;
	udp->len = bpf_htons(ulen);
	udp->check = 0;
	__u32 ps = pseudo_sum(ctx, lo, ulen);
	__u32 us = sum_range(ctx, lo->l4, sizeof(struct udp_hdr) + head);
	if (ps == SUM_ERR || us == SUM_ERR || head > plen)
		return 0;
	__u16 c = ~fold16(ps + us + tail_sum) & 0xffff;
	if (c == 0)
		c = 0xffff;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	udp = data + off8(lo->l4);
	if ((void *)(udp + 1) > data_end)
		return 0;
	udp->check = c;
	return 1;
}

// path_max is the largest reply UDP payload the link carries unfragmented
// (codec.Frame.PathMax).
static __always_inline __s32 path_max(struct answer_config *cfg, struct layout *lo)
{
	__s32 n = (__s32)cfg->mtu - (__s32)(lo->l4 - lo->l3) - (__s32)sizeof(struct udp_hdr);
	if (lo->vlan)
		n -= 4;
	return n;
}

#define MOVE_MAX 128 // headers (at most 14 + 4 + 60 + 8) and the payload bytes kept

struct move_buf {
	__u8 b[MOVE_MAX];
};

// Per-CPU room for the bytes grow_head moves (the stack has no room left
// for them under the answer functions).
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct move_buf);
} move_scratch SEC(".maps");

// grow_head grows the frame by delta bytes at its start and moves its
// first n bytes there: 1 done; 0 no room (the frame is unchanged); -1 the
// frame grew but its bytes could not be moved.
__noinline int grow_head(struct xdp_md *ctx, __u64 n, __u32 delta)
{
	__u32 zero = 0;
	struct move_buf *buf = bpf_map_lookup_elem(&move_scratch, &zero);

	asm volatile("" : "+r"(n));
	if (!buf || n == 0 || n > MOVE_MAX)
		return 0;
	if (bpf_xdp_load_bytes(ctx, 0, buf->b, n) != 0)
		return 0;
	if (bpf_xdp_adjust_head(ctx, -(int)delta) != 0)
		return 0;
	return bpf_xdp_store_bytes(ctx, 0, buf->b, n) == 0 ? 1 : -1;
}

// resize makes the UDP payload plen bytes long (the frame ends there:
// Ethernet padding is dropped, as the userspace path drops it): 1 done; 0
// not possible (the frame is unchanged); -1 the frame changed but could
// not be finished.
// A frame grows at its tail where the driver left room there. Where it did
// not, it grows at its head: veth and generic XDP hand the program an
// skb's data, often with only the few bytes of tailroom the allocation
// rounded up to, but always with XDP_PACKET_HEADROOM in front. The headers
// and the first keep bytes of the payload (what the reply keeps of the
// request) move to the new start; the reply rewrites all that follows.
static __always_inline int resize(struct xdp_md *ctx, struct layout *lo, __u32 plen, __u32 keep)
{
	__s32 want = lo->l4 + sizeof(struct udp_hdr) + plen;
	__s32 have = bpf_xdp_get_buff_len(ctx);
	if (bpf_xdp_adjust_tail(ctx, want - have) == 0)
		return 1;
	if (want <= have)
		return 0;
	return grow_head(ctx, lo->l4 + sizeof(struct udp_hdr) + keep, want - have);
}

// The key of a request as read_key leaves it: its bytes in words in the
// per-CPU scratch, how many bytes and words, and its hash.
struct req_key {
	struct item_key *k;
	__u64 h;
	__u64 tail_mask; // of the key's bytes in its last word
	__u32 kl;
	__u32 kw;
};

#define BYTES_1 0x0101010101010101ULL
#define BYTES_80 0x8080808080808080ULL

// has_byte reports whether a byte of w is c (nonzero: yes).
static __always_inline __u64 has_byte(__u64 w, __u8 c)
{
	__u64 v = w ^ (BYTES_1 * c);
	return (v - BYTES_1) & ~v & BYTES_80;
}

// key_hash steps: keyHash in bpf/answers.go computes the same.
#define HASH_MUL 0x9e3779b97f4a7c15ULL

static __always_inline __u64 hash_final(__u64 h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h;
}

// tag_of is the part of a hash a bucket entry holds over its slot number:
// never 0, which marks an empty entry.
static __always_inline __u64 tag_of(__u64 h)
{
	__u64 t = h & TAG_MASK;
	return t ? t : 1ULL << 63;
}

// read_key reads the key of a request (kl bytes, 1 to ITEM_KEY_MAX, at
// frame offset off, past the headers) into the per-CPU scratch and hashes
// it; with crlf, the key must be followed by CRLF. The frame is read
// directly, a word at a time: the last, partial word as the 8 bytes that
// end with the key (the headers are before it), shifted. With plain, a
// key holding a space, CR or LF is refused: one key, as the Go parser
// splits on spaces and lines (a stray CR is left to it). 1: done; 0: no
// key here.
static __always_inline int read_key(struct xdp_md *ctx, __u64 off, __u64 kl, int crlf, int plain,
				    struct req_key *rk)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 zero = 0;
	struct item_key *k = bpf_map_lookup_elem(&key_scratch, &zero);
	asm volatile("" : "+r"(kl));
	asm volatile("" : "+r"(off));
	if (!k || kl == 0 || kl > ITEM_KEY_MAX || off < 8 || off > 256)
		return 0;
	__u8 *end = data + off + kl;
	if ((void *)(end + (crlf ? 2 : 0)) > data_end)
		return 0;
	if (crlf && (end[0] != '\r' || end[1] != '\n'))
		return 0;
	__u32 full = kl / 8, tail = kl & 7;
	__u64 h = hash_seed ^ kl, bad = 0;
	for (int i = 0; i < ITEM_KEY_WORDS; i++) {
		__u64 w;
		if (i < full) {
			__u64 *p = data + off + i * 8;
			if ((void *)(p + 1) > data_end)
				return 0;
			w = *p;
		} else if (i == full && tail) {
			__u64 last = off + kl - 8; // off is at least 8
			asm volatile("" : "+r"(last));
			if (last > 512)
				return 0;
			__u64 *p = data + last;
			if ((void *)(p + 1) > data_end)
				return 0;
			w = *p >> ((8 - tail) * 8);
		} else {
			break;
		}
		k->w[i] = w;
		h = (h ^ w) * HASH_MUL;
		h ^= h >> 29;
		if (plain)
			bad |= has_byte(w, ' ') | has_byte(w, '\r') | has_byte(w, '\n');
	}
	if (bad)
		return 0;
	rk->k = k;
	rk->h = hash_final(h);
	rk->kl = kl;
	rk->kw = (kl + 7) / 8;
	rk->tail_mask = tail ? (1ULL << (tail * 8)) - 1 : ~0ULL;
	return 1;
}

// pkt_write writes len bytes (1 to COPY_MAX) of src, in a copy's b, into the
// frame at off (at most 256), directly: 32 bytes a round, then words, the
// last one the 8 bytes that end at len (over bytes already written, with
// the same values); under 8 bytes, one at a time. 1: done; 0: the frame is
// too short (part may be written).
static __noinline int pkt_write(struct xdp_md *ctx, __u64 off, __u8 *src, __u64 len)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	asm volatile("" : "+r"(off));
	asm volatile("" : "+r"(len));
	if (off > 256 || len == 0 || len > COPY_MAX)
		return 0;
	__u8 *dst = data + off;
	if (len < 8) {
		for (int i = 0; i < 7; i++) {
			if (i >= len)
				break;
			if ((void *)(dst + i + 1) > data_end)
				return 0;
			dst[i] = src[i];
		}
		return 1;
	}
	__u32 rounds = len / 32;
	for (int i = 0; i < MC_REPLY_ROUNDS; i++) {
		if (i >= rounds)
			break;
		__u64 *d = (void *)(dst + i * 32), *s = (void *)(src + i * 32);
		if ((void *)(d + 4) > data_end)
			return 0;
		d[0] = s[0];
		d[1] = s[1];
		d[2] = s[2];
		d[3] = s[3];
	}
	__u32 done = rounds * 32;
	asm volatile("" : "+r"(done));
	if (done > COPY_MAX)
		return 0;
	for (int i = 0; i < 3; i++) {
		if (done + 8 > len)
			break;
		__u64 *d = (void *)(dst + done), *s = (void *)(src + done);
		if ((void *)(d + 1) > data_end || done > COPY_MAX - 8)
			return 0;
		*d = *s;
		done += 8;
	}
	if (done < len) {
		__u64 last = len - 8;
		asm volatile("" : "+r"(last));
		if (last > COPY_MAX - 8)
			return 0;
		__u64 *d = (void *)(dst + last), *s = (void *)(src + last);
		if ((void *)(d + 1) > data_end)
			return 0;
		*d = *s;
	}
	return 1;
}

// copy_slot copies a slot (its sequence count, metadata and reply area;
// area_rounds, key_words: what fits in the area) to c while the count
// shows no write, and checks there that it holds the key: 1 done.
static __always_inline int copy_slot(struct item_copy *c, __u32 *seqp, struct item_meta *m, __u8 *mc,
				     struct req_key *rk, const int area_rounds, const int key_words)
{
	__u32 seq = seq_read(seqp);
	if (seq & 1)
		return 0; // being written: userspace answers
	__u64 *from = (void *)m, *to = (void *)&c->m;
	for (int i = 0; i < ITEM_META_WORDS; i++)
		to[i] = from[i];
	// The slot must hold this key (it may have been given to another
	// since the bucket was read): its length, and its words after
	// "VALUE " (the bytes after the key masked off).
	if (c->m.key_len != rk->kl || rk->kw > key_words)
		return 0;
	__u64 diff = 0;
	for (int i = 0; i < key_words; i++) {
		if (i >= rk->kw)
			break;
		__u64 w = *(__u64 *)(mc + 6 + i * 8);
		if (i == rk->kw - 1)
			w &= rk->tail_mask;
		diff |= w ^ rk->k->w[i];
	}
	if (diff)
		return 0;
	__u32 rounds = (c->m.mc_len + 31) / 32;
	from = (void *)mc;
	to = (void *)c->b;
	for (int i = 0; i < area_rounds; i++) {
		if (i >= rounds)
			break;
		to[i * 4] = from[i * 4];
		to[i * 4 + 1] = from[i * 4 + 1];
		to[i * 4 + 2] = from[i * 4 + 2];
		to[i * 4 + 3] = from[i * 4 + 3];
	}
	return seq_read(seqp) == seq;
}

// lookup finds the live item of the key, or counts why not, and returns
// a per-CPU copy of its metadata and memcached reply.
static __always_inline struct item_copy *lookup(struct req_key *rk, __u32 op)
{
	__u32 zero = 0;
	struct item_copy *c = bpf_map_lookup_elem(&item_copy, &zero);
	__u32 b = (__u32)rk->h & bucket_mask;
	struct bucket *bk = bpf_map_lookup_elem(&item_buckets, &b);
	if (!c || !bk) {
		count_answer(op, AO_MISS);
		return 0;
	}
	__u64 tag = tag_of(rk->h), e = 0;
	for (int i = 0; i < BUCKET_WAYS; i++) {
		e = *(volatile __u64 *)&bk->e[i];
		if ((e & TAG_MASK) == tag)
			break;
		e = 0;
	}
	__u32 idx = e ? e & SLOT_MASK : NO_SLOT;
	int ok = 0;
	if (e & SMALL_BIT) {
		struct item_small *it = bpf_map_lookup_elem(&items_small, &idx);
		ok = it && copy_slot(c, &it->seq, &it->m, it->mc, rk, SMALL_ROUNDS, SMALL_KEY_WORDS);
	} else {
		struct item *it = bpf_map_lookup_elem(&items, &idx);
		ok = it && copy_slot(c, &it->seq, &it->m, it->mc, rk, MC_REPLY_ROUNDS, ITEM_KEY_WORDS);
	}
	if (!ok) {
		count_answer(op, AO_MISS);
		return 0;
	}
	struct flush_vals fv;
	if (!read_flush(&fv)) {
		count_answer(op, AO_MISS);
		return 0;
	}
	// The clock only when a deadline needs it.
	__u64 now = 0;
	if (c->m.expire_ns || fv.at_clock != NO_FLUSH_AT)
		now = now_ns();
	if (c->m.expire_ns && now >= c->m.expire_ns) {
		count_answer(op, AO_EXPIRED);
		return 0;
	}
	if (c->m.cas <= fv.cas || c->m.stored_ns <= fv.past || (now >= fv.at_clock && c->m.stored_ns <= fv.at)) {
		count_answer(op, AO_MISS);
		return 0;
	}
	return c;
}

// item_data is where the item's data starts in the copy (after the
// head of its memcached reply), or 0.
static __always_inline __u8 *item_data(struct item_copy *c)
{
	__u32 head = c->m.mc_head;
	asm volatile("" : "+r"(head));
	if (head > MC_HEAD_MAX)
		return 0;
	return c->b + head;
}

// swap16 turns a one's complement sum as from an even offset into the sum
// of the same bytes at an odd one.
static __always_inline __u32 swap16(__u32 s)
{
	return ((s & 0xff) << 8) | ((s >> 8) & 0xff);
}

// value_tail_sum is the sum, for finish_reply, of what follows the first
// head payload bytes of a meta get reply: the item's data, then a fixed
// end of after_sum (its sum from an even offset). The data's sum comes
// with the item; each is turned where it starts at an odd offset (the
// UDP header before the payload is 8 bytes, even).
static __always_inline __u32 value_tail_sum(struct item_meta *m, __u32 head, __u32 after_sum)
{
	__u32 v = m->data_sum;
	if (head & 1)
		v = swap16(v);
	if ((head + m->len) & 1)
		after_sum = swap16(after_sum);
	return v + after_sum;
}

// mc_frame_header makes the memcached frame header of the request at
// frame offset poff that of a reply in one datagram: the request id kept,
// sequence 0, total 1, reserved 0.
static __always_inline int mc_frame_header(struct xdp_md *ctx, __u32 poff)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u8 *h = data + off8(poff);
	if ((void *)(h + MEMCACHE_HEADER_LEN) > data_end)
		return 0;
	h[2] = 0;
	h[3] = 0;
	h[4] = 0;
	h[5] = 1;
	h[6] = 0;
	h[7] = 0;
	return 1;
}

// bounded checks a reply of plen UDP payload bytes against the path and
// the amplification bound.
// src_trusted reports whether the request's source is in trust, read
// from the frame (still the request's): looked up only for a memcached
// reply over the amplification bound.
static __always_inline int src_trusted(struct xdp_md *ctx, struct layout *lo)
{
	struct allow_key key = {};
	if (lo->v6) {
		key.prefixlen = 8 + 128;
		key.family = ALLOW_FAMILY_V6;
		if (bpf_xdp_load_bytes(ctx, lo->l3 + 8, key.addr, 16) != 0)
			return 0;
	} else {
		key.prefixlen = 8 + 32;
		key.family = ALLOW_FAMILY_V4;
		if (bpf_xdp_load_bytes(ctx, lo->l3 + 12, key.addr, 4) != 0)
			return 0;
	}
	return trusted(&key);
}

static __always_inline int bounded(struct xdp_md *ctx, struct answer_config *cfg, struct layout *lo, __u32 plen,
				   __u32 op)
{
	__u32 req = lo->ulen - sizeof(struct udp_hdr);
	if ((__s32)plen > path_max(cfg, lo)) {
		count_answer(op, AO_TOO_LARGE);
		return 0;
	}
	// In 64 bits: a large factor times a request must not wrap around.
	// A trusted source is spared for memcached only, as in userspace (the
	// Rebound protocol's bound has no exceptions).
	if (cfg->amp && plen > (__u64)cfg->amp * req &&
	    !((op == AOP_MC_GET || op == AOP_MC_MG) && src_trusted(ctx, lo))) {
		count_answer(op, AO_AMPLIFICATION);
		return 0;
	}
	return 1;
}

// store writes len bytes (1 to max) from from into the frame at off.
static __always_inline int store(struct xdp_md *ctx, __u32 off, const void *from, __u64 len, __u64 max)
{
	asm volatile("" : "+r"(len));
	if (len == 0 || len > max)
		return 0;
	return bpf_xdp_store_bytes(ctx, off, (void *)from, len) == 0;
}

// begin_reply checks a reply of plen UDP payload bytes against the
// bounds and the request's checksums, then sizes the frame for it,
// keeping the first keep payload bytes (see resize): 1 the frame is ready
// for the reply; 0 not answered here (counted; the frame is unchanged);
// -1 the frame changed but could not be finished.
static __always_inline int begin_reply(struct xdp_md *ctx, struct layout *lo, struct answer_config *cfg,
				       __u32 op, __u32 plen, __u32 keep)
{
	if (!bounded(ctx, cfg, lo, plen, op))
		return 0;
	if (!request_sums_ok(ctx, lo)) {
		count_answer(op, AO_BAD_CHECKSUM);
		return 0;
	}
	int r = resize(ctx, lo, plen, keep);
	if (r == 0)
		count_answer(op, AO_TOO_LARGE);
	return r;
}

// unpack rebuilds the layout the answer functions get as scalars (global
// functions take no pointers to the caller's stack; shape: bit 0 IPv6, bit
// 1 VLAN) with where the UDP payload starts and its
// length, and returns the answer config, or 0 (also for a payload that
// starts past byte 128, which no header stack here reaches).
static __always_inline struct answer_config *unpack(struct layout *lo, __u32 l3, __u32 l4, __u32 ulen, __u32 shape)
{
	lo->l3 = l3;
	lo->l4 = l4;
	lo->ulen = ulen;
	lo->v6 = shape & 1;
	lo->vlan = (shape >> 1) & 1;
	__u32 zero = 0;
	struct answer_config *cfg = bpf_map_lookup_elem(&answers, &zero);
	lo->poff = l4 + sizeof(struct udp_hdr);
	lo->plen = ulen - sizeof(struct udp_hdr);
	if (!cfg || ulen < sizeof(struct udp_hdr) || lo->poff > 128)
		return 0;
	return cfg;
}

// answer_rebound answers a PING or a GET hit; the header was checked for
// magic and version.
__noinline int answer_rebound(struct xdp_md *ctx, __u32 l3, __u32 l4, __u32 ulen, __u32 shape)
{
	struct layout l, *lo = &l;
	struct answer_config *cfg = unpack(lo, l3, l4, ulen, shape);
	if (!cfg)
		return 0;
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 poff = off8(lo->poff), plen = lo->plen;
	__u8 *msg = data + poff;
	// The header only: a PING may carry nothing after it, and its frame
	// may end there (IPv6 has no Ethernet padding at that size). The GET
	// key length byte is checked for below.
	if ((void *)(msg + REBOUND_HEADER_LEN) > data_end)
		return 0;
	// A request: no flags, status 0, length 12+len (ParseDatagram).
	__u32 len = ((__u32)msg[8] << 8) | msg[9];
	if (msg[3] != 0 || msg[10] != 0 || msg[11] != 0 || plen != REBOUND_HEADER_LEN + len)
		return 0;
	if (msg[2] == OP_PING) {
		int r = begin_reply(ctx, lo, cfg, AOP_PING, plen, plen);
		if (r <= 0)
			return r;
		data = (void *)(long)ctx->data;
		data_end = (void *)(long)ctx->data_end;
		msg = data + poff;
		if ((void *)(msg + REBOUND_HEADER_LEN) > data_end)
			return -1;
		msg[3] = FLAG_RESPONSE;
		if (!finish_reply(ctx, lo, plen, plen, 0))
			return -1;
		count_answer(AOP_PING, AO_HIT);
		return 1;
	}
	if (msg[2] != OP_GET)
		return 0;
	// GET: keylen u8, key, padding (ignored).
	if (len < 1 || (void *)(msg + REBOUND_HEADER_LEN + 1) > data_end)
		return 0;
	__u32 kl = msg[REBOUND_HEADER_LEN];
	if (kl == 0 || kl > ITEM_KEY_MAX || 1 + kl > len)
		return 0;
	struct req_key rk;
	if (!read_key(ctx, poff + REBOUND_HEADER_LEN + 1, kl, 0, 0, &rk))
		return 0;
	struct item_copy *it = lookup(&rk, AOP_GET);
	if (!it)
		return 0;
	__u8 *vdata = item_data(it);
	__u32 vlen = it->m.len;
	if (!vdata)
		return 0;
	if (vlen > ITEM_VALUE_MAX)
		return 0;
	__u32 rlen = REBOUND_HEADER_LEN + vlen;
	int r = begin_reply(ctx, lo, cfg, AOP_GET, rlen, REBOUND_HEADER_LEN);
	if (r <= 0)
		return r;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	msg = data + poff;
	if ((void *)(msg + REBOUND_HEADER_LEN) > data_end)
		return -1;
	msg[3] = FLAG_RESPONSE;
	msg[8] = vlen >> 8;
	msg[9] = vlen;
	if (vlen > 0 && !pkt_write(ctx, poff + REBOUND_HEADER_LEN, vdata, vlen))
		return -1;
	// The value starts 8 + 12 bytes into the UDP header: an even offset.
	if (!finish_reply(ctx, lo, rlen, REBOUND_HEADER_LEN, it->m.data_sum))
		return -1;
	count_answer(AOP_GET, AO_HIT);
	return 1;
}

// answer_mg answers a meta get hit: "mg <key>" then " v", " f", " v f",
// " f v" or nothing, then CRLF, alone in its datagram. The reply is
// memcached's: "VA <bytes>[ f<flags>]\r\n<data>\r\n" with v, else
// "HD[ f<flags>]\r\n". Other flags (and base64 keys) are left to
// userspace.
__noinline int answer_mg(struct xdp_md *ctx, __u32 l3, __u32 l4, __u32 ulen, __u32 shape)
{
	struct layout l, *lo = &l;
	struct answer_config *cfg = unpack(lo, l3, l4, ulen, shape);
	if (!cfg)
		return 0;
	__u32 poff = off8(lo->poff), plen = lo->plen;
	// frame header, "mg ", 1 to 250 key bytes, the flags, CRLF
	if (plen < MEMCACHE_HEADER_LEN + 3 + 1 + 2 || plen > MEMCACHE_HEADER_LEN + 3 + ITEM_KEY_MAX + 6)
		return 0;
	__u32 rest = plen - MEMCACHE_HEADER_LEN - 3; // key and what follows it
	// The last 8 bytes of the payload (at least 14 long): the flags are in
	// its last 6.
	__u8 t[8];
	if (bpf_xdp_load_bytes(ctx, poff + plen - 8, t, 8) != 0)
		return 0;
	if (t[6] != '\r' || t[7] != '\n')
		return 0;
	__u32 tl = 2, want_v = 0, want_f = 0;
	if (t[2] == ' ' && t[4] == ' ' && ((t[3] == 'v' && t[5] == 'f') || (t[3] == 'f' && t[5] == 'v'))) {
		tl = 6;
		want_v = want_f = 1;
	} else if (t[4] == ' ' && (t[5] == 'v' || t[5] == 'f')) {
		tl = 4;
		want_v = t[5] == 'v';
		want_f = !want_v;
	}
	if (rest < tl + 1 || rest - tl > ITEM_KEY_MAX)
		return 0;
	__u32 kl = rest - tl;
	struct req_key rk;
	if (!read_key(ctx, poff + MEMCACHE_HEADER_LEN + 3, kl, 0, 1, &rk))
		return 0;
	struct item_copy *it = lookup(&rk, AOP_MC_MG);
	if (!it)
		return 0;
	// The suffix, after "VALUE " and the key; the data.
	__u8 *suffix = it->b + 6 + (kl & 0xff), *vdata = item_data(it);
	if (!vdata)
		return 0;
	__u32 vlen = it->m.len;
	__u32 slen = it->m.suffix_len;
	if (vlen > ITEM_VALUE_MAX || slen > MC_SUFFIX_MAX || slen < 6)
		return 0;
	// The suffix is " <flags> <bytes>\r\n": flags from 1 to the second
	// space, bytes from after it to the CRLF.
	__u32 sp = 0;
	for (int i = 2; i < MC_SUFFIX_MAX; i++) {
		if (suffix[i] == ' ') {
			sp = i;
			break;
		}
	}
	if (sp == 0 || sp + 3 > slen)
		return 0;
	__u32 flen = sp - 1, blen = slen - 2 - (sp + 1);
	// "VA <bytes>" or "HD", " f<flags>", CRLF, then data and CRLF
	__u32 head = MEMCACHE_HEADER_LEN + (want_v ? 3 + blen : 2) + (want_f ? 2 + flen : 0) + 2;
	__u32 rlen = head + (want_v ? vlen + 2 : 0);
	if (rlen - MEMCACHE_HEADER_LEN > MC_UDP_MAX_PAYLOAD) {
		count_answer(AOP_MC_MG, AO_TOO_LARGE);
		return 0;
	}
	int r = begin_reply(ctx, lo, cfg, AOP_MC_MG, rlen, MEMCACHE_HEADER_LEN);
	if (r <= 0)
		return r;
	if (!mc_frame_header(ctx, poff))
		return -1;
	__u32 off = poff + MEMCACHE_HEADER_LEN;
	if (want_v) {
		if (!store(ctx, off, "VA ", 3, 3) || !store(ctx, off + 3, suffix + ((sp + 1) & 0x1f), blen, 8))
			return -1;
		off += 3 + blen;
	} else {
		if (!store(ctx, off, "HD", 2, 2))
			return -1;
		off += 2;
	}
	if (want_f) {
		if (!store(ctx, off, " f", 2, 2) || !store(ctx, off + 2, suffix + 1, flen, 10))
			return -1;
		off += 2 + flen;
	}
	if (!store(ctx, off, "\r\n", 2, 2))
		return -1;
	off += 2;
	__u32 tail = 0;
	if (want_v) {
		// The data and the CRLF after it, as the item's memcached reply has them.
		if (!pkt_write(ctx, off, vdata, vlen + 2))
			return -1;
		tail = value_tail_sum(&it->m, head, 0x0a0d); // CRLF
	}
	if (!finish_reply(ctx, lo, rlen, want_v ? head : rlen, tail))
		return -1;
	count_answer(AOP_MC_MG, AO_HIT);
	return 1;
}

// answer_memcache answers "get <key>\r\n", alone in its datagram, when
// the key is in the map. The frame header was checked (total 1).
__noinline int answer_memcache(struct xdp_md *ctx, __u32 l3, __u32 l4, __u32 ulen, __u32 shape)
{
	struct layout l, *lo = &l;
	struct answer_config *cfg = unpack(lo, l3, l4, ulen, shape);
	if (!cfg)
		return 0;
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 poff = off8(lo->poff), plen = lo->plen;
	__u8 *cmd = data + poff + MEMCACHE_HEADER_LEN;
	if ((void *)(cmd + 4) > data_end)
		return 0;
	// 8-byte frame header, "get ", 1 to 250 key bytes, "\r\n".
	if (plen < MEMCACHE_HEADER_LEN + 4 + 1 + 2 || plen > MEMCACHE_HEADER_LEN + 4 + ITEM_KEY_MAX + 2)
		return 0;
	__u32 kl = plen - MEMCACHE_HEADER_LEN - 4 - 2;
	if (cmd[0] != 'g' || cmd[1] != 'e' || cmd[2] != 't' || cmd[3] != ' ')
		return 0;
	__u32 koff = poff + MEMCACHE_HEADER_LEN + 4;
	// The key and the CRLF after it.
	struct req_key rk;
	if (!read_key(ctx, koff, kl, 1, 1, &rk))
		return 0;
	struct item_copy *it = lookup(&rk, AOP_MC_GET);
	if (!it)
		return 0;
	// "VALUE " key suffix data "\r\nEND\r\n", whole in the item.
	__u32 mlen = it->m.mc_len;
	if (mlen == 0 || mlen > COPY_MAX)
		return 0;
	__u32 rlen = MEMCACHE_HEADER_LEN + mlen;
	if (mlen > MC_UDP_MAX_PAYLOAD) {
		count_answer(AOP_MC_GET, AO_TOO_LARGE);
		return 0;
	}
	int r = begin_reply(ctx, lo, cfg, AOP_MC_GET, rlen, MEMCACHE_HEADER_LEN);
	if (r <= 0)
		return r;
	if (!mc_frame_header(ctx, poff) || !pkt_write(ctx, poff + MEMCACHE_HEADER_LEN, it->b, mlen))
		return -1;
	// The reply starts 8 + 8 bytes into the UDP header: an even offset.
	if (!finish_reply(ctx, lo, rlen, MEMCACHE_HEADER_LEN, it->m.mc_sum))
		return -1;
	count_answer(AOP_MC_GET, AO_HIT);
	return 1;
}

// answer tries to answer the request; 1: the frame is the reply, send it
// with XDP_TX; 0: the frame is unchanged, go on; -1: the frame was
// changed but could not be finished, drop it.
static __always_inline int answer(struct xdp_md *ctx, __u32 l3, __u32 l4, __u32 ulen,
				  __u32 v6, __u32 vlan, __u8 kind)
{
	__u32 zero = 0;
	struct answer_config *cfg = bpf_map_lookup_elem(&answers, &zero);
	if (!cfg || !cfg->on)
		return 0;
	__u32 shape = v6 | vlan << 1;
	if (kind == PORT_REBOUND)
		return answer_rebound(ctx, l3, l4, ulen, shape);
	// As in userspace, trust spares memcached replies only; the list is
	// looked up only for a reply over the amplification bound (bounded).
	if (kind != PORT_MEMCACHE)
		return 0;
	// "mg " or anything else after the frame header.
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u8 *cmd = data + off8(l4 + sizeof(struct udp_hdr) + MEMCACHE_HEADER_LEN);
	if ((void *)(cmd + 3) <= data_end && cmd[0] == 'm' && cmd[1] == 'g' && cmd[2] == ' ')
		return answer_mg(ctx, l3, l4, ulen, shape);
	return answer_memcache(ctx, l3, l4, ulen, shape);
}

SEC("xdp")
int rebound_steer(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct eth_hdr *eth = data;
	struct udp_hdr *udp;
	__u32 ip_payload; // bytes after the IP header, from the IP length fields
	struct allow_key key = {}; // the source, as the allow-list's key
	struct addr6 dst6 = {};
	__be32 dst4 = 0;
	int v6 = 0, vlan = 0;

	count(CNT_SEEN, 0);
	if ((void *)(eth + 1) > data_end)
		return count(CNT_PASS_MALFORMED, XDP_PASS);
	void *l3 = eth + 1;
	__u16 proto = eth->proto;
	if (proto == bpf_htons(ETH_P_8021Q_)) {
		struct vlan_hdr *vh = l3;
		if ((void *)(vh + 1) > data_end)
			return count(CNT_PASS_MALFORMED, XDP_PASS);
		proto = vh->proto;
		l3 = vh + 1;
		vlan = 1;
	}

	if (proto == bpf_htons(ETH_P_IP)) {
		struct ipv4_hdr *ip = l3;
		if ((void *)(ip + 1) > data_end)
			return count(CNT_PASS_MALFORMED, XDP_PASS);
		__u32 ihl = (ip->ver_ihl & 0x0F) * 4;
		__u32 tot = bpf_ntohs(ip->tot_len);
		if ((ip->ver_ihl >> 4) != 4 || ihl < sizeof(*ip) || tot < ihl)
			return count(CNT_PASS_MALFORMED, XDP_PASS);
		if ((void *)ip + tot > data_end)
			return count(CNT_PASS_MALFORMED, XDP_PASS);
		if (ip->frag_off & bpf_htons(0x3FFF))
			return count(CNT_PASS_FRAGMENT, XDP_PASS);
		if (ip->protocol != IPPROTO_UDP)
			return count(CNT_PASS_NOT_OURS, XDP_PASS);
		udp = (void *)ip + ihl;
		ip_payload = tot - ihl;
		key.prefixlen = 8 + 32;
		key.family = ALLOW_FAMILY_V4;
		__builtin_memcpy(key.addr, &ip->saddr, 4);
		dst4 = ip->daddr;
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6_hdr *ip6 = l3;
		if ((void *)(ip6 + 1) > data_end)
			return count(CNT_PASS_MALFORMED, XDP_PASS);
		ip_payload = bpf_ntohs(ip6->payload_len);
		if ((void *)(ip6 + 1) + ip_payload > data_end)
			return count(CNT_PASS_MALFORMED, XDP_PASS);
		if (ip6->nexthdr != IPPROTO_UDP)
			return count(CNT_PASS_NOT_OURS, XDP_PASS);
		udp = (void *)(ip6 + 1);
		v6 = 1;
		key.prefixlen = 8 + 128;
		key.family = ALLOW_FAMILY_V6;
		__builtin_memcpy(key.addr, ip6->saddr, 16);
		__builtin_memcpy(dst6.b, ip6->daddr, 16);
	} else {
		return count(CNT_PASS_NOT_OURS, XDP_PASS);
	}

	if ((void *)(udp + 1) > data_end)
		return count(CNT_PASS_MALFORMED, XDP_PASS);
	__u32 ulen = bpf_ntohs(udp->len);
	if (ulen < sizeof(*udp) || ulen > ip_payload)
		return count(CNT_PASS_MALFORMED, XDP_PASS);

	__u32 port = bpf_ntohs(udp->dest);
	__u8 *kind = bpf_map_lookup_elem(&ports, &port);
	if (!kind)
		return count(CNT_PASS_NOT_OURS, XDP_PASS);

	__u8 *msg = (void *)(udp + 1);
	if (*kind == PORT_REBOUND) {
		if (ulen < sizeof(*udp) + REBOUND_HEADER_LEN || (void *)(msg + REBOUND_HEADER_LEN) > data_end)
			return count(CNT_PASS_NOT_OURS, XDP_PASS);
		if (msg[0] != REBOUND_MAGIC || msg[1] != REBOUND_VERSION)
			return count(CNT_PASS_NOT_OURS, XDP_PASS);
	} else if (*kind == PORT_MEMCACHE) {
		// The header and at least one byte of command.
		if (ulen < sizeof(*udp) + MEMCACHE_HEADER_LEN + 1 ||
		    (void *)(msg + MEMCACHE_HEADER_LEN + 1) > data_end)
			return count(CNT_PASS_NOT_OURS, XDP_PASS);
		// Bytes 4-5: total datagrams, must be 1 (bytes 6-7, reserved,
		// are ignored as memcached ignores them). Compared byte by byte:
		// the header need not be aligned.
		if (msg[4] != 0 || msg[5] != 1)
			return count(CNT_PASS_NOT_OURS, XDP_PASS);
	} else if (*kind == PORT_RAW) {
		// Nothing to parse: at least one byte of payload. ulen is within
		// the IP length, itself within the frame, so no read is needed.
		if (ulen < sizeof(*udp) + 1)
			return count(CNT_PASS_NOT_OURS, XDP_PASS);
	} else {
		return count(CNT_PASS_NOT_OURS, XDP_PASS);
	}

	if (!local(eth, &key, dst4, &dst6, v6, port))
		return count(CNT_PASS_NOT_LOCAL, XDP_PASS);
	if (own_source(&key, dst4, &dst6, v6))
		return count(CNT_DROP_OWN_SOURCE, XDP_DROP);
	if (!allowed(&key))
		return count(CNT_DROP_ALLOWLIST, XDP_DROP);

	if (ulen == ip_payload) {
		int a = answer(ctx, l3 - data, (void *)udp - data, ulen, v6, vlan, *kind);
		if (a > 0)
			return count(CNT_ANSWERED, XDP_TX);
		if (a < 0)
			return count(CNT_DROP_UNFINISHED, XDP_DROP);
	}

	int ret = bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS);
	if (ret == XDP_REDIRECT)
		return count(CNT_REDIRECTED, ret);
	return count(CNT_PASS_NO_SOCKET, ret);
}

char _license[] SEC("license") = "Dual BSD/GPL";
