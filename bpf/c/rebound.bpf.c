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
//     host's own addresses. Routed traffic passing through is not ours.
// Userspace fills local4/local6 before it sets check_dst and clears
// check_dst before it empties them, so an address in both the old and the
// new set is never refused during an update.
//
// A local match from a source outside the allow-list (when one is set) is
// dropped; otherwise it goes to the socket of its rx queue in `xsks`, or to
// the kernel when that queue has none.
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
	CNT_MAX,
};

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
	__uint(max_entries, CNT_MAX);
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

// local reports whether a request is addressed to this host, from a source
// that can be answered (see the header).
static __always_inline int local(struct eth_hdr *eth, struct allow_key *src,
				 __be32 dst4, struct addr6 *dst6, int v6)
{
	__u32 zero = 0;
	struct config *cfg = bpf_map_lookup_elem(&config, &zero);
	if (!mac_local(eth, cfg) || !src_answerable(src, v6))
		return 0;
	if (!cfg || !cfg->check_dst)
		return 1;
	if (v6)
		return bpf_map_lookup_elem(&local6, dst6) != 0;
	return bpf_map_lookup_elem(&local4, &dst4) != 0;
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
	int v6 = 0;

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

	if (!local(eth, &key, dst4, &dst6, v6))
		return count(CNT_PASS_NOT_LOCAL, XDP_PASS);
	if (!allowed(&key))
		return count(CNT_DROP_ALLOWLIST, XDP_DROP);

	int ret = bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS);
	if (ret == XDP_REDIRECT)
		return count(CNT_REDIRECTED, ret);
	return count(CNT_PASS_NO_SOCKET, ret);
}

char _license[] SEC("license") = "Dual BSD/GPL";
