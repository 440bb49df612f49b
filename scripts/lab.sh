#!/usr/bin/env bash
# The veth/netns lab: two network namespaces, server and client, joined by
# one veth pair, with addresses from the benchmarking ranges (198.18.0.0/15,
# 2001:2::/48) and nothing routed out.
#
#   scripts/lab.sh up [--bench] [--busy-poll]   create it (idempotent); --bench adds threaded NAPI pinned
#                                  per side; --busy-poll sets the server end's napi_defer_hard_irqs and
#                                  gro_flush_timeout for 'rebound serve --busy-poll'
#   scripts/lab.sh down            remove exactly what 'up' made
#   scripts/lab.sh exec srv|cli CMD [ARGS...]   run a command in a namespace
#   scripts/lab.sh status          show what exists
#
# Settings (environment):
#   LAB_PREFIX   name prefix of namespaces and links (default rb; at most 8 characters)
#   LAB_QUEUES   rx/tx queues of each veth end (default 1)
#   LAB_SRV_CPU, LAB_CLI_CPU   CPUs the NAPI threads are pinned to with --bench (default 1 and 0)
#
# Layout:
#   ${P}-srv netns: ${P}s0  198.18.0.2/24 2001:2::2/64   ${P}s0.100 198.18.1.2/24 2001:2:0:100::2/64
#   ${P}-cli netns: ${P}c0  198.18.0.1/24 2001:2::1/64   ${P}c0.100 198.18.1.1/24 2001:2:0:100::1/64
#   GRO on both ends, an XDP_PASS program on the client end, static neighbours.
set -euo pipefail

P=${LAB_PREFIX:-rb}
Q=${LAB_QUEUES:-1}
SRV_NS=$P-srv
CLI_NS=$P-cli
SRV_IF=${P}s0
CLI_IF=${P}c0
VLAN=100
SRV_MAC=02:00:00:00:00:02
CLI_MAC=02:00:00:00:00:01
here=$(cd "$(dirname "$0")" && pwd)
PASS_OBJ=$here/../bpf/pass_bpfel.o

die() { echo "lab: $*" >&2; exit 1; }
in_srv() { ip netns exec "$SRV_NS" "$@"; }
in_cli() { ip netns exec "$CLI_NS" "$@"; }

need_root() {
	[ "$(id -u)" = 0 ] || die "needs root (network namespaces, veth, XDP): run with sudo"
	command -v ip >/dev/null || die "needs iproute2 ('apt-get install iproute2')"
}

up() {
	need_root
	[ ${#P} -le 8 ] || die "LAB_PREFIX '$P' is longer than 8 characters (interface names have 15)"
	ip netns list | grep -qw "^$SRV_NS" || ip netns add "$SRV_NS"
	ip netns list | grep -qw "^$CLI_NS" || ip netns add "$CLI_NS"
	if ! in_srv ip link show "$SRV_IF" >/dev/null 2>&1; then
		ip link add "$SRV_IF" netns "$SRV_NS" numtxqueues "$Q" numrxqueues "$Q" address "$SRV_MAC" type veth \
			peer name "$CLI_IF" netns "$CLI_NS" numtxqueues "$Q" numrxqueues "$Q" address "$CLI_MAC"
	fi
	for side in srv cli; do
		if [ $side = srv ]; then ns=$SRV_NS; dev=$SRV_IF; me=2; peer=1; peer_mac=$CLI_MAC
		else ns=$CLI_NS; dev=$CLI_IF; me=1; peer=2; peer_mac=$SRV_MAC; fi
		# (iproute2 6.1 prints "Peer netns reference is invalid" for veth
		# peers in other namespaces on this kernel: harmless, silenced.)
		ip -n "$ns" link set lo up
		ip -n "$ns" link set "$dev" up
		ip -n "$ns" addr replace "198.18.0.$me/24" dev "$dev"
		ip -n "$ns" addr replace "2001:2::$me/64" dev "$dev" nodad
		ip -n "$ns" neigh replace "198.18.0.$peer" lladdr "$peer_mac" dev "$dev" nud permanent
		ip -n "$ns" neigh replace "2001:2::$peer" lladdr "$peer_mac" dev "$dev" nud permanent
		if ip -n "$ns" link show "$dev.$VLAN" >/dev/null 2>&1 ||
			ip -n "$ns" link add link "$dev" name "$dev.$VLAN" type vlan id "$VLAN" 2>/dev/null; then
			ip -n "$ns" link set "$dev.$VLAN" up
			ip -n "$ns" addr replace "198.18.1.$me/24" dev "$dev.$VLAN"
			ip -n "$ns" addr replace "2001:2:0:$VLAN::$me/64" dev "$dev.$VLAN" nodad
			ip -n "$ns" neigh replace "198.18.1.$peer" lladdr "$peer_mac" dev "$dev.$VLAN" nud permanent
			ip -n "$ns" neigh replace "2001:2:0:$VLAN::$peer" lladdr "$peer_mac" dev "$dev.$VLAN" nud permanent
		elif [ $side = srv ]; then
			echo "lab: this kernel has no 802.1Q support (CONFIG_VLAN_8021Q): no VLAN sub-interface" >&2
		fi
		# GRO gives veth a NAPI receive path, like a NIC.
		if command -v ethtool >/dev/null; then ip netns exec "$ns" ethtool -K "$dev" gro on >/dev/null 2>&1 || true; fi
	done
	# XDP_PASS on the client end: frames the server sends from XDP/AF_XDP are
	# delivered at once instead of waiting in the client's ring.
	if ! in_cli ip link show "$CLI_IF" 2>/dev/null | grep -q 'prog/xdp'; then
		[ -f "$PASS_OBJ" ] || die "missing $PASS_OBJ (run 'make generate')"
		in_cli ip link set dev "$CLI_IF" xdpdrv obj "$PASS_OBJ" sec xdp ||
			in_cli ip link set dev "$CLI_IF" xdpgeneric obj "$PASS_OBJ" sec xdp
	fi
	local a
	for a in "$@"; do
		case $a in
		--bench) bench_tuning ;;
		--busy-poll) busy_poll_tuning ;;
		*) die "up: unknown option $a (want --bench, --busy-poll)" ;;
		esac
	done
	local vl="no vlan"
	in_srv ip link show "$SRV_IF.$VLAN" >/dev/null 2>&1 && vl="vlan $VLAN 198.18.1.2"
	echo "lab up: $SRV_NS ($SRV_IF 198.18.0.2, 2001:2::2, $vl) <-> $CLI_NS ($CLI_IF 198.18.0.1, 2001:2::1), $Q queue(s)"
}

