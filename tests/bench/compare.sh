#!/usr/bin/env bash
# Side-by-side benchmark of kvstore and etcd 3.4.23 on this machine: two 3-member clusters on
# loopback with the same durability (fsync on every commit) and the same Raft timers (heartbeat
# 100 ms, election 1000 ms), fresh data dirs, driven by the same load generator (kv-bench, the
# etcd-client crate). Writes results/bench/RESULTS.md, results.json, results.png and raw/*.json.
#
# Usage: tests/bench/compare.sh
# Environment (all optional):
#   QUICK=1             a few minutes: 3 s per workload, 1 round, 20000 bulk puts
#   ROUNDS=3            rounds; each runs every workload on both systems in turn (A B A B ...)
#   DURATION=10         seconds per workload
#   BULK_PUTS=1000000   puts before measuring peak RSS, data-dir bytes and snapshot save (median
#                       of 3 saves; 0: skip)
#   WORKLOADS="put range-linearizable range-serializable txn-cas watch-latency mixed failover"
#   SYSTEMS="kvstore etcd"
#   OUT=results/bench   output folder (relative to the workspace root)
#   ETCD_DIR=DIR        take etcd and etcdctl from DIR instead of the Debian packages
#   SKIP_BUILD=1        reuse target/release/{kvstore,kv-bench}
# The console output is also kept in OUT/compare.log. A full run takes about 40 minutes here,
# most of it kvstore's bulk load; QUICK=1 about 5.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"

if [ -n "${QUICK:-}" ]; then
  : "${ROUNDS:=1}" "${DURATION:=3}" "${BULK_PUTS:=20000}"
