#!/usr/bin/env bash
# Density and hit ratio beside memcached 1.6 at the same memory (issue 20),
# the last section of 'make bench' (scripts/bench.sh --density: this alone).
#
# 1. Bytes of RSS per item: for each fill SIZE:N of DENSITY_FILLS (default
#    64-byte values x 3,000,000 and 1 KiB x 400,000, both more than
#    DENSITY_MEM holds), a fresh 'memcached -m DENSITY_MEM' and a fresh
#    'rebound serve --mode udp --kv-memory DENSITY_MEM' (default 256 MiB)
#    each get N sets under distinct 32-byte keys ('rebound bench --trace
#    fill'); then the items held (stats curr_items), VmRSS and VmHWM (peak)
#    of the process from /proc/PID/status, and RSS per item.
# 2. Hit ratio: the seeded cache-aside trace of 'rebound bench --trace zipf'
#    (Zipf 0.99 over TRACE_KEYS keys, default 4,000,000; TRACE_OPS gets per
#    phase, default 1,000,000: a warm-up, a steady phase, then new keys with
#    values of 1-4 KiB instead of 64-256 bytes) to a fresh server of each
#    kind with TRACE_MEM (default 64 MiB), one pipelined TCP connection; the
#    hit ratio per phase, and read-backs of acknowledged sets (lost: not
#    there right after, which the phase's evictions must account for).
#
# Both servers run on loopback with one worker thread ('memcached -t 1',
# 'rebound serve --workers 1'), on DENSITY_PORT and the next two ports
# (default 22122). No root needed. Raw JSON: RESULTS/density-*.json and
# RESULTS/trace-*.json. Takes about 2 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-bin/rebound}
MEMCACHED=${MEMCACHED:-memcached}
RESULTS=${RESULTS:-results}
DENSITY_MEM=${DENSITY_MEM:-256}
DENSITY_FILLS=${DENSITY_FILLS:-64:3000000 1024:400000}
TRACE_MEM=${TRACE_MEM:-64}
TRACE_KEYS=${TRACE_KEYS:-4000000}
TRACE_OPS=${TRACE_OPS:-1000000}
SEED=${SEED:-1}
PORT=${DENSITY_PORT:-22122}
mkdir -p "$RESULTS"

[ -x "$BIN" ] || { echo "density: building $BIN"; CGO_ENABLED=0 go build -o "$BIN" ./cmd/rebound; }
if ! command -v "$MEMCACHED" >/dev/null; then
	echo "density: no memcached ($MEMCACHED): the comparison is skipped (apt-get install memcached)" >&2
	exit 0
fi

PID=
stop() {
	if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
	PID=
}
trap stop EXIT

start() { # memcached|rebound MiB
	local what=$1 mem=$2 user=()
	if [ "$what" = memcached ]; then
		[ "$(id -u)" = 0 ] && user=(-u root) # memcached refuses to run as root otherwise
		"$MEMCACHED" -m "$mem" -p "$PORT" -U 0 -t 1 -l 127.0.0.1 "${user[@]}" 2>"$RESULTS/density-server.log" &
	else
		"$BIN" serve --mode udp --workers 1 --kv-memory "${mem}MiB" --listen "127.0.0.1:$((PORT + 1))" \
			--memcache-listen "127.0.0.1:$PORT" --metrics "127.0.0.1:$((PORT + 2))" --log-level warn 2>"$RESULTS/density-server.log" &
	fi
	PID=$!
	for _ in $(seq 100); do
		"$BIN" call --protocol memcache --target "127.0.0.1:$PORT" --timeout 100ms raw version >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "density: $what did not answer on 127.0.0.1:$PORT; its log:" >&2
	cat "$RESULTS/density-server.log" >&2
	return 1
}

