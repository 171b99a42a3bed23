#!/usr/bin/env bash
# Check the Kubernetes manifests in deploy/kubernetes/ and exit non-zero if any check fails
# (scripts/check-deploy.sh runs it; the same ok/FAIL/skip lines). For the base and for
# overlays/example:
#   - `kubectl kustomize` renders it (kubectl 1.32, kustomize 5.5, on the project's machines);
#   - every object of the Kubernetes API validates against the schemas of Kubernetes 1.27 (the
#     oldest release the manifests use fields of) and 1.37 with kubernetes-validate --strict,
#     offline;
#   - the Prometheus Operator objects, which those schemas do not cover: the PrometheusRule's
#     rules pass `promtool check rules` and are exactly the groups of
#     deploy/prometheus/alerts.yml; the PodMonitor's structure, and that it scrapes the pods'
#     admin port as job="etagate" (what the rules select);
#   - the objects agree with each other, with deploy/container/Dockerfile and with the
#     configuration in the ConfigMap, among them: every ${NAME} the configuration uses is set
#     by container etagate's env (or the image's ENV), and cluster.advertise is the pod IP
#     (scripts/lib/kubernetes_check.py lists each check);
#   - the configuration in the ConfigMap passes `etagate -t` inside a stand-in for one pod:
#     the image's command, as its uid on a read-only root with exactly the volumes of container
#     etagate mounted where the manifest mounts them (scripts/lib/run-in-image.sh): the
#     ConfigMap's files as the kubelet lays them out, placeholder Secrets, and for a
#     volumeClaimTemplate a file system of the claimed size; and with exactly the environment
#     the container declares (the image's ENV, the container's env, stand-in values for the
#     downward API: POD_NAME=etagate-0, POD_IP=10.244.1.17, ...), so a variable the manifest
#     forgets fails here too. Needs root and a built binary ($ETAGATE_BIN, else the newer of
#     target/release and target/debug); skipped otherwise.
# And: deploy/kubernetes/base/prometheusrule.yaml is what
# `python3 scripts/lib/kubernetes_check.py prometheusrule --write` generates from alerts.yml.
# Needs kubectl, kubernetes-validate (pip), promtool and python3 with PyYAML
# (scripts/install-deps.sh test installs them).
# Usage: scripts/check-kubernetes.sh [KUSTOMIZATION_DIR...]   (default: the base and the example;
# name an overlay of your own to check it the same way)
set -uo pipefail
dirs=()
for d in "$@"; do dirs+=("$(realpath "$d")"); done
cd "$(dirname "$0")/.." || exit 1
# shellcheck source=scripts/lib/container.sh
. scripts/lib/container.sh

# shellcheck source=scripts/lib/checks.sh
. scripts/lib/checks.sh

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Kubernetes releases whose schemas the objects must satisfy: the oldest one whose fields
# the manifests use (PodDisruptionBudget.spec.unhealthyPodEvictionPolicy) and the newest
# kubernetes-validate bundles.
k8s_versions=(1.27.0 1.37.0)
kv_version=1.37.0   # the kubernetes-validate release install-deps.sh pins

if python3 scripts/lib/kubernetes_check.py prometheusrule >"$tmp/out" 2>&1; then
  pass "$(cat "$tmp/out")"
else
  fail "$(cat "$tmp/out")"
fi

have_kubectl=1 have_kv=1 have_promtool=1
command -v kubectl >/dev/null 2>&1 || { fail "kubectl not found: scripts/install-deps.sh test installs it"; have_kubectl=0; }
# Through the module, not the console script: a pip install under pyenv may leave no shim.
kv_found=$(python3 -m kubernetes_validate --version 2>/dev/null)
if [ -z "$kv_found" ]; then
  fail "kubernetes-validate not found: pip install kubernetes-validate==$kv_version (scripts/install-deps.sh test)"
  have_kv=0
elif [ "$kv_found" != "$kv_version" ]; then
  echo "      (kubernetes-validate $kv_found; install-deps.sh pins $kv_version)"
fi
command -v promtool >/dev/null 2>&1 || have_promtool=0
bin=$(find_etagate_bin)

