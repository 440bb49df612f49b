#!/usr/bin/env bash
# The scaling report: for Q = 1..N queues, the same memcached-protocol GET
# load against four servers on a Q-queue veth lab, servers alternated:
#
#   rebound-xdp      rebound serve --mode xdp, answers in XDP (the default)
#   rebound-afxdp    rebound serve --mode xdp --xdp-answers=false (every request through AF_XDP)
#   rebound-udp      rebound serve --mode udp --workers Q
#   memcached        memcached -t Q (1.6, UDP and TCP on 11211)
#
#   scripts/scale.sh            (also: scripts/bench.sh --scale)
#
# Load: 'rebound bench --protocol memcache --transport xdp --queues Q' from
# the client namespace, one AF_XDP socket per queue, GET hits of 4096
# 32-byte keys with 64-byte values, WINDOW in flight per queue. Each server
# and its Q NAPI threads (threaded NAPI, one per queue) are pinned to the
# server's Q CPUs, queue q to CPU q (serve --cpus); memcached and rebound's
# udp mode run under taskset on the same CPUs.
#
# CPU: the server process (utime+stime of /proc/PID/stat) and the kernel's
# receive work for the server's interface (its napi/DEV-ID threads, wherever
# they run), both over the whole bench run; their sum per reply answered
# gives the cost of a reply, and server_cores is that cost at the measured
# rate. softirq_cores (/proc/stat, all CPUs, both sides) is for reference.
#
# Settings (environment): MAX_QUEUES (default: the number of CPUs, at least
# 1), QUEUES (a list, default 1..MAX_QUEUES), DURATION (measured seconds,
# default 5), WARMUP (default 1), ROUNDS (default 2), WINDOW (default 128),
# SERVERS (default all four), BIN (default bin/rebound), MEMCACHED,
# RESULTS (default results), OUT_NAME (default scale-YYYYMMDD-HHMMSS),
# LAB_PREFIX (default rbq). Writes $RESULTS/$OUT_NAME.json and .svg
# ({"rows":[{"server","queues","replies_per_s","server_cores",
# "replies_per_core_s",...}]}), and the raw measurements as .jsonl.
#
# With fewer than 2Q CPUs the server and the load generator share CPUs (on
# a 2-vCPU machine, Q=2 puts both on both): the figures then say what the
# machine allows, not what the server can do.
set -euo pipefail
cd "$(dirname "$0")/.."

[ "$(id -u)" = 0 ] || { echo "scale: needs root for the veth lab and XDP (try: sudo scripts/bench.sh --scale)" >&2; exit 2; }

NPROC=$(nproc)
MAX_QUEUES=${MAX_QUEUES:-$NPROC}
QUEUES=${QUEUES:-$(seq 1 "$MAX_QUEUES" | tr '\n' ' ')}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
ROUNDS=${ROUNDS:-2}
WINDOW=${WINDOW:-128}
SERVERS=${SERVERS:-rebound-xdp rebound-afxdp rebound-udp memcached}
BIN=${BIN:-bin/rebound}
MEMCACHED=${MEMCACHED:-memcached}
RESULTS=${RESULTS:-results}
OUT_NAME=${OUT_NAME:-scale-$(date +%Y%m%d-%H%M%S)}
export LAB_PREFIX=${LAB_PREFIX:-rbq}
SRV_NS=$LAB_PREFIX-srv CLI_NS=$LAB_PREFIX-cli SRV_IF=${LAB_PREFIX}s0 CLI_IF=${LAB_PREFIX}c0
TARGET=198.18.0.2:11211
CLK=$(getconf CLK_TCK)
mkdir -p "$RESULTS"
RAW=$RESULTS/$OUT_NAME.jsonl
: >"$RAW"