fi
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
BULK_PUTS=${BULK_PUTS:-1000000}
WORKLOADS=${WORKLOADS:-put range-linearizable range-serializable txn-cas watch-latency mixed failover}
SYSTEMS=${SYSTEMS:-kvstore etcd}
OUT=${OUT:-results/bench}
case "$OUT" in /*) ;; *) OUT="$ROOT/$OUT" ;; esac
RAW="$OUT/raw"
FAILS="$OUT/failures.txt"

T=$(mktemp -d /tmp/kv-compare.XXXXXX)
PIDS=()
DATA=""
START_TIME=$(date +%s)

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*"; }

# ---------------------------------------------------------------- cluster control
stop_cluster() {
  local pid n
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    # A SIGTERM'd etcd leader can take 5-10 s: wait with a bound, then SIGKILL.
    for n in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      kill -KILL "$pid" 2>/dev/null || true
      for n in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
  done
  PIDS=()
  if [ -n "$DATA" ]; then rm -rf "$DATA"; fi
  DATA=""
}

cleanup() {
  stop_cluster
  rm -rf "$T"
}
trap cleanup EXIT
trap 'echo "compare.sh: command failed at line $LINENO (exit $?)" >&2' ERR
trap 'exit 130' INT TERM

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Six free ports below the ephemeral range: BASE..BASE+2 clients, BASE+3..BASE+5 peers.
pick_ports() {
  local try o ok
  for try in $(seq 100); do
    BASE=$((20000 + RANDOM % 11000))
    ok=1
    for o in 0 1 2 3 4 5; do port_free $((BASE + o)) || { ok=0; break; }; done
    [ "$ok" = 1 ] && return 0
  done
  echo "no free ports found" >&2
  return 1
}

# start_cluster SYSTEM TAG: sets PIDS, EPS (comma-separated client endpoints), DATA.
start_cluster() {
  local sys=$1 tag=$2 i cl="" bin
  pick_ports
  DATA="$T/data/$tag"
  mkdir -p "$DATA" "$T/logs"
  for i in 1 2 3; do cl="${cl:+$cl,}m$i=http://127.0.0.1:$((BASE + 2 + i))"; done
  EPS=""
  for i in 1 2 3; do EPS="${EPS:+$EPS,}127.0.0.1:$((BASE + i - 1))"; done
  if [ "$sys" = etcd ]; then bin="$ETCD_BIN"; else bin="$T/bin/kvstore"; fi
  for i in 1 2 3; do
    "$bin" --name "m$i" --data-dir "$DATA/m$i" \
      --listen-client-urls "http://127.0.0.1:$((BASE + i - 1))" \
      --advertise-client-urls "http://127.0.0.1:$((BASE + i - 1))" \
      --listen-peer-urls "http://127.0.0.1:$((BASE + 2 + i))" \
      --initial-advertise-peer-urls "http://127.0.0.1:$((BASE + 2 + i))" \
      --initial-cluster "$cl" --initial-cluster-state new --initial-cluster-token "bench-$tag" \
      --heartbeat-interval 100 --election-timeout 1000 \
      >"$T/logs/$tag-m$i.log" 2>&1 &
    PIDS+=($!)
    disown "$!" # no job notices when the failover run kills one; reaped by the shell anyway
  done
  local n
  for n in $(seq 120); do
    if ETCDCTL_API=3 "$ETCDCTL" --endpoints="$EPS" --command-timeout=2s endpoint health \
      >/dev/null 2>&1; then
      log "$sys cluster $tag healthy (pids ${PIDS[*]}, clients $EPS)"
      return 0
    fi
    sleep 0.5
  done
  echo "$sys cluster $tag did not become healthy" | tee -a "$FAILS"
  return 1
}

# Records members that died on their own (a crash), with the tail of their log.
check_alive() {
  local what=$1 i
  for i in 0 1 2; do
    local pid=${PIDS[$i]:-}
    [ -n "$pid" ] || continue
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "member m$((i + 1)) (pid $pid) of $what exited unexpectedly" | tee -a "$FAILS"
      mkdir -p "$OUT/logs"
      cp "$T/logs/$CUR_TAG-m$((i + 1)).log" "$OUT/logs/" 2>/dev/null || true
      tail -5 "$T/logs/$CUR_TAG-m$((i + 1)).log" | sed 's/^/    /' | tee -a "$FAILS"
      PIDS[i]=""
    fi
  done
}

# bench SYSTEM ROUND CASE kv-bench-args...: one workload run, its JSON into raw/.
bench() {
  local sys=$1 round=$2 case=$3
  shift 3
  local out="$RAW/${sys}__${case}__r${round}.json"
  local limit=$((DURATION * 4 + 120))
  [ "$case" = bulk-put ] && limit=$((4 * 3600))
  if timeout "$limit" "$T/bin/kv-bench" "$@" --endpoints "$EPS" --out "$out" \
    >"$T/last.txt" 2>&1; then
    log "[$sys r$round] $case (load $(cut -d' ' -f1 /proc/loadavg)):" \
      "$(sed -n 2,3p "$T/last.txt" | tr -s ' ' | tr '\n' ' ')"
    grep -E '^  errors' "$T/last.txt" | grep -qv 'errors 0  timeouts 0' &&
      grep -A3 -E '^  errors' "$T/last.txt" | sed 's/^/      /'
  else
    echo "kv-bench failed: $sys round $round $case: $(tail -3 "$T/last.txt" | tr '\n' ' ')" |
      tee -a "$FAILS"
    rm -f "$out"
  fi
  # The failover run kills the leader on purpose.
  [ "$case" = failover ] || check_alive "$sys/$CUR_TAG after $case"
}

has() { case " $WORKLOADS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

# ---------------------------------------------------------------- one round on one system
run_round() {
  local sys=$1 r=$2 d=$DURATION c
  CUR_TAG="$sys-r$r"
  start_cluster "$sys" "$CUR_TAG" || { stop_cluster; return 0; }
  if has put; then
    for c in 1 16 64 256; do
      bench "$sys" "$r" "put-c$c" put --clients "$c" --duration "$d" --target-leader
    done
  fi
  local pre=""
  if has range-linearizable; then
    for c in 1 64; do
      bench "$sys" "$r" "range-linearizable-c$c" range-linearizable --clients "$c" --duration "$d" $pre
      pre=--skip-preload
    done
  fi
  if has range-serializable; then
    for c in 1 64; do
      bench "$sys" "$r" "range-serializable-c$c" range-serializable --clients "$c" --duration "$d" $pre
      pre=--skip-preload
    done
  fi
  if has txn-cas; then
    bench "$sys" "$r" txn-cas-contended txn-cas --contended --clients 16 --duration "$d" --target-leader
    bench "$sys" "$r" txn-cas-uncontended txn-cas --clients 16 --duration "$d" --target-leader
  fi
  if has watch-latency; then
    for w in 1 100; do
      bench "$sys" "$r" "watch-latency-w$w" watch-latency --watchers "$w" --duration "$d"
    done
  fi
  if has mixed; then
    bench "$sys" "$r" mixed-c64 mixed --clients 64 --duration "$d" $pre
  fi
  if has failover; then
    local pids
    pids=$(IFS=,; echo "${PIDS[*]}")
    bench "$sys" "$r" failover failover --clients 16 --pids "$pids" --timeout-ms 1000 \
      --steady 3 --after 3
  fi
  stop_cluster
}

# ---------------------------------------------------------------- bulk load and resources
run_bulk() {
  local sys=$1 i pid hwm sum=0 max=0 dmax=0 d
  CUR_TAG="$sys-bulk"
  start_cluster "$sys" "$CUR_TAG" || { stop_cluster; return 0; }
  bench "$sys" 1 bulk-put put --ops "$BULK_PUTS" --sequential-keys --clients 256 \
    --target-leader --timeout-ms 30000
  for i in 0 1 2; do
    pid=${PIDS[$i]}
    [ -n "$pid" ] || continue
    hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
    sum=$((sum + hwm))
    [ "$hwm" -gt "$max" ] && max=$hwm
    d=$(du -sb "$DATA/m$((i + 1))" | cut -f1)
    [ "$d" -gt "$dmax" ] && dmax=$d
    log "[$sys] m$((i + 1)): VmHWM ${hwm} kB, data dir $d bytes"
    # Where the bytes are: every file and directory three levels down, in MiB.
    log "[$sys] m$((i + 1)) data dir: $(cd "$DATA/m$((i + 1))" && du -ab --max-depth=3 . |
      awk '$1 >= 1048576 {printf "%s %.1f MiB; ", $2, $1 / 1048576}')"
  done
  # Three saves, the median reported: one save's time moves with the disk by ±50 % here.
  local ep=${EPS%%,*} t0 t1 snap_line="" k times=() ok=1
  for k in 1 2 3; do
    rm -f "$T/snap.db" "$T/snap.db.part"
    t0=$(date +%s.%N)
    if ETCDCTL_API=3 "$ETCDCTL" --endpoints="$ep" --command-timeout=600s snapshot save \
      "$T/snap.db" >"$T/snap.log" 2>&1; then
      t1=$(date +%s.%N)
      times+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')")
    else
      echo "snapshot save failed on $sys: $(tail -2 "$T/snap.log" | tr '\n' ' ')" | tee -a "$FAILS"
      ok=""
      break
    fi
  done
  if [ -n "$ok" ]; then
    snap_line=$(printf '%s\n' "${times[@]}" | sort -n | awk -v s="$(stat -c %s "$T/snap.db")" \
      '{ t[NR] = $1 } END { printf "  \"snapshot_save_s\": %s,\n  \"snapshot_save_fastest_s\": %s,\n  \"snapshot_save_slowest_s\": %s,\n  \"snapshot_mib\": %.2f,", t[2], t[1], t[3], s / 1048576 }')
    log "[$sys] snapshot save (median of ${times[*]} s): $(echo "$snap_line" | tr -s ' \n' ' ')"
  fi
  rm -f "$T/snap.db" "$T/snap.db.part"
  {
    echo "{"
    [ -n "$snap_line" ] && echo "$snap_line"
    awk -v n="$BULK_PUTS" -v max="$max" -v sum="$sum" -v d="$dmax" 'BEGIN {
      printf "  \"puts_total\": %d,\n", n
      printf "  \"peak_rss_mib_max\": %.1f,\n", max / 1024
      printf "  \"peak_rss_mib_mean\": %.1f,\n", sum / 3 / 1024
      printf "  \"data_dir_mib_max\": %.1f\n", d / 1048576 }'
    echo "}"
  } >"$RAW/${sys}__resources.json"
  stop_cluster
}

# ---------------------------------------------------------------- tools
APT_UPDATED=""
apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  [ -n "$APT_UPDATED" ] || { apt-get update -qq >/dev/null; APT_UPDATED=1; }
  apt-get install -y -qq "$@" >/dev/null
}

install_tools() {
  command -v protoc >/dev/null 2>&1 || { log "installing protobuf-compiler"; apt_install protobuf-compiler; }
  if [ ! -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] && [ -z "${KV_BENCH_FONT:-}" ]; then
    log "installing fonts-dejavu-core"
    apt_install fonts-dejavu-core
  fi
  if [ -n "${ETCD_DIR:-}" ]; then
    ETCD_BIN="$ETCD_DIR/etcd" ETCDCTL="$ETCD_DIR/etcdctl"
  else
    log "fetching etcd from the Debian packages (apt-get download + dpkg -x)"
    mkdir -p "$T/etcd-pkg"
    (
      cd "$T/etcd-pkg"
      if ! apt-get download etcd-server etcd-client >/dev/null 2>&1; then
        apt-get update -qq >/dev/null
        apt-get download etcd-server etcd-client >/dev/null
      fi
      for deb in *.deb; do dpkg -x "$deb" root; done
    )
    ETCD_BIN="$T/etcd-pkg/root/usr/bin/etcd" ETCDCTL="$T/etcd-pkg/root/usr/bin/etcdctl"
  fi
  # (awk, not head: head exits after one line, and etcd writing its next line into the closed
  # pipe dies of SIGPIPE, which pipefail and set -e turn into a silent exit of this script.)
  ETCD_VERSION=$("$ETCD_BIN" --version | awk 'NR == 1 {print $3}')
  if [ "$ETCD_VERSION" != 3.4.23 ]; then
    echo "warning: etcd is $ETCD_VERSION, not 3.4.23" | tee -a "$FAILS"
  fi
}

build() {
  if [ -z "${SKIP_BUILD:-}" ]; then
    log "cargo build --release -p kvstore -p kv-bench"
    cargo build --release -p kvstore -p kv-bench
  fi
  # Private copies: the tree may be rebuilt by someone else while we run.
  mkdir -p "$T/bin"
  cp target/release/kvstore target/release/kv-bench "$T/bin/"
}

write_meta() {
  local m="$OUT/meta.txt" commit dirty
  commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
  dirty=$(git -C "$ROOT" status --porcelain -- store 2>/dev/null | wc -l)
  {
    echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "machine=$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo) memory"
    echo "kernel=$(uname -sr), $(. /etc/os-release && echo "$PRETTY_NAME")"
    echo "disk=data dirs on $(df -h "$T" | awk 'NR == 2 {print $1 " (" $2 ")"}'), client and all 6 members on the same machine"
    echo "etcd=$ETCD_VERSION ($("$ETCD_BIN" --version | grep 'Go Version' | cut -d: -f2 | sed 's/^ *//'), Debian package etcd-server $(dpkg-deb -f "$T"/etcd-pkg/etcd-server*.deb Version 2>/dev/null || echo "? (ETCD_DIR: extracted beforehand)"))"
    echo "etcdctl=$("$ETCDCTL" version 2>/dev/null | awk 'NR == 1')"
    echo "kvstore=git $commit$([ "$dirty" -gt 0 ] && echo " + $dirty uncommitted change(s) in store/"), $("$T/bin/kvstore" --version 2>/dev/null | awk 'NR == 1')"
    echo "load generator=kv-bench $("$T/bin/kv-bench" --version | awk '{print $2}'), etcd-client crate $(awk '/^name = "etcd-client"/ {getline; print $3}' Cargo.lock | tr -d '"'), $(rustc --version)"
    echo "method=$ROUNDS round(s), each: a fresh 3-member cluster of each system in turn ($SYSTEMS), every workload for $DURATION s; medians over rounds"
    echo "cluster=3 members on 127.0.0.1, heartbeat 100 ms, election 1000 ms, fsync on every commit (etcd default; kvstore always), fresh data dirs"
    echo "clients=puts and txn-cas sent to the leader (--target-leader); ranges, mixed and watchers spread over the 3 members; one connection per 16 client tasks; watch writer paced at 100 puts/s on the leader"
    echo "bulk=$BULK_PUTS sequential-key 256-byte puts, 256 clients, on a fresh cluster of each system; then VmHWM, du -sb of each data dir, etcdctl snapshot save from member 1 (median of 3)"
    echo "workloads=$WORKLOADS"
    echo "load average at start=$(cut -d' ' -f1-3 /proc/loadavg) (other processes on the machine: $(ps -e --no-headers | wc -l))"
  } >"$m"
}

