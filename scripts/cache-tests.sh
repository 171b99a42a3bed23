#!/usr/bin/env bash
# Run the HTTP caching conformance suite `http-cache-tests` (npm, pinned to 0.4.5; the suite
# behind cache-tests.fyi) against an HTTP proxy that is already listening on 127.0.0.1.
#
# Usage:
#   scripts/cache-tests.sh --proxy-port P --origin-port O [--out FILE] [--floor-required N]
#                          [--failures] [--groups] [--id TEST_ID] [--timeout SECS]
#
# The caller starts the proxy under test on 127.0.0.1:P, configured to forward to 127.0.0.1:O.
# This script:
#   1. installs http-cache-tests@0.4.5 into ${ETAGATE_CACHE_TESTS_DIR:-$HOME/.cache/etagate/http-cache-tests}
#      (reused when that version is already there);
#   2. starts the suite's origin server on 127.0.0.1:O (a preload pins its listen() to loopback);
#   3. runs the suite's CLI against http://127.0.0.1:P under `timeout`;
#   4. writes the raw results JSON (test id -> true | [error kind, message]) to --out
#      (default docs/conformance/results.json under the repo root);
#   5. prints a score table by kind (required / optimal / check) via scripts/cache-tests-score.mjs
#      and exits 1 when --floor-required N is given and fewer than N required tests passed.
#
# --failures   also list every failing test (id, kind, name, error).
# --groups     also print a per-test-group table.
# --id ID      run one test only and print the suite's request/response dump (no scoring, no --out).
# --timeout S  wall-clock limit for the CLI run (default 300). On expiry the tests finished so far are
#              still written; unfinished ones count as failed, and the script exits 3.
#
# Every request the harness makes also gets a 15 s no-progress limit (ETAGATE_CACHE_TESTS_REQ_TIMEOUT_MS),
# so a proxy that stalls one connection (e.g. a wrong Content-Length after a 304) fails that test
# instead of hanging the whole run. Only 127.0.0.1 is ever contacted.
set -euo pipefail

SUITE_VERSION=0.4.5
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "${SCRIPT_DIR}/.." && pwd)"

usage() {
  sed -n '2,8p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

PROXY_PORT=""
ORIGIN_PORT=""
OUT="${REPO_ROOT}/docs/conformance/results.json"
FLOOR=""
SCORE_FLAGS=()
TEST_ID=""
RUN_TIMEOUT=300

while [[ $# -gt 0 ]]; do
  case "$1" in
    --proxy-port) PROXY_PORT="${2:?}"; shift 2 ;;
    --origin-port) ORIGIN_PORT="${2:?}"; shift 2 ;;
    --out) OUT="${2:?}"; shift 2 ;;
    --floor-required) FLOOR="${2:?}"; shift 2 ;;
    --failures|--groups) SCORE_FLAGS+=("$1"); shift ;;
    --id) TEST_ID="${2:?}"; shift 2 ;;
    --timeout) RUN_TIMEOUT="${2:?}"; shift 2 ;;
    -h|--help) usage ;;
    *) echo "unknown argument: $1" >&2; usage ;;
  esac
done

