#!/usr/bin/env bash
# Run the public HTTP caching test suite (http-cache-tests 0.4.5) against etagate with the
# shipped default policies, save the results and fail when the required score drops below the
# floor recorded in docs/conformance/floor.
#
# Usage: scripts/conformance.sh [--release] [--failures] [--no-floor]
set -euo pipefail
cd "$(dirname "$0")/.."

profile=debug; cargo_flags=(); extra=(); floor_check=1
for a in "$@"; do
  case "$a" in
    --release) profile=release; cargo_flags=(--release) ;;
    --failures) extra+=(--failures) ;;
    --no-floor) floor_check=0 ;;
    *) echo "unknown argument: $a" >&2; exit 2 ;;
  esac
done

cargo build "${cargo_flags[@]}" --bin etagate >/dev/null
bin="target/$profile/etagate"

. scripts/lib/common.sh
read -r proxy_port origin_port admin_port <<<"$(free_ports 3)"
work=$(mktemp -d)
trap 'kill "${pid:-}" 2>/dev/null || true; rm -rf "$work"' EXIT

# The shipped defaults (conf/etagate.yaml) with this run's ports.
sed -e "s/127.0.0.1:8080/127.0.0.1:$proxy_port/" \
    -e "s/127.0.0.1:9090/127.0.0.1:$admin_port/" \
    -e "s/127.0.0.1:8000/127.0.0.1:$origin_port/" \
    -e "s#/tmp/etagate.pid#$work/etagate.pid#" \
    -e "s#/tmp/etagate_upgrade.sock#$work/upgrade.sock#" \
    -e "s#path: \"-\"#path: $work/access.log#" \
    conf/etagate.yaml > "$work/etagate.yaml"
"$bin" -t -c "$work/etagate.yaml" >/dev/null
RUST_LOG=warn "$bin" -c "$work/etagate.yaml" 2>"$work/etagate.log" &
pid=$!
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$admin_port/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done

floor_args=()
if [ "$floor_check" = 1 ]; then
  floor_args=(--floor-required "$(cat docs/conformance/floor)")
fi
status=0
scripts/cache-tests.sh --proxy-port "$proxy_port" --origin-port "$origin_port" \
  --out docs/conformance/results.json "${floor_args[@]}" "${extra[@]}" || status=$?
if [ "$status" -ne 0 ]; then
  echo "etagate log (last 30 lines):"; tail -30 "$work/etagate.log"
fi
exit "$status"
