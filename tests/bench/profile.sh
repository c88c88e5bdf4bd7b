#!/usr/bin/env bash
# Profile kvstore's write path: a fresh 3-member cluster on 127.0.0.1 (same flags as
# compare.sh), kv-bench put against the leader, and meanwhile `perf record` (cpu-clock, DWARF
# call graphs) of the leader and of one follower. Prints the put result, each member's CPU time
# and thread switches per put, and the leader's WAL fsync and peer round-trip figures; writes
# perf data and, when inferno is installed (`cargo install inferno`), folded stacks and flame
# graphs.
#
# Usage: tests/bench/profile.sh [OUT_DIR]          (default: a new temp dir)
# Environment: CLIENTS=64  DURATION=5  KVSTORE=target/release/kvstore
#              KV_BENCH=target/release/kv-bench  PERF=1 (0: no perf, CPU and metrics only)
#              PERF_EVENT=cpu-clock (e.g. sched:sched_switch)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CLIENTS=${CLIENTS:-64}
DURATION=${DURATION:-5}
KVSTORE=${KVSTORE:-$ROOT/target/release/kvstore}
KV_BENCH=${KV_BENCH:-$ROOT/target/release/kv-bench}
PERF=${PERF:-1}
# What perf samples: CPU time by default; sched:sched_switch shows where threads give up the CPU.
PERF_EVENT=${PERF_EVENT:-cpu-clock}
OUT=${1:-$(mktemp -d /tmp/kv-profile.XXXXXX)}
mkdir -p "$OUT"
DATA=$(mktemp -d /tmp/kv-profile-data.XXXXXX)
PIDS=()

cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do
    for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
  done
  rm -rf "$DATA"
}
trap cleanup EXIT

BASE=$((20000 + RANDOM % 11000))
CL="" EPS=""
for i in 1 2 3; do
  CL="${CL:+$CL,}m$i=http://127.0.0.1:$((BASE + 2 + i))"
  EPS="${EPS:+$EPS,}127.0.0.1:$((BASE + i - 1))"
done
for i in 1 2 3; do
  "$KVSTORE" --name "m$i" --data-dir "$DATA/m$i" \
    --listen-client-urls "http://127.0.0.1:$((BASE + i - 1))" \
    --advertise-client-urls "http://127.0.0.1:$((BASE + i - 1))" \
    --listen-peer-urls "http://127.0.0.1:$((BASE + 2 + i))" \
    --initial-advertise-peer-urls "http://127.0.0.1:$((BASE + 2 + i))" \
    --initial-cluster "$CL" --initial-cluster-state new --initial-cluster-token profile \
    --heartbeat-interval 100 --election-timeout 1000 >"$OUT/m$i.log" 2>&1 &
  PIDS+=($!)
done

metric() { curl -s "http://$1/metrics" | awk -v m="$2" '$1 == m {print $2}'; }
# Warm up (also waits for a leader), then find the leader.
for _ in $(seq 60); do
  "$KV_BENCH" put --clients 4 --duration 1 --target-leader --endpoints "$EPS" >/dev/null 2>&1 && break
  sleep 0.5
done
L=""
for i in 1 2 3; do
  [ "$(metric "127.0.0.1:$((BASE + i - 1))" etcd_server_is_leader)" = 1 ] && L=$i
done
[ -n "$L" ] || { echo "no leader" >&2; exit 1; }
F=$((L % 3 + 1))
LEP="127.0.0.1:$((BASE + L - 1))"

cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# Thread switches of every thread of a process, voluntary and not (threads that ended meanwhile
# are not counted).
switches() { cat /proc/"$1"/task/*/status 2>/dev/null | awk '/ctxt_switches/ {n += $2} END {print n}'; }
declare -a C0 S0
for i in 0 1 2; do C0[i]=$(cpu "${PIDS[$i]}"); S0[i]=$(switches "${PIDS[$i]}"); done
F0=$(metric "$LEP" etcd_disk_wal_fsync_duration_seconds_count)
P0=$(metric "$LEP" etcd_server_proposals_committed_total)

PERF_PIDS=()
if [ "$PERF" = 1 ]; then
  for r in leader:$L follower:$F; do
    perf record -F 999 -e "$PERF_EVENT" --call-graph dwarf,16384 -p "${PIDS[$((${r#*:} - 1))]}" \
      -o "$OUT/${r%%:*}.data" -- sleep "$DURATION" >/dev/null 2>&1 &
    PERF_PIDS+=($!)
  done
fi
"$KV_BENCH" put --clients "$CLIENTS" --duration "$DURATION" --target-leader --endpoints "$EPS" \
  --out "$OUT/put.json" | sed -n 1,4p
for p in "${PERF_PIDS[@]}"; do wait "$p" || true; done

OPS=$(awk -F': ' '/"ops":/ {gsub(/,/, "", $2); print $2; exit}' "$OUT/put.json")
for i in 0 1 2; do
  role=follower
  [ $((i + 1)) = "$L" ] && role=leader
  awk -v a="${C0[$i]}" -v b="$(cpu "${PIDS[$i]}")" -v n="$OPS" -v r="$role" -v m=$((i + 1)) \
    -v s0="${S0[$i]}" -v s1="$(switches "${PIDS[$i]}")" \
    'BEGIN { printf "m%d (%s): %.0f us CPU and %.1f thread switches per put\n", m, r, (b - a) * 10000 / n, (s1 - s0) / n }'
done
F1=$(metric "$LEP" etcd_disk_wal_fsync_duration_seconds_count)
P1=$(metric "$LEP" etcd_server_proposals_committed_total)
echo "leader: $((P1 - P0)) entries committed, $((F1 - F0)) log fsyncs"
curl -s "http://$LEP/metrics" >"$OUT/leader.metrics"
grep -E '^etcd_(disk_wal_fsync_duration|disk_backend_commit_duration|network_peer_round_trip_time)_seconds_(sum|count)' "$OUT/leader.metrics"
# The state machine's commits by duration (cumulative buckets), to see stalls in the tail.
grep -E '^etcd_disk_backend_commit_duration_seconds_bucket' "$OUT/leader.metrics" |
  awk '{printf "%s ", $0} END {print ""}' | sed -E 's/etcd_disk_backend_commit_duration_seconds_bucket//g'

if [ "$PERF" = 1 ] && command -v inferno-collapse-perf >/dev/null; then
  for r in leader follower; do
    perf script -i "$OUT/$r.data" 2>/dev/null | inferno-collapse-perf >"$OUT/$r.folded"
    inferno-flamegraph --minwidth 0.5 --title "kvstore $r, put $CLIENTS clients" \
      <"$OUT/$r.folded" >"$OUT/$r.svg"
  done
fi
echo "output in $OUT"