is_port() { [[ "$1" =~ ^[0-9]+$ ]] && (( $1 > 0 && $1 < 65536 )); }
is_port "${PROXY_PORT}" || { echo "--proxy-port is required (1-65535)" >&2; usage; }
is_port "${ORIGIN_PORT}" || { echo "--origin-port is required (1-65535)" >&2; usage; }
[[ "${PROXY_PORT}" != "${ORIGIN_PORT}" ]] || { echo "proxy and origin ports must differ" >&2; exit 2; }
[[ -z "${FLOOR}" || "${FLOOR}" =~ ^[0-9]+$ ]] || { echo "--floor-required takes a number" >&2; exit 2; }
[[ "${RUN_TIMEOUT}" =~ ^[0-9]+$ ]] || { echo "--timeout takes seconds" >&2; exit 2; }
case "${OUT}" in /*) ;; *) OUT="${PWD}/${OUT}" ;; esac

command -v node >/dev/null || { echo "node is required (Debian: apt-get install -y nodejs npm)" >&2; exit 2; }
command -v npm >/dev/null || { echo "npm is required (Debian: apt-get install -y npm)" >&2; exit 2; }

# ---- 1. install the suite (pinned) -------------------------------------------------------------
CACHE_DIR="${ETAGATE_CACHE_TESTS_DIR:-${HOME}/.cache/etagate/http-cache-tests}"
PKG_DIR="${CACHE_DIR}/node_modules/http-cache-tests"
installed_version() {
  node -e 'try { process.stdout.write(require(process.argv[1]).version) } catch (e) {}' \
    "${PKG_DIR}/package.json" 2>/dev/null || true
}
if [[ "$(installed_version)" != "${SUITE_VERSION}" || ! -d "${CACHE_DIR}/node_modules/node-fetch" ]]; then
  echo "installing http-cache-tests@${SUITE_VERSION} into ${CACHE_DIR}" >&2
  mkdir -p "${CACHE_DIR}"
  [[ -f "${CACHE_DIR}/package.json" ]] || echo '{ "name": "etagate-cache-tests", "private": true }' > "${CACHE_DIR}/package.json"
  (cd "${CACHE_DIR}" && npm install --no-audit --no-fund --no-save "http-cache-tests@${SUITE_VERSION}" >&2)
  [[ "$(installed_version)" == "${SUITE_VERSION}" ]] || { echo "install of http-cache-tests@${SUITE_VERSION} failed" >&2; exit 2; }
fi

# Preloads, regenerated every run (small, and keeps the cache dir self-healing).
# - loopback.cjs: any listen(port) / listen({port}) without a host binds to 127.0.0.1 only.
cat > "${CACHE_DIR}/etagate-loopback.cjs" <<'EOF'
'use strict'
const net = require('net')
const listen = net.Server.prototype.listen
net.Server.prototype.listen = function (...args) {
  const a0 = args[0]
  if (typeof a0 === 'number' || (typeof a0 === 'string' && /^\d+$/.test(a0))) {
    if (typeof args[1] !== 'string') args.splice(1, 0, '127.0.0.1')
  } else if (a0 && typeof a0 === 'object' && !Array.isArray(a0) && a0.path === undefined && !a0.host) {
    args[0] = Object.assign({}, a0, { host: '127.0.0.1' })
  } else if (a0 === undefined || typeof a0 === 'function') {
    args.unshift(0, '127.0.0.1')
  }
  return listen.apply(this, args)
}
EOF
# - client.mjs: a no-progress limit on every client request, and on SIGTERM (from `timeout`) the
#   results gathered so far are written to $ETAGATE_HCT_PARTIAL before exiting 124.
cat > "${CACHE_DIR}/etagate-client.mjs" <<'EOF'
import http from 'node:http'
import fs from 'node:fs'
import { pathToFileURL } from 'node:url'

const limit = parseInt(process.env.ETAGATE_CACHE_TESTS_REQ_TIMEOUT_MS || '15000', 10)
const request = http.request
http.request = function (...args) {
  const req = request.apply(this, args)
  if (limit > 0) {
    req.setTimeout(limit, () => req.destroy(new Error(`no progress for ${limit} ms (proxy stalled)`)))
  }
  return req
}

const pkg = process.env.ETAGATE_HCT_PKG
const partial = process.env.ETAGATE_HCT_PARTIAL
if (pkg && partial) {
  const { testResults } = await import(pathToFileURL(`${pkg}/client/test.mjs`).href)
  process.on('SIGTERM', () => {
    fs.writeFileSync(partial, JSON.stringify(testResults, null, 2))
    process.exit(124)
  })
}
EOF

# ---- 2. start the origin on 127.0.0.1:O ----------------------------------------------------------
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if port_open "${ORIGIN_PORT}"; then
  echo "127.0.0.1:${ORIGIN_PORT} is already in use; pick a free --origin-port" >&2
  exit 2
fi
if ! port_open "${PROXY_PORT}"; then
  echo "nothing listens on 127.0.0.1:${PROXY_PORT}: start the proxy under test first" >&2
  exit 2
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/etagate-cache-tests.XXXXXX")"
ORIGIN_PID=""
cleanup() {
  if [[ -n "${ORIGIN_PID}" ]] && kill -0 "${ORIGIN_PID}" 2>/dev/null; then
    kill "${ORIGIN_PID}" 2>/dev/null || true
    wait "${ORIGIN_PID}" 2>/dev/null || true
  fi
  rm -rf "${WORK}"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

(
  cd "${PKG_DIR}"
  exec env npm_config_protocol=http npm_config_port="${ORIGIN_PORT}" \
    npm_config_pidfile="${WORK}/server.pid" \
    node -r "${CACHE_DIR}/etagate-loopback.cjs" server/server.mjs
) > "${WORK}/origin.log" 2>&1 &
ORIGIN_PID=$!

for _ in $(seq 1 100); do
  if ! kill -0 "${ORIGIN_PID}" 2>/dev/null; then
    echo "origin server exited early:" >&2; cat "${WORK}/origin.log" >&2; exit 2
  fi
  if grep -q '^Listening on ' "${WORK}/origin.log" && port_open "${ORIGIN_PORT}"; then break; fi
  sleep 0.1
done
if ! grep -q '^Listening on http://127.0.0.1:' "${WORK}/origin.log"; then
  echo "origin server did not come up on 127.0.0.1:${ORIGIN_PORT}:" >&2; cat "${WORK}/origin.log" >&2; exit 2
fi
echo "origin: $(grep '^Listening on ' "${WORK}/origin.log")" >&2

# ---- 3. run the CLI through the proxy ----------------------------------------------------------
run_cli() {
  (
    cd "${PKG_DIR}"
    env npm_config_base="http://127.0.0.1:${PROXY_PORT}" \
      npm_config_id="$1" npm_package_config_id="$1" \
      ETAGATE_HCT_PKG="${PKG_DIR}" ETAGATE_HCT_PARTIAL="${WORK}/partial.json" \
      timeout --kill-after=10 "${RUN_TIMEOUT}" \
      node --no-warnings --import "${CACHE_DIR}/etagate-client.mjs" cli.mjs
  )
}

if [[ -n "${TEST_ID}" ]]; then
  set +e
  run_cli "${TEST_ID}"
  rc=$?
  set -e
  echo "---- origin log ----" >&2
  cat "${WORK}/origin.log" >&2
  exit "${rc}"
fi

echo "running http-cache-tests@${SUITE_VERSION} against http://127.0.0.1:${PROXY_PORT} (timeout ${RUN_TIMEOUT}s)" >&2
start=$(date +%s)
set +e
run_cli "" > "${WORK}/stdout.json" 2> "${WORK}/cli.stderr"
rc=$?
set -e
echo "CLI finished in $(( $(date +%s) - start ))s (exit ${rc})" >&2

mkdir -p "$(dirname "${OUT}")"
TIMED_OUT=""
if [[ ${rc} -eq 0 ]] && node -e 'JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"))' "${WORK}/stdout.json" 2>/dev/null; then
  cp "${WORK}/stdout.json" "${OUT}"
elif [[ -s "${WORK}/partial.json" ]]; then
  echo "WARNING: the run did not finish within ${RUN_TIMEOUT}s; scoring the tests that completed" >&2
  cp "${WORK}/partial.json" "${OUT}"
  TIMED_OUT=1
else
  echo "the CLI failed (exit ${rc}) without results" >&2
  tail -n 40 "${WORK}/cli.stderr" >&2 || true
  exit 2
fi
if [[ -s "${WORK}/cli.stderr" ]]; then
  echo "CLI stderr (last lines):" >&2
  tail -n 10 "${WORK}/cli.stderr" >&2
fi
echo "results written to ${OUT}" >&2

# ---- 4. score ------------------------------------------------------------------------------------
score_args=(--results "${OUT}" --suite "${PKG_DIR}")
score_args+=(${SCORE_FLAGS[@]+"${SCORE_FLAGS[@]}"})
[[ -n "${FLOOR}" ]] && score_args+=(--floor-required "${FLOOR}")
set +e
node "${SCRIPT_DIR}/cache-tests-score.mjs" "${score_args[@]}"
score_rc=$?
set -e
if [[ ${score_rc} -ne 0 ]]; then exit "${score_rc}"; fi
if [[ -n "${TIMED_OUT}" ]]; then exit 3; fi
exit 0
