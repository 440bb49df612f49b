#!/usr/bin/env bash
# The benchmark report: rebound serve in each mode on the veth lab, the same
# load from 'rebound bench' against each, in one run, as a markdown table.
#
#   scripts/bench.sh            full report (about 2 minutes)
#   scripts/bench.sh --demo     xdp vs udp only, 5 seconds each (make demo)
#   scripts/bench.sh --memcache only the comparison with memcached (about 2 minutes)
#   scripts/bench.sh --scale    replies/s and per server core against queues, rebound's modes and
#                               memcached -t Q (scripts/scale.sh: results/scale-*.json and .svg)
#   scripts/bench.sh --tls      only TLS against plain TCP, beside memcached -Z (about a minute)
#   scripts/bench.sh --density  only RSS per item and hit ratios beside memcached at the same memory
#                               (scripts/density.sh, on loopback, no root: about 2 minutes)
#   scripts/bench.sh --bigstore p99.9 under load with 10 million items stored against an empty store
#                               (scripts/bigstore.sh, on loopback, no root: about a minute)
#
# Needs root (namespaces, XDP). Without root, --demo serves in udp mode on
# loopback and says why. The server runs on CPU 1 and the load generator on
# CPU 0 (LAB_SRV_CPU, LAB_CLI_CPU), each side's NAPI thread pinned with it.
# Settings: DURATION (seconds, default 5), WINDOW (default 256), LAT_WINDOW
# (default 32), PAYLOAD (bytes, default 64), BIN (default bin/rebound),
# LOAD (xdp: the bench sends UDP through its own AF_XDP socket, the default;
# udp: through kernel UDP sockets).
#
# Pictures: every run also saves its latency percentile spectrum
# (RESULTS/*.hist, and its plot beside it, *.svg); the report then draws
# every mode's curve at LAT_WINDOW in flight into RESULTS/latency.svg, and
# each server's memcached curve (first round) into
# RESULTS/memcache-udp-latency.svg and memcache-tcp-latency.svg. The README
# shows docs/bench-latency.svg: a copy of latency.svg from one run.
#
# The full report ends with memcached 1.6 against 'rebound serve' (xdp
# native and udp mode) serving memcached's protocol on :11211, the same
# 'rebound bench --protocol memcache' load against each: 90% get / 10% set,
# 32-byte keys, 64-byte values, WINDOW in flight, UDP and TCP, the servers
# alternated MC_ROUNDS times (default 2; MC_SERVERS and MC_TRANSPORTS narrow
# the run, MC_KEYS sets the key count). memcached runs as
# 'memcached -U 11211 -p 11211 -t 1' on the server CPU (MEMCACHED: its path).
# rebound runs with --trust-src for the load generator's subnet: memcached's
# UDP replies are larger than 4x the request, which rebound's amplification
# bound would otherwise refuse.
set -euo pipefail
cd "$(dirname "$0")/.."
# --scale: the scaling report against queues (scripts/scale.sh says how).
[ "${1:-}" = "--scale" ] && exec scripts/scale.sh "${@:2}"

# --density: RSS per item and hit ratios (scripts/density.sh says how).
[ "${1:-}" = "--density" ] && exec scripts/density.sh

# --bigstore: a large store against an empty one (scripts/bigstore.sh says how).
[ "${1:-}" = "--bigstore" ] && exec scripts/bigstore.sh
DEMO=0
MC_ONLY=0
[ "${1:-}" = "--demo" ] && DEMO=1
[ "${1:-}" = "--memcache" ] && MC_ONLY=1
TLS_ONLY=0
[ "${1:-}" = "--tls" ] && TLS_ONLY=1
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
MC_PORT=11211
MC_TARGET=198.18.0.2:$MC_PORT
MC_KEYS=${MC_KEYS:-10000}
MC_ROUNDS=${MC_ROUNDS:-2}
MC_SERVERS=${MC_SERVERS:-memcached rebound-xdp rebound-afxdp rebound-udp}
MC_TRANSPORTS=${MC_TRANSPORTS:-udp tcp}
MEMCACHED=${MEMCACHED:-memcached}
mkdir -p "$RESULTS"

[ -x "$BIN" ] || { echo "bench: building $BIN"; CGO_ENABLED=0 go build -o "$BIN" ./cmd/rebound; }