# Threaded NAPI with each side's NAPI threads pinned to that side's CPU, so
# the server's receive work is counted on the server's core.
bench_tuning() {
	local srv_cpu=${LAB_SRV_CPU:-1} cli_cpu=${LAB_CLI_CPU:-0}
	in_srv sh -c "echo 1 > /sys/class/net/$SRV_IF/threaded" 2>/dev/null || echo "lab: threaded NAPI not available on $SRV_IF" >&2
	in_cli sh -c "echo 1 > /sys/class/net/$CLI_IF/threaded" 2>/dev/null || echo "lab: threaded NAPI not available on $CLI_IF" >&2
	local pid comm
	for pid in $(pgrep -f "napi/$SRV_IF-" || true); do taskset -pc "$srv_cpu" "$pid" >/dev/null || true; done
	for pid in $(pgrep -f "napi/$CLI_IF-" || true); do taskset -pc "$cli_cpu" "$pid" >/dev/null || true; done
	comm=$(pgrep -fa "napi/(${SRV_IF}|${CLI_IF})-" | wc -l)
	echo "lab: threaded NAPI on, $comm NAPI threads pinned (server CPU $srv_cpu, client CPU $cli_cpu)"
}

# What busy polling wants of the interface (docs/operations.md): the
# kernel defers its own polling of the queue (napi_defer_hard_irqs rounds
# that find nothing, then a gro_flush_timeout timer) while the application
# polls it.
busy_poll_tuning() {
	in_srv sh -c "echo ${LAB_DEFER_IRQS:-2} > /sys/class/net/$SRV_IF/napi_defer_hard_irqs && echo ${LAB_GRO_FLUSH_NS:-200000} > /sys/class/net/$SRV_IF/gro_flush_timeout" ||
		die "could not set napi_defer_hard_irqs and gro_flush_timeout on $SRV_IF"
	echo "lab: busy-poll settings on $SRV_IF: napi_defer_hard_irqs=${LAB_DEFER_IRQS:-2} gro_flush_timeout=${LAB_GRO_FLUSH_NS:-200000}"
}

down() {
	need_root
	# Deleting a namespace deletes the veth end in it and so the pair.
	for ns in "$SRV_NS" "$CLI_NS"; do
		if ip netns list | grep -qw "^$ns"; then ip netns del "$ns"; fi
	done
	echo "lab down: removed $SRV_NS and $CLI_NS"
}

status() {
	for ns in "$SRV_NS" "$CLI_NS"; do
		if ip netns list | grep -qw "^$ns"; then
			echo "== $ns"; ip -n "$ns" -br addr 2>/dev/null
		else
			echo "== $ns: absent"
		fi
	done
}

cmd=${1:-}
shift || true
case "$cmd" in
up) up "$@" ;;
down) down ;;
status) status ;;
exec)
	side=${1:-}
	shift || true
	[ $# -gt 0 ] || die "usage: lab.sh exec srv|cli CMD [ARGS...]"
	case "$side" in
	srv) in_srv "$@" ;;
	cli) in_cli "$@" ;;
	*) die "exec: want srv or cli, not '$side'" ;;
	esac
	;;
*) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; [ -z "$cmd" ] || exit 2 ;;
esac
