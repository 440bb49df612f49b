// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// XDP_PASS on every packet. The lab puts it on the client side of the veth
// pair: a veth with an XDP program receives through NAPI, so frames that
// the server side sends from XDP or AF_XDP are delivered at once instead of
// waiting in the peer's ring for other traffic.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int xdp_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char _license[] SEC("license") = "Dual BSD/GPL";