if [ "$(id -u)" != 0 ]; then
	if [ $DEMO = 1 ]; then
		echo "demo: not root, so no veth lab and no XDP: serving in udp mode on loopback instead."
		echo "      (run 'sudo make demo' to see the AF_XDP fast path against the UDP fallback)"
		# memcached on a port the kernel picks: the demo drives the Rebound
		# protocol, and :11211 may belong to a memcached on this machine.
		"$BIN" serve --mode udp --listen 127.0.0.1:$PORT --memcache-listen 127.0.0.1:0 --log-level warn &
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
	extra+=(--hist "${out%.json}.hist")
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

declare -a ROWS PLOT
measure() { # label transport server-args...
	local label=$1 transport=$2
	shift 2
	start_server "$@" || return 1
	local idle b0 t0 b1 t1 core
	sleep 2 # the server answers (UDP sockets) before its XDP setup is done
	idle=$(idle_cpu)
	read -r b0 t0 < <(cpu_ticks "$SRV_CPU")
	run_bench "$RESULTS/$label.tput.json" "$transport" "$WINDOW"
	read -r b1 t1 < <(cpu_ticks "$SRV_CPU")
	core=$(python3 -c "print(round(100*($b1-$b0)/max($t1-$t0,1)))")
	run_bench "$RESULTS/$label.lat.json" "$transport" "$LAT_WINDOW"
	PLOT+=("$label=$RESULTS/$label.lat.hist")
	stop_server
	ROWS+=("$label|$(jget "$RESULTS/$label.tput.json" throughput)|$(jget "$RESULTS/$label.tput.json" p50_us)|$(jget "$RESULTS/$label.tput.json" p99_us)|$(jget "$RESULTS/$label.lat.json" p99_us)|$(jget "$RESULTS/$label.tput.json" server_cpu)|$core|$idle|$(jget "$RESULTS/$label.tput.json" lost)")
}

start_mc_server() { # memcached | rebound serve-args...
	local what=$1
	shift
	if [ "$what" = memcached ]; then
		# -u root: memcached refuses to run as root otherwise.
		ip netns exec "$LAB_PREFIX-srv" taskset -c "$SRV_CPU" "$MEMCACHED" -U $MC_PORT -p $MC_PORT -t 1 -l 198.18.0.2 -u root \
			2>"$RESULTS/server.log" &
	else
		ip netns exec "$LAB_PREFIX-srv" taskset -c "$SRV_CPU" "$BIN" serve --listen ":$PORT" --memcache-listen ":$MC_PORT" \
			--trust-src 198.18.0.0/24 --log-level warn --workers 1 "$@" 2>"$RESULTS/server.log" &
	fi
	SRV_PID=$!
	# Ready when it answers over TCP and over UDP (a miss, exit 1, is an answer).
	local rc
	for _ in $(seq 50); do
		if ip netns exec "$LAB_PREFIX-cli" "$BIN" call --protocol memcache --target "$MC_TARGET" --timeout 100ms raw version >/dev/null 2>&1; then
			rc=0
			ip netns exec "$LAB_PREFIX-cli" "$BIN" call --protocol memcache --transport udp --target "$MC_TARGET" --timeout 100ms \
				--retries -1 get bench-probe >/dev/null 2>&1 || rc=$?
			[ "$rc" -le 1 ] && return 0
		fi
		sleep 0.1
	done
	echo "bench: $what ($*) did not answer memcached's protocol; its log:" >&2
	cat "$RESULTS/server.log" >&2
	return 1
}

mc_bench() { # out transport
	local out=$1 transport=$2 args=() rc=0
	if [ "$transport" = tcp ]; then
		args=(--transport tcp --connections 4 --window $((WINDOW / 4)))
	elif [ "${LOAD:-xdp}" = xdp ]; then
		args=(--transport xdp --iface "${LAB_PREFIX}c0" --window "$WINDOW")
	else
		args=(--transport udp --window "$WINDOW")
	fi
	ip netns exec "$LAB_PREFIX-cli" taskset -c "$CLI_CPU" "$BIN" bench --protocol memcache --target "$MC_TARGET" "${args[@]}" \
		--op mix=get:90,set:10 --keys "$MC_KEYS" --key-size 32 --value-size 64 --duration "${DURATION}s" --warmup 1s \
		--quiet --json --hist "${out%.json}.hist" --server-pid "$SRV_PID" >"$out" || rc=$?
	[ "$rc" = 0 ] || echo "bench: memcache bench $out: exit $rc (1: bad replies)" >&2
}