[ ${#dirs[@]} -gt 0 ] || dirs=(deploy/kubernetes/base deploy/kubernetes/overlays/example)
for dir in "${dirs[@]}"; do
  [ $have_kubectl = 1 ] || break
  name=$(basename "$dir")
  out=$tmp/$name
  mkdir -p "$out"
  if ! kubectl kustomize "$dir" >"$out/rendered.yaml" 2>"$out/kustomize.err"; then
    fail "kubectl kustomize $dir"
    sed 's/^/      /' "$out/kustomize.err"
    if ! kubectl version --client 2>/dev/null | grep -q 'Kustomize Version: v[4-9]'; then
      echo "      (kubectl's kustomize is older than 4: Debian bookworm's kubernetes-client 1.20"
      echo "       embeds kustomize 2.0.3, which has no components, patches or directory resources)"
    fi
    continue
  fi
  pass "kubectl kustomize $dir ($(grep -c '^kind:' "$out/rendered.yaml") objects)"

  # The consistency checks print their own ok/FAIL lines; they also split the rendering.
  python3 scripts/lib/kubernetes_check.py inspect "$out/rendered.yaml" "$out" >"$out/inspect" 2>&1
  rc=$?
  sed "s/^\(ok  \|FAIL\)  /&$name: /" "$out/inspect"
  failures=$((failures + $(grep -c '^FAIL' "$out/inspect")))
  if [ $rc -ne 0 ] && ! grep -q '^FAIL' "$out/inspect"; then
    fail "$name: scripts/lib/kubernetes_check.py inspect exited with $rc"
  fi
  [ -f "$out/core.yaml" ] || continue

  if [ $have_kv = 1 ]; then
    args=()
    for v in "${k8s_versions[@]}"; do args+=(-k "$v"); done
    # --quiet prints only problems; a WARN (no schema for a kind) is one too, since the
    # operator's kinds were left out of core.yaml.
    python3 -m kubernetes_validate --strict --quiet "${args[@]}" "$out/core.yaml" >"$out/kv" 2>&1
    rc=$?
    if [ $rc -eq 0 ] && ! grep -q . "$out/kv"; then
      pass "$name: kubernetes-validate --strict, Kubernetes ${k8s_versions[*]} ($(grep -c '^kind:' "$out/core.yaml") objects)"
    else
      fail "$name: kubernetes-validate --strict, Kubernetes ${k8s_versions[*]}"
      sed 's/^/      /' "$out/kv"
    fi
  fi

  if [ -f "$out/rules.yml" ]; then
    if [ $have_promtool = 1 ]; then
      if promtool check rules "$out/rules.yml" >"$out/promtool" 2>&1; then
        pass "$name: promtool check rules on the PrometheusRule's spec"
      else
        fail "$name: promtool check rules on the PrometheusRule's spec"
        sed 's/^/      /' "$out/promtool"
      fi
    else
      fail "promtool not found: install Debian's prometheus package (scripts/install-deps.sh test)"
    fi
  fi

  # etagate -t in a stand-in for the pod, with the container's volumes and environment.
  env_shown=$(paste -sd ' ' "$out/pod/etagate.env" 2>/dev/null)
  what="$name: the ConfigMap's configuration passes etagate -t in the pod's volumes and env ($env_shown)"
  if [ -z "$bin" ]; then
    skip "$what: no built binary (cargo build, or set ETAGATE_BIN)"
    continue
  elif [ "$(id -u)" != 0 ]; then
    skip "$what: needs root (mount namespaces)"
    continue
  fi
  mapfile -t args <"$out/pod/etagate.args"
  mapfile -t cmd <"$out/pod/etagate.cmd"
  mkdir -p "$out/root"
  if scripts/lib/run-in-image.sh --root "$out/root" --bin "etagate=$bin" "${args[@]}" -- "${cmd[@]}" \
      >"$out/pod.log" 2>&1; then
    pass "$what ($bin)"
  else
    fail "$what ($bin)"
    sed 's/^/      /' "$out/pod.log"
  fi
done

if [ $failures -gt 0 ]; then
  echo "check-kubernetes: $failures check(s) failed"
  exit 1
fi
echo "check-kubernetes: all checks passed"