[ -x "$BIN" ] || { echo "scale: building $BIN"; CGO_ENABLED=0 go build -o "$BIN" ./cmd/rebound; }
command -v "$MEMCACHED" >/dev/null || { echo "scale: no $MEMCACHED: skipping it" >&2; SERVERS=${SERVERS//memcached/}; }

SRV_PID=
cleanup() {
	if [ -n "$SRV_PID" ]; then kill "$SRV_PID" 2>/dev/null || true; wait "$SRV_PID" 2>/dev/null || true; fi
	scripts/lab.sh down >/dev/null 2>&1 || true
}
trap cleanup EXIT

napi_pids() { # ifname: its threaded NAPI kthreads, in NAPI id order
	local p c
	for p in /proc/[0-9]*; do
		c=$(cat "$p/comm" 2>/dev/null) || continue
		case $c in "napi/$1-"*) echo "${c##*-} ${p#/proc/}" ;; esac
	done | sort -n | awk '{print $2}'
}
pin_napi() { # ifname cpu...: NAPI thread i to the i-th CPU, wrapping
	local ifn=$1 i=0 pid
	shift
	local cpus=("$@")
	for pid in $(napi_pids "$ifn"); do
		taskset -pc "${cpus[$((i % ${#cpus[@]}))]}" "$pid" >/dev/null
		i=$((i + 1))
	done
	[ $i -gt 0 ] || echo "scale: no NAPI threads on $ifn: the kernel's receive work is not counted" >&2
}
napi_ticks() { # ifname: utime+stime of its NAPI threads
	local t=0 pid
	for pid in $(napi_pids "$1"); do t=$((t + $(awk '{print $14+$15}' "/proc/$pid/stat" 2>/dev/null || echo 0))); done
	echo $t
}
proc_ticks() { awk '{print $14+$15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
softirq_ticks() { awk '$1 == "cpu" {print $8}' /proc/stat; }

lab() { # q: a fresh lab with q queues, threaded NAPI, each side's threads pinned
	local q=$1
	scripts/lab.sh down >/dev/null 2>&1 || true
	LAB_QUEUES=$q scripts/lab.sh up 2> >(grep -v "Peer netns" >&2) >/dev/null
	ip netns exec "$SRV_NS" sh -c "echo 1 > /sys/class/net/$SRV_IF/threaded"
	ip netns exec "$CLI_NS" sh -c "echo 1 > /sys/class/net/$CLI_IF/threaded"
	# The server: the last q CPUs. The load generator: the others, or
	# every CPU when fewer than 2q.
	SCPUS=() CCPUS=()
	local c
	for c in $(seq $((NPROC - q)) $((NPROC - 1))); do SCPUS+=("$(( c < 0 ? 0 : c ))"); done
	if [ "$NPROC" -ge $((2 * q)) ]; then
		for c in $(seq 0 $((NPROC - q - 1))); do CCPUS+=("$c"); done
	else
		for c in $(seq 0 $((NPROC - 1))); do CCPUS+=("$c"); done
	fi
	pin_napi "$SRV_IF" "${SCPUS[@]}"
	pin_napi "$CLI_IF" "${CCPUS[@]}"
	SLIST=$(IFS=,; echo "${SCPUS[*]}")
	CLIST=$(IFS=,; echo "${CCPUS[*]}")
}

start_server() { # name q
	local name=$1 q=$2
	local rb=("$BIN" serve --listen :7000 --memcache-listen :11211 --trust-src 198.18.0.0/24 --log-level warn --workers "$q")
	case $name in
	rebound-xdp) rb+=(--mode xdp --iface "$SRV_IF" --xdp-mode native --queues "$q" --cpus "$SLIST" --xdp-answer-items 8192) ;;
	rebound-afxdp) rb+=(--mode xdp --iface "$SRV_IF" --xdp-mode native --queues "$q" --cpus "$SLIST" --xdp-answers=false) ;;
	rebound-udp) rb+=(--mode udp) ;;
	memcached) rb=("$MEMCACHED" -U 11211 -p 11211 -l 198.18.0.2 -t "$q" -u root -m 256 -c 4096) ;;
	*) echo "scale: unknown server $name" >&2; return 1 ;;
	esac
	ip netns exec "$SRV_NS" taskset -c "$SLIST" "${rb[@]}" 2>"$RESULTS/$OUT_NAME.server.log" &
	SRV_PID=$!
	local rc
	for _ in $(seq 100); do
		if ip netns exec "$CLI_NS" "$BIN" call --protocol memcache --target "$TARGET" --timeout 100ms raw version >/dev/null 2>&1; then
			rc=0
			ip netns exec "$CLI_NS" "$BIN" call --protocol memcache --transport udp --target "$TARGET" --timeout 100ms \
				--retries -1 get scale-probe >/dev/null 2>&1 || rc=$?
			[ "$rc" -le 1 ] && return 0
		fi
		sleep 0.1
	done
	echo "scale: $name did not answer; its log:" >&2
	cat "$RESULTS/$OUT_NAME.server.log" >&2
	return 1
}

