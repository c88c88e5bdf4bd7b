#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs what the tests need, then runs format,
# lint and every test. Usage: scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v etcdctl >/dev/null 2>&1 || need_apt+=(etcd-client)
command -v protoc >/dev/null 2>&1 || need_apt+=(protobuf-compiler)
command -v iptables >/dev/null 2>&1 || need_apt+=(iptables)   # kube-node's partition test
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "==> installing ${need_apt[*]} (Debian packages)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "==> installing cargo-nextest"
  cargo install cargo-nextest --locked
fi

# The backup end-to-end test's object store (s3s-fs, cargo install once into the tools cache).
scripts/s3-tools.sh >/dev/null

echo "==> cargo fmt --check"
cargo fmt --all --check
echo "==> cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "==> tests"
# The local Kubernetes tests run the kvstore and kv-operator binaries as pods.
cargo build --workspace --bins
cargo nextest run --workspace --profile ci
cargo test --workspace --doc
echo "==> manifests (helm lint, kubernetes-validate, CRD schema, install.yaml drift)"
scripts/validate-manifests.sh --objects operator/golden