rm -f "$RESULTS"/density-*.json "$RESULTS"/trace-*.json
for fill in $DENSITY_FILLS; do
	size=${fill%%:*} n=${fill##*:}
	for what in memcached rebound; do
		start "$what" "$DENSITY_MEM"
		"$BIN" bench --trace fill --target "127.0.0.1:$PORT" --keys "$n" --value-size "$size" --server-pid "$PID" --json \
			>"$RESULTS/density-$what-$size.json" || echo "density: fill $what $size: exit $?" >&2
		stop
	done
done
for what in memcached rebound; do
	start "$what" "$TRACE_MEM"
	rc=0
	"$BIN" bench --trace zipf --target "127.0.0.1:$PORT" --keys "$TRACE_KEYS" --trace-ops "$TRACE_OPS" --seed "$SEED" \
		--server-pid "$PID" --quiet --json >"$RESULTS/trace-$what.json" || rc=$?
	[ "$rc" = 0 ] || echo "density: trace $what: exit $rc (1: wrong values or lost sets)" >&2
	stop
done

echo
echo "Density at the same memory: $("$MEMCACHED" -V) ('-m $DENSITY_MEM -t 1') against 'rebound serve --mode udp --workers 1"
echo "--kv-memory ${DENSITY_MEM}MiB', each filled fresh on loopback with 32-byte keys ('rebound bench --trace fill'); RSS and"
echo "peak (VmHWM) from /proc/PID/status after the fill, items from stats curr_items. Lower bytes per item is denser."
echo
python3 - "$RESULTS" "$DENSITY_MEM" "$DENSITY_FILLS" <<'EOF'
import json, os, sys
results, mem, fills = sys.argv[1], int(sys.argv[2]), sys.argv[3].split()
limit = mem << 20
print("| values | server | sets | items held | evicted | RSS | peak RSS | RSS / limit | RSS per item | vs memcached |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for fill in fills:
    size, n = fill.split(":")
    base = None
    for what in ("memcached", "rebound"):
        try:
            d = json.load(open(os.path.join(results, f"density-{what}-{size}.json")))
        except (OSError, ValueError):
            print(f"| {size} B | {what} | no result | | | | | | | |")
            continue
        s, m = d["stats"], d.get("mem") or {}
        per = d.get("rss_per_item") or 0
        if what == "memcached":
            base = per
        vs = f"{per/base:.2f}x" if base and what != "memcached" else "-"
        mib = lambda b: f"{b/2**20:,.0f} MiB"
        print(f"| {size} B | {what} | {d['sets']:,} | {s['curr_items']:,} | {s['evictions']:,} | {mib(m.get('rss', 0))} "
              f"| {mib(m.get('hwm', 0))} | {m.get('rss', 0)/limit:.2f}x | {per:.0f} B | {vs} |")
EOF
echo
echo "Hit ratio at the same memory ($TRACE_MEM MiB each, fresh): 'rebound bench --trace zipf --keys $TRACE_KEYS --trace-ops $TRACE_OPS"
echo "--seed $SEED', the same sequence to both: get, and on a miss set (cache-aside), Zipf 0.99, 32-byte keys, values of"
echo "64-256 bytes, then (shift) new keys with 1-4 KiB values; one TCP connection, 256 gets a batch. Every 16th set read"
echo "back right after: lost = not there, which the phase's evictions must account for."
echo
python3 - "$RESULTS" "$TRACE_MEM" <<'EOF'
import json, os, sys
results, mem = sys.argv[1], int(sys.argv[2])
runs = {}
for what in ("memcached", "rebound"):
    try:
        runs[what] = json.load(open(os.path.join(results, f"trace-{what}.json")))["phases"]
    except (OSError, ValueError, KeyError):
        runs[what] = None
if not all(runs.values()):
    print("no result: " + ", ".join(w for w, r in runs.items() if not r))
    sys.exit(0)
print("| phase | gets | memcached hit ratio | rebound hit ratio | rebound - memcached | items held (mc / rb) | evictions (mc / rb) | lost sets (mc / rb) | RSS (mc / rb) | peak RSS (mc / rb) |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for m, r in zip(runs["memcached"], runs["rebound"]):
    mm, rm = m.get("mem") or {}, r.get("mem") or {}
    print(f"| {m['name']} | {m['gets']:,} | {m['hit_ratio']:.4f} | {r['hit_ratio']:.4f} | {100*(r['hit_ratio']-m['hit_ratio']):+.1f} pts "
          f"| {m['stats']['curr_items']:,} / {r['stats']['curr_items']:,} | {m['evictions']:,} / {r['evictions']:,} "
          f"| {m['lost']} of {m['checked']} / {r['lost']} of {r['checked']} "
          f"| {mm.get('rss', 0)/2**20:,.0f} / {rm.get('rss', 0)/2**20:,.0f} MiB | {mm.get('hwm', 0)/2**20:,.0f} / {rm.get('hwm', 0)/2**20:,.0f} MiB |")
EOF
