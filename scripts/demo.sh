#!/usr/bin/env bash
# The whole system on this machine: builds the binaries, then runs kv-demo (a local Kubernetes
# API server and node, the operator installed with helm, a 3-member KVCluster). Needs root
# (network namespaces). Ctrl-C stops and removes everything.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -p kvstore -p kv-operator -p kv-e2e --bins
exec target/debug/kv-demo
