#!/usr/bin/env bash
# A robustness run by hand: the fault-injection suite of tests/robustness against kvstore (a
# release build of this tree) or against etcd 3.4.23 from Debian's packages (calibration), as
# root so that partitions can be made. Its summary (and on failure the history and the
# members' logs) goes to --out.
#
# Usage: scripts/robustness.sh kvstore --duration 20m --out results/robustness/long
#        scripts/robustness.sh etcd --duration 5m --out results/robustness/etcd-3.4.23
#        (any other kv-robustness flag passes through: --seed, --clients, --rate, --faults)
set -euo pipefail
cd "$(dirname "$0")/.."

target="${1:?usage: scripts/robustness.sh kvstore|etcd [kv-robustness flags]}"
shift

command -v protoc >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq protobuf-compiler >/dev/null; }
command -v iptables >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq iptables >/dev/null; }
cargo build --release -p kvstore -p kv-robustness
# Private copies: the tree may be rebuilt while a long run goes on.
T=$(mktemp -d)
chmod 755 "$T" # members run under their own uids (for partitions)
trap 'rm -rf "$T"' EXIT
cp target/release/kvstore target/release/kv-robustness "$T/"

case "$target" in
  kvstore) bin="$T/kvstore" ;;
  etcd)
    TOOLS="${KVSTORE_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kvstore-tools}"
    bin="$TOOLS/etcd/root/usr/bin/etcd"
    if ! [ -x "$bin" ]; then
      mkdir -p "$TOOLS/etcd"
      (
        cd "$TOOLS/etcd"
        apt-get download etcd-server >/dev/null 2>&1 || { apt-get update -qq && apt-get download etcd-server >/dev/null; }
        dpkg -x etcd-server_*.deb root
      )
    fi
    "$bin" --version | awk 'NR == 1'
    ;;
  *) echo "unknown target $target: kvstore or etcd" >&2; exit 2 ;;
esac

"$T/kv-robustness" --target "$target" --bin "$bin" "$@"