# ---------------------------------------------------------------- main
mkdir -p "$RAW"
exec > >(tee "$OUT/compare.log") 2>&1
rm -f "$RAW"/*.json "$FAILS" "$OUT/meta.txt"
rm -rf "$OUT/logs"
install_tools
build
write_meta
for r in $(seq "$ROUNDS"); do
  for sys in $SYSTEMS; do
    log "=== round $r/$ROUNDS: $sys"
    run_round "$sys" "$r"
  done
done
if [ "$BULK_PUTS" -gt 0 ]; then
  for sys in $SYSTEMS; do
    log "=== $BULK_PUTS puts on $sys"
    run_bulk "$sys"
  done
fi
echo "load average at end=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/meta.txt"
echo "total_minutes=$(( ($(date +%s) - START_TIME + 59) / 60 ))" >>"$OUT/meta.txt"
if [ -s "$FAILS" ]; then
  echo "harness problems=$(wc -l <"$FAILS") (see failures.txt): $(head -3 "$FAILS" | tr '\n' ';')" >>"$OUT/meta.txt"
fi
SYS_CSV=$(echo $SYSTEMS | tr ' ' ,)
"$T/bin/kv-bench" report --raw-dir "$RAW" --meta "$OUT/meta.txt" --systems "$SYS_CSV" \
  --out-json "$OUT/results.json" --out-md "$OUT/RESULTS.md"
"$T/bin/kv-bench" chart --input "$OUT/results.json" --out "$OUT/results.png"
log "wrote $OUT/RESULTS.md, results.json, results.png and raw/"
echo
cat "$OUT/RESULTS.md"