memcache_report() {
	if ! command -v "$MEMCACHED" >/dev/null; then
		echo "bench: no memcached ($MEMCACHED): the comparison is skipped (apt-get install memcached)" >&2
		return 0
	fi
	local round s t
	rm -f "$RESULTS"/mc-*.json "$RESULTS"/mc-*.hist "$RESULTS"/mc-*.svg
	for round in $(seq "$MC_ROUNDS"); do
		for s in $MC_SERVERS; do
			case $s in
			memcached) start_mc_server memcached || return 1 ;;
			rebound-xdp) start_mc_server rebound --mode xdp --iface "${LAB_PREFIX}s0" --xdp-mode native \
				--xdp-answer-items $((MC_KEYS * 2)) || return 1 ;;
			rebound-afxdp) start_mc_server rebound --mode xdp --iface "${LAB_PREFIX}s0" --xdp-mode native \
				--xdp-answers=false || return 1 ;;
			rebound-udp) start_mc_server rebound --mode udp || return 1 ;;
			esac
			for t in $MC_TRANSPORTS; do
				mc_bench "$RESULTS/mc-$s-$t-$round.json" "$t"
			done
			stop_server
		done
	done
	echo
	echo "memcached's protocol on the veth lab: $("$MEMCACHED" -V) ('-t 1') against 'rebound serve --memcache-listen :$MC_PORT"
	echo "--workers 1' (xdp native with and without --xdp-answers; udp mode), each on CPU $SRV_CPU; 'rebound bench --protocol memcache' on CPU $CLI_CPU:"
	echo "90% get / 10% set, 32-byte keys ($MC_KEYS, stored first), 64-byte values, $WINDOW in flight, ${DURATION}s runs,"
	echo "servers alternated $MC_ROUNDS times (figures: the mean of the rounds; hits and bad: their sum). UDP load through"
	echo "'--transport ${LOAD:-xdp}'; TCP: 4 connections x $((WINDOW / 4)). Every reply checked: bad = wrong key, length or shape."
	echo
	python3 - "$RESULTS" "$MC_ROUNDS" <<'EOF'
import json, os, sys
results, rounds = sys.argv[1], int(sys.argv[2])
names = {"memcached": "memcached 1.6", "rebound-xdp": "rebound xdp, answers in XDP", "rebound-afxdp": "rebound xdp, AF_XDP only",
         "rebound-udp": "rebound udp"}
rows, base = [], {}
for transport in ("udp", "tcp"):
    for s in ("memcached", "rebound-xdp", "rebound-afxdp", "rebound-udp"):
        runs = []
        for r in range(1, rounds + 1):
            try:
                runs.append(json.load(open(os.path.join(results, f"mc-{s}-{transport}-{r}.json"))))
            except (OSError, ValueError):
                pass
        if not runs:
            rows.append((names[s], transport, None))
            continue
        mean = lambda k: sum(float(d.get(k) or 0) for d in runs) / len(runs)
        total = lambda k: sum(int(d.get(k) or 0) for d in runs)
        row = dict(tput=mean("throughput"), p50=mean("p50_us"), p99=mean("p99_us"), hits=total("hits"), bad=total("bad"),
                   lost=total("lost"), cpu=mean("server_cpu"), each=" / ".join(f"{float(d['throughput'])/1000:.0f}k" for d in runs))
        if s == "memcached":
            base[transport] = row["tput"]
        rows.append((names[s], transport, row))
print("| server | transport | replies/s | p50 | p99 | hits | bad | lost | server CPU | rounds | vs memcached |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|")
for name, transport, r in rows:
    if r is None:
        print(f"| {name} | {transport} | no result | | | | | | | | |")
        continue
    ratio = f"{r['tput']/base[transport]:.2f}x" if base.get(transport) else "-"
    print(f"| {name} | {transport} | {r['tput']:,.0f} | {r['p50']:.0f} us | {r['p99']:.0f} us | {r['hits']:,} | {r['bad']} | {r['lost']} "
          f"| {r['cpu']*100:.0f}% | {r['each']} | {ratio} |")
