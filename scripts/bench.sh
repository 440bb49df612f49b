#!/usr/bin/env bash
# The benchmark report: rebound serve in each mode on the veth lab, the same
# load from 'rebound bench' against each, in one run, as a markdown table.
#
#   scripts/bench.sh            full report (about 2 minutes)
#   scripts/bench.sh --demo     xdp vs udp only, 5 seconds each (make demo)
#
# Needs root (namespaces, XDP). Without root, --demo serves in udp mode on
# loopback and says why. The server runs on CPU 1 and the load generator on
# CPU 0 (LAB_SRV_CPU, LAB_CLI_CPU), each side's NAPI thread pinned with it.
# Settings: DURATION (seconds, default 5), WINDOW (default 256), LAT_WINDOW
# (default 32), PAYLOAD (bytes, default 64), BIN (default bin/rebound),
# LOAD (xdp: the bench sends UDP through its own AF_XDP socket, the default;
# udp: through kernel UDP sockets).
set -euo pipefail
cd "$(dirname "$0")/.."

DEMO=0
[ "${1:-}" = "--demo" ] && DEMO=1
DURATION=${DURATION:-5}
WINDOW=${WINDOW:-256}
LAT_WINDOW=${LAT_WINDOW:-32}
PAYLOAD=${PAYLOAD:-64}
BIN=${BIN:-bin/rebound}
SRV_CPU=${LAB_SRV_CPU:-1}
CLI_CPU=${LAB_CLI_CPU:-0}
export LAB_PREFIX=${LAB_PREFIX:-rbb}
PORT=7000
TARGET=198.18.0.2:$PORT
RESULTS=${RESULTS:-results}
mkdir -p "$RESULTS"

[ -x "$BIN" ] || { echo "bench: building $BIN"; CGO_ENABLED=0 go build -o "$BIN" ./cmd/rebound; }

if [ "$(id -u)" != 0 ]; then
	if [ $DEMO = 1 ]; then
		echo "demo: not root, so no veth lab and no XDP: serving in udp mode on loopback instead."
		echo "      (run 'sudo make demo' to see the AF_XDP fast path against the UDP fallback)"
		"$BIN" serve --mode udp --listen 127.0.0.1:$PORT --log-level warn &
		pid=$!
		trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT
		sleep 0.5
		"$BIN" call --target 127.0.0.1:$PORT ping "hello from the demo"
		"$BIN" bench --target 127.0.0.1:$PORT --duration "${DURATION}s" --window "$LAT_WINDOW" --server-pid $pid
		exit 0
	fi
	echo "bench: needs root for the veth lab and XDP (try: sudo make bench)" >&2
	exit 1
fi

SRV_PID=
cleanup() {
	if [ -n "$SRV_PID" ]; then kill "$SRV_PID" 2>/dev/null || true; wait "$SRV_PID" 2>/dev/null || true; fi
	scripts/lab.sh down >/dev/null 2>&1 || true
}
trap cleanup EXIT
scripts/lab.sh up --bench 2> >(grep -v "Peer netns" >&2)

start_server() { # mode args...
	ip netns exec "$LAB_PREFIX-srv" taskset -c "$SRV_CPU" "$BIN" serve --listen ":$PORT" --log-level warn --workers 1 "$@" \
		2>"$RESULTS/server.log" &
	SRV_PID=$!
	for _ in $(seq 50); do
		ip netns exec "$LAB_PREFIX-cli" "$BIN" call --target "$TARGET" --timeout 100ms --retries -1 ping >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "bench: server ($*) did not answer; its log:" >&2
	cat "$RESULTS/server.log" >&2
	return 1
}

stop_server() {
	kill -TERM "$SRV_PID"
	wait "$SRV_PID" || { echo "bench: server exited non-zero" >&2; }
	SRV_PID=
}

run_bench() { # out transport window
	local out=$1 transport=$2 window=$3 extra=()
	# UDP load goes through the bench's own AF_XDP socket, so that the load
	# generator is not the bottleneck (LOAD=udp for kernel UDP sockets).
	if [ "$transport" = udp ] && [ "${LOAD:-xdp}" = xdp ]; then
		transport=xdp
		extra=(--iface "${LAB_PREFIX}c0")
	fi
	ip netns exec "$LAB_PREFIX-cli" taskset -c "$CLI_CPU" "$BIN" bench --target "$TARGET" --transport "$transport" "${extra[@]}" \
		--window "$window" --payload "$PAYLOAD" --duration "${DURATION}s" --warmup 1s --quiet --json --server-pid "$SRV_PID" >"$out"
}

