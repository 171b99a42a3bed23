#!/usr/bin/env bash
# Build etagate and run it with conf/etagate.yaml in front of the bundled demo origin.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh build
cargo build --release --bins
./target/release/etagate-demo-origin --listen 127.0.0.1:8000 &
origin=$!
trap 'kill $origin 2>/dev/null || true' EXIT
./target/release/etagate -t -c conf/etagate.yaml
cat <<'TXT'

etagate listens on http://127.0.0.1:8080 in front of the demo origin on 127.0.0.1:8000.
Try (Ctrl-C stops both):

  curl -si http://127.0.0.1:8080/cacheable              # a strong content ETag on the first response
  curl -si http://127.0.0.1:8080/cacheable \
       -H 'If-None-Match: <the ETag above>'               # 304 from the cache, the origin is not asked
  curl -si http://127.0.0.1:8080/private                # ETag too, never stored (private)
  curl -si http://127.0.0.1:8080/changing               # a new ETag every time
  curl -s  http://127.0.0.1:9090/metrics | grep etagate_cache_requests_total

TXT
./target/release/etagate -c conf/etagate.yaml
