#!/usr/bin/env bash
# Install the system packages etagate's build, tests or benchmarks need, when missing.
# Usage: scripts/install-deps.sh build|test|bench   (Debian; run as root)
set -euo pipefail

want=(cmake)                      # Pingora's zlib-ng build
case "${1:-build}" in
  build) ;;
  test)  want+=(prometheus) ;;    # promtool and the Prometheus server used by the metrics tests
  bench) want+=(nginx varnish trafficserver wrk util-linux python3 valgrind) ;;   # scripts/bench.sh, bench-disk.sh, offload.sh, instructions.sh
  *) echo "usage: $0 build|test|bench" >&2; exit 2 ;;
esac
if [ "${1:-build}" = test ]; then
  # scripts/check-kubernetes.sh: kubectl kustomize. The machines' images ship kubectl 1.32;
  # Debian's kubernetes-client (1.20, kustomize 2.0.3) is only a fallback, too old to render
  # deploy/kubernetes/ (the check then says so).
  command -v kubectl >/dev/null 2>&1 || want+=(kubernetes-client)
  command -v openssl >/dev/null 2>&1 || want+=(openssl)     # a TLS Secret's stand-in
fi
command -v node >/dev/null 2>&1 || want+=(nodejs)     # the HTTP caching conformance suite
command -v npm  >/dev/null 2>&1 || want+=(npm)
command -v curl >/dev/null 2>&1 || want+=(curl)

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo_cmd apt-get update -qq
  $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# scripts/check-kubernetes.sh: offline schema validation of the rendered manifests (PyPI; it
# brings PyYAML, which scripts/lib/kubernetes_check.py uses too, also for
# check-image-runtime.sh). Keep the version in step with kv_version in check-kubernetes.sh.
kubernetes_validate=1.37.0
if [ "${1:-build}" = test ] &&
   [ "$(python3 -m kubernetes_validate --version 2>/dev/null)" != "$kubernetes_validate" ]; then
  echo "installing: kubernetes-validate==$kubernetes_validate (pip)"
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
    "kubernetes-validate==$kubernetes_validate"
fi
# Debian's prometheus package starts a server on :9090 (and node-exporter on :9100) as
# services; the tests start their own on loopback and etagate's admin default is :9090.
if [ "${1:-build}" = test ] && command -v systemctl >/dev/null 2>&1; then
  systemctl stop prometheus prometheus-node-exporter >/dev/null 2>&1 || true
fi
pkill -x prometheus >/dev/null 2>&1 || true
pkill -f prometheus-node-exporter >/dev/null 2>&1 || true
exit 0