jget() { # file key
	python3 -c "import json,sys; d=json.load(open('$1')); v=d.get('$2'); print(v if v is not None else '')"
}

cpu_ticks() { # busy and total ticks of one CPU, from /proc/stat
	awk -v c="cpu$1" '$1 == c {print $2+$3+$4+$7+$8, $2+$3+$4+$5+$6+$7+$8}' /proc/stat
}

idle_cpu() { # seconds of the server's CPU over 3 idle seconds, as % of a core
	local t0 t1
	t0=$(awk '{print $14+$15}' "/proc/$SRV_PID/stat")
	sleep 3
	t1=$(awk '{print $14+$15}' "/proc/$SRV_PID/stat")
	python3 -c "print(round(($t1-$t0)/100/3*100, 2))"
}

declare -a ROWS
measure() { # label transport server-args...
	local label=$1 transport=$2
	shift 2
	start_server "$@" || return 1
	local idle b0 t0 b1 t1 core
	idle=$(idle_cpu)
	read -r b0 t0 < <(cpu_ticks "$SRV_CPU")
	run_bench "$RESULTS/$label.tput.json" "$transport" "$WINDOW"
	read -r b1 t1 < <(cpu_ticks "$SRV_CPU")
	core=$(python3 -c "print(round(100*($b1-$b0)/max($t1-$t0,1)))")
	run_bench "$RESULTS/$label.lat.json" "$transport" "$LAT_WINDOW"
	stop_server
	ROWS+=("$label|$(jget "$RESULTS/$label.tput.json" throughput)|$(jget "$RESULTS/$label.tput.json" p50_us)|$(jget "$RESULTS/$label.tput.json" p99_us)|$(jget "$RESULTS/$label.lat.json" p99_us)|$(jget "$RESULTS/$label.tput.json" server_cpu)|$core|$idle|$(jget "$RESULTS/$label.tput.json" lost)")
}

if [ $DEMO = 1 ]; then
	measure "xdp native" udp --mode xdp --iface "${LAB_PREFIX}s0" --xdp-mode native
	measure "udp" udp --mode udp
else
	measure "xdp native" udp --mode xdp --iface "${LAB_PREFIX}s0" --xdp-mode native
	measure "udp" udp --mode udp
	measure "xdp generic" udp --mode xdp --iface "${LAB_PREFIX}s0" --xdp-mode generic
	measure "tcp" tcp --mode udp
fi

udp_tput=
for r in "${ROWS[@]}"; do
	IFS='|' read -r label tput _ <<<"$r"
	[ "$label" = udp ] && udp_tput=$tput
done

echo
echo "Rebound on the veth lab: $(nproc) CPUs, $(uname -r); 64-byte PING messages; server on CPU $SRV_CPU, load on CPU $CLI_CPU."
echo "Throughput and p50/p99 at $WINDOW in flight; p99@$LAT_WINDOW at $LAT_WINDOW in flight. 'server process': the"
echo "server's own CPU time; 'server core': how busy CPU $SRV_CPU was, with the kernel's receive work for the server."
echo "UDP load from 'rebound bench --transport ${LOAD:-xdp}'; the tcp row from --transport tcp."
echo
echo "| mode | replies/s | p50 | p99 | p99@$LAT_WINDOW | server process | server core | idle CPU | lost | vs udp |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for r in "${ROWS[@]}"; do
	IFS='|' read -r label tput p50 p99 p99lat cpu core idle lost <<<"$r"
	python3 - "$label" "$tput" "$p50" "$p99" "$p99lat" "$cpu" "$core" "$idle" "$lost" "$udp_tput" <<'EOF'
import sys
label, tput, p50, p99, p99lat, cpu, core, idle, lost, udp = sys.argv[1:]
f = lambda s: float(s) if s else 0.0
ratio = f"{f(tput)/f(udp):.2f}x" if f(udp) else "-"
cpu_s = f"{f(cpu)*100:.0f}%" if cpu else "-"
print(f"| {label} | {f(tput):,.0f} | {f(p50):.0f} us | {f(p99):.0f} us | {f(p99lat):.0f} us | {cpu_s} | {f(core):.0f}% | {f(idle):.1f}% | {int(f(lost))} | {ratio} |")
EOF
done
echo
echo "Allocations on the hot paths (go test -bench, one run):"
go test -run '^$' -bench 'BenchmarkPing|BenchmarkServe' -benchmem -benchtime 20000x ./codec ./userspace 2>/dev/null |
	awk '/^Benchmark/ {printf "  %-40s %10s ns/op  %s allocs/op\n", $1, $3, $(NF-1)}'
echo
echo "Raw JSON per run: $RESULTS/"