EOF
	local t curves name
	for t in udp tcp; do
		curves=()
		for s in memcached rebound-xdp rebound-afxdp rebound-udp; do
			case $s in
			memcached) name="memcached 1.6" ;;
			rebound-xdp) name="rebound xdp, answers in XDP" ;;
			rebound-afxdp) name="rebound xdp, AF_XDP only" ;;
			rebound-udp) name="rebound udp" ;;
			esac
			[ -f "$RESULTS/mc-$s-$t-1.hist" ] && curves+=("$name=$RESULTS/mc-$s-$t-1.hist")
		done
		[ ${#curves[@]} -gt 0 ] && "$BIN" bench --plot "$RESULTS/memcache-$t-latency.svg" --log-y \
			--title "memcached's protocol over $t: 90% get / 10% set, $WINDOW in flight (round 1)" "${curves[@]}"
	done
	echo
	echo "Latency percentile spectra (round 1): $RESULTS/memcache-udp-latency.svg, $RESULTS/memcache-tcp-latency.svg"
}

# TLS on TCP: memcached's protocol (the memcache report's load, TCP only)
# against memcached and 'rebound serve --mode udp', each in plain TCP and
# with TLS (memcached -Z; rebound --tls-cert, UDP then off), the servers
# alternated MC_ROUNDS times. A self-signed P-256 certificate is made for
# the run (openssl); the bench does not check it (no --tls-ca), and no
# client certificate is asked for. Every connection shakes hands once, before
# the measured time: the figures are TLS's cost per request, not per handshake.
start_tls_server() { # memcached|rebound plain|tls
	local what=$1 sec=$2 extra=() probe=()
	if [ "$sec" = tls ]; then
		probe=(--tls)
		if [ "$what" = memcached ]; then
			extra=(-Z -o "ssl_chain_cert=$TLS_DIR/cert.pem,ssl_key=$TLS_DIR/key.pem")
		else
			extra=(--tls-cert "$TLS_DIR/cert.pem" --tls-key "$TLS_DIR/key.pem")
		fi
	fi
	if [ "$what" = memcached ]; then
		ip netns exec "$LAB_PREFIX-srv" taskset -c "$SRV_CPU" "$MEMCACHED" -U 0 -p $MC_PORT -t 1 -l 198.18.0.2 -u root "${extra[@]}" \
			2>"$RESULTS/server.log" &
	else
		ip netns exec "$LAB_PREFIX-srv" taskset -c "$SRV_CPU" "$BIN" serve --mode udp --listen ":$PORT" --memcache-listen ":$MC_PORT" \
			--log-level warn --workers 1 "${extra[@]}" 2>"$RESULTS/server.log" &
	fi
	SRV_PID=$!
	for _ in $(seq 50); do
		ip netns exec "$LAB_PREFIX-cli" "$BIN" bench --protocol memcache --target "$MC_TARGET" --transport tcp "${probe[@]}" \
			--op get --keys 1 --duration 100ms --warmup 0s --timeout 100ms --quiet >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "bench: $what ($sec) did not answer memcached's protocol over TCP; its log:" >&2
	cat "$RESULTS/server.log" >&2
	return 1
}

tls_report() {
	if ! command -v "$MEMCACHED" >/dev/null || ! command -v openssl >/dev/null; then
		echo "bench: no memcached ($MEMCACHED) or no openssl: the TLS comparison is skipped" >&2
		return 0
	fi
	TLS_DIR="$RESULTS/tls"
	mkdir -p "$TLS_DIR"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=rebound-bench \
		-addext "subjectAltName=IP:198.18.0.2" -keyout "$TLS_DIR/key.pem" -out "$TLS_DIR/cert.pem" 2>/dev/null
	local round what sec tls=()
	rm -f "$RESULTS"/tls-*.json
	for round in $(seq "$MC_ROUNDS"); do
		for what in memcached rebound; do
			for sec in plain tls; do
				start_tls_server "$what" "$sec" || return 1
				tls=()
				[ "$sec" = tls ] && tls=(--tls)
				ip netns exec "$LAB_PREFIX-cli" taskset -c "$CLI_CPU" "$BIN" bench --protocol memcache --target "$MC_TARGET" \
					--transport tcp "${tls[@]}" --connections 4 --window $((WINDOW / 4)) --op mix=get:90,set:10 --keys "$MC_KEYS" \
					--key-size 32 --value-size 64 --duration "${DURATION}s" --warmup 1s --quiet --json --server-pid "$SRV_PID" \
					>"$RESULTS/tls-$what-$sec-$round.json" || echo "bench: TLS bench $what $sec: exit $?" >&2
				stop_server
			done
		done
	done
	echo
	echo "TLS on TCP, memcached's protocol on the veth lab: $("$MEMCACHED" -V) ('-t 1', plain and '-Z') against 'rebound serve"
	echo "--mode udp --workers 1' (plain and --tls-cert), each on CPU $SRV_CPU; 'rebound bench --protocol memcache --transport tcp"
	echo "[--tls]' on CPU $CLI_CPU: 4 connections x $((WINDOW / 4)) in flight, 90% get / 10% set, 32-byte keys ($MC_KEYS), 64-byte"
	echo "values, ${DURATION}s runs, alternated $MC_ROUNDS times (figures: the mean of the rounds); a P-256 certificate, TLS 1.3."
	echo
	python3 - "$RESULTS" "$MC_ROUNDS" <<'EOF'
import json, os, sys
results, rounds = sys.argv[1], int(sys.argv[2])
rows = {}
for what in ("memcached", "rebound"):
    for sec in ("plain", "tls"):
        runs = []
        for r in range(1, rounds + 1):
            try:
                runs.append(json.load(open(os.path.join(results, f"tls-{what}-{sec}-{r}.json"))))
            except (OSError, ValueError):
                pass
        mean = lambda k: sum(float(d.get(k) or 0) for d in runs) / len(runs)
        rows[(what, sec)] = dict(tput=mean("throughput"), p50=mean("p50_us"), p99=mean("p99_us"), cpu=mean("server_cpu"),
                                 bad=sum(int(d.get("bad") or 0) for d in runs)) if runs else None
names = {"memcached": "memcached 1.6", "rebound": "rebound udp mode"}
print("| server | TCP | replies/s | p50 | p99 | server CPU | bad | vs plain TCP | vs memcached, same TCP |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
for (what, sec), r in rows.items():
    label = "TLS (-Z)" if sec == "tls" and what == "memcached" else ("TLS (--tls-cert)" if sec == "tls" else "plain")
    if r is None:
        print(f"| {names[what]} | {label} | no result | | | | | | |")
        continue
    plain, mc = rows.get((what, "plain")), rows.get(("memcached", sec))
    vs_plain = f"{r['tput']/plain['tput']:.2f}x" if plain and plain["tput"] else "-"
    vs_mc = f"{r['tput']/mc['tput']:.2f}x" if mc and mc["tput"] else "-"
    print(f"| {names[what]} | {label} | {r['tput']:,.0f} | {r['p50']:.0f} us | {r['p99']:.0f} us | {r['cpu']*100:.0f}% | {r['bad']} | {vs_plain} | {vs_mc} |")
EOF
}

if [ $TLS_ONLY = 1 ]; then
	tls_report
	echo
	echo "Raw JSON per run: $RESULTS/tls-*.json"
	exit 0
fi

if [ $MC_ONLY = 1 ]; then
	memcache_report
	echo
	echo "Raw JSON per run: $RESULTS/mc-*.json"
	exit 0
fi

if [ $DEMO = 1 ]; then
	measure "xdp native" udp --mode xdp --iface "${LAB_PREFIX}s0" --xdp-mode native
	measure "udp" udp --mode udp
else
	measure "xdp native, answers in XDP" udp --mode xdp --iface "${LAB_PREFIX}s0" --xdp-mode native
	measure "xdp native, AF_XDP only" udp --mode xdp --iface "${LAB_PREFIX}s0" --xdp-mode native --xdp-answers=false
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
"$BIN" bench --plot "$RESULTS/latency.svg" --log-y \
	--title "PING latency, $LAT_WINDOW in flight, veth lab ($(uname -r)): each mode of rebound serve" "${PLOT[@]}"
echo
echo "Latency percentile spectrum of every mode at $LAT_WINDOW in flight: $RESULTS/latency.svg"
echo
echo "Allocations on the hot paths (go test -bench, one run):"
go test -run '^$' -bench 'BenchmarkPing|BenchmarkServe' -benchmem -benchtime 20000x ./codec ./userspace 2>/dev/null |
	awk '/^Benchmark/ {printf "  %-40s %10s ns/op  %s allocs/op\n", $1, $3, $(NF-1)}'
[ $DEMO = 1 ] || memcache_report
[ $DEMO = 1 ] || tls_report
[ $DEMO = 1 ] || RESULTS="$RESULTS" BIN="$BIN" MEMCACHED="$MEMCACHED" scripts/density.sh
[ $DEMO = 1 ] || RESULTS="$RESULTS" BIN="$BIN" scripts/bigstore.sh
echo
echo "Raw JSON per run: $RESULTS/"
