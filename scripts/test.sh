#!/usr/bin/env bash
# The whole test suite: unit and integration tests (the real binary over loopback, with a real
# Prometheus), a bounded fuzz run of every parser, the HTTP caching conformance suite against
# its recorded floor, the deployment file checks, smoke runs of the load and offload benchmarks
# and a one-minute soak. Installs what a fresh machine lacks.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh test
export RUST_BACKTRACE=0
echo "== unit and integration tests"
cargo test --all-targets
echo "== fuzzing, 5 s per parser (the build is kept across runs in FUZZ_TARGET_DIR)"
FUZZ_TARGET_DIR=${FUZZ_TARGET_DIR:-/var/tmp/etagate-fuzz-target} scripts/fuzz.sh --seconds 5
echo "== conformance (http-cache-tests)"
scripts/conformance.sh
echo "== deployment files"
scripts/check-deploy.sh
echo "== load benchmark, smoke mode (checks the script runs; no timing is judged)"
scripts/bench.sh --smoke --out "$(mktemp -d)/benchmarks.md"
echo "== disk-tier hits beside nginx, smoke mode"
scripts/bench-disk.sh --no-build --runs 1 --duration 1s --objects 300
echo "== instructions per request beside nginx, smoke mode"
scripts/instructions.sh --no-build --light 20 --heavy 120
echo "== memory per idle connection beside nginx, smoke mode"
scripts/bench-idle.sh --no-build --counts 200 --settle 1
echo "== origin-offload replay, smoke mode"
scripts/offload.sh --smoke --no-build
echo "== soak, one minute"
scripts/soak.sh --minutes 1 --no-build
