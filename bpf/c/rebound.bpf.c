// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// Rebound's XDP steering program: redirect requests of the protocols
// Rebound serves (its own and memcached's UDP framing) into AF_XDP sockets,
// pass everything else to the kernel untouched.
//
// Per packet: Ethernet, at most one 802.1Q tag, IPv4 (any IHL, not a
// fragment) or IPv6 (UDP as the next header), UDP to a port in `ports`.
// The port's value says which protocol it speaks, and so what the UDP
// payload must look like:
//   - PORT_REBOUND: at least the 12-byte header, starting with the Rebound
//     magic and version;
//   - PORT_MEMCACHE: memcached's 8-byte frame header (request id, sequence
//     number, total datagrams, reserved; big endian) with total 1 and
//     reserved 0, and at least one byte of command after it. Requests that
//     span several datagrams are left to the kernel (socket path).
// A match from a source outside the allow-list (when one is set) is
// dropped; otherwise it goes to the socket of its rx queue in `xsks`, or to
// the kernel when that queue has none.

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
	CNT_REDIRECTED,      // request (either protocol) sent to an AF_XDP socket
	CNT_PASS_NOT_OURS,   // not a request for its port (other protocol, port, header...)
	CNT_PASS_NO_SOCKET,  // request on a queue without a socket
	CNT_DROP_ALLOWLIST,  // request from a source outside the allow-list
	CNT_PASS_MALFORMED,  // truncated or inconsistent Ethernet/IP/UDP headers
	CNT_PASS_FRAGMENT,   // IPv4 fragment: left to the kernel (socket path)
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

struct lpm4_key {
	__u32 prefixlen;
	__u8 addr[4];
};

struct lpm6_key {
	__u32 prefixlen;
	__u8 addr[16];
};

struct config {
	__u32 allow_enabled; // 1: only sources in allow4/allow6 are served
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
};

// ports[port]: the port_kind of each UDP destination port.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u8);
} ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 1024);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lpm4_key);
	__type(value, __u8);
} allow4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 1024);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lpm6_key);
	__type(value, __u8);
} allow6 SEC(".maps");

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
// allow-list is configured.
static __always_inline int allowed(void *key, int v6)
{
	__u32 zero = 0;
	struct config *cfg = bpf_map_lookup_elem(&config, &zero);
	if (!cfg || !cfg->allow_enabled)
		return 1;
	if (v6)
		return bpf_map_lookup_elem(&allow6, key) != 0;
	return bpf_map_lookup_elem(&allow4, key) != 0;
}

SEC("xdp")
int rebound_steer(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct eth_hdr *eth = data;
	struct udp_hdr *udp;
	__u32 ip_payload; // bytes after the IP header, from the IP length fields
	struct lpm6_key k6;
	struct lpm4_key k4;
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
		k4.prefixlen = 32;
		__builtin_memcpy(k4.addr, &ip->saddr, 4);
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
		k6.prefixlen = 128;
		__builtin_memcpy(k6.addr, ip6->saddr, 16);
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
		// Bytes 4-5: total datagrams, must be 1; bytes 6-7: reserved, 0.
		// Compared byte by byte: the header need not be aligned.
		if (msg[4] != 0 || msg[5] != 1 || msg[6] != 0 || msg[7] != 0)
			return count(CNT_PASS_NOT_OURS, XDP_PASS);
	} else {
		return count(CNT_PASS_NOT_OURS, XDP_PASS);
	}

	if (!allowed(v6 ? (void *)&k6 : (void *)&k4, v6))
		return count(CNT_DROP_ALLOWLIST, XDP_DROP);

	int ret = bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS);
	if (ret == XDP_REDIRECT)
		return count(CNT_REDIRECTED, ret);
	return count(CNT_PASS_NO_SOCKET, ret);
}

char _license[] SEC("license") = "Dual BSD/GPL";