stop_server() {
	kill -TERM "$SRV_PID" 2>/dev/null || true
	wait "$SRV_PID" 2>/dev/null || true
	SRV_PID=
}

measure() { # name q round
	local name=$1 q=$2 round=$3 out p0 p1 n0 n1 s0 s1 t0 t1 rc=0
	start_server "$name" "$q" || return 0
	p0=$(proc_ticks "$SRV_PID") n0=$(napi_ticks "$SRV_IF") s0=$(softirq_ticks) t0=$(date +%s.%N)
	out=$(ip netns exec "$CLI_NS" "$BIN" bench --protocol memcache --target "$TARGET" --transport xdp --iface "$CLI_IF" \
		--queues "$q" --cpus "$CLIST" --op get --keys 4096 --key-size 32 --value-size 64 --window "$WINDOW" \
		--duration "${DURATION}s" --warmup "${WARMUP}s" --quiet --json 2>"$RESULTS/$OUT_NAME.bench.log") || rc=$?
	p1=$(proc_ticks "$SRV_PID") n1=$(napi_ticks "$SRV_IF") s1=$(softirq_ticks) t1=$(date +%s.%N)
	stop_server
	if [ -z "$out" ]; then
		echo "scale: $name q=$q: the bench failed (exit $rc):" >&2
		tail -3 "$RESULTS/$OUT_NAME.bench.log" >&2
		return 0
	fi
	printf '{"server":"%s","queues":%d,"round":%d,"clk_tck":%d,"wall_s":%s,"process_ticks":%d,"napi_ticks":%d,"softirq_ticks":%d,"server_cpus":"%s","client_cpus":"%s","bench":%s}\n' \
		"$name" "$q" "$round" "$CLK" "$(echo "$t1 - $t0" | bc)" $((p1 - p0)) $((n1 - n0)) $((s1 - s0)) "$SLIST" "$CLIST" "$out" >>"$RAW"
	echo "scale: q=$q $name round $round: $(echo "$out" | python3 -c 'import json,sys; d=json.load(sys.stdin); print("%.0f replies/s, lost %d, bad %d" % (d["throughput"], d["lost"], d["bad"]))')" >&2
}

for q in $QUEUES; do
	if [ "$q" -gt "$NPROC" ]; then echo "scale: $q queues on $NPROC CPUs: skipped" >&2; continue; fi
	lab "$q"
	echo "scale: $q queue(s): server CPUs $SLIST, load generator CPUs $CLIST" >&2
	read -ra order <<<"$SERVERS"
	for round in $(seq 1 "$ROUNDS"); do
		# Alternate: each round starts one server further on.
		n=${#order[@]}
		for i in $(seq 0 $((n - 1))); do
			measure "${order[$(((i + round - 1) % n))]}" "$q" "$round"
		done
	done
done
scripts/lab.sh down >/dev/null 2>&1 || true

machine="$(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), Linux $(uname -r), $("$MEMCACHED" -V 2>/dev/null || echo 'no memcached')"
go run ./scripts/scalereport -in "$RAW" -json "$RESULTS/$OUT_NAME.json" -svg "$RESULTS/$OUT_NAME.svg" -machine "$machine" \
	-settings "GET hits over memcached UDP, 4096 keys of 32 bytes, 64-byte values, $WINDOW in flight per queue, ${DURATION}s measured after ${WARMUP}s, $ROUNDS rounds, servers alternated"
echo "scale: wrote $RESULTS/$OUT_NAME.json and $RESULTS/$OUT_NAME.svg" >&2
