#!/usr/bin/env bash
# Memory per client connection, etagate beside nginx (proxy_cache, one worker): for each COUNT,
# a client opens COUNT connections that send nothing and reads the server's RSS (per idle
# connection), then sends one request on each and reads every answer (per connection idle after
# a request), closes them all and reads the RSS again after SETTLE (the memory a burst leaves
# behind, against the baseline before it). Both servers proxy a static nginx origin on
# loopback; etagate runs its release build with the shipped defaults but for the ports and a
# connection cap above COUNT. A COUNT above the open-file limit (both ends need one descriptor
# per connection) is skipped with a message.
#
# Usage: scripts/bench-idle.sh [--no-build] [--counts "10000 50000"] [--settle SECONDS] [--out FILE]
#   defaults: 10000 and 50000 connections, 60 s settle, the table on standard output
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/common.sh

counts="10000 50000"; settle=60; build=1; out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --no-build) build=0 ;;
    --counts) counts=$2; shift ;;
    --settle) settle=$2; shift ;;
    --out) out=$2; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done

bench_setup bench-idle "$build" nginx python3 curl

# Descriptors: as many as the hard limit allows, for this shell and what it starts.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
fd_limit=$(ulimit -n)

WORK=$(mktemp -d /tmp/etagate-bench-idle.XXXXXX)
chmod 755 "$WORK"   # nginx workers run as an unprivileged user
PIDS=()
cleanup() { stop_groups "${PIDS[@]}"; rm -rf "$WORK"; }
trap cleanup EXIT
read -r P_ORIGIN P_ETAGATE P_ADMIN P_NGINX < <(free_ports 4)
most=0
for n in $counts; do [ "$n" -gt "$most" ] && most=$n; done

mkdir -p "$WORK/www"
printf 'hello\n' >"$WORK/www/index.html"
nginx_conf "$WORK/origin" "server { listen 127.0.0.1:$P_ORIGIN; root $WORK/www;
    location / { add_header Cache-Control \"max-age=3600\"; } }"
nginx_conf "$WORK/nginx" "proxy_cache_path $WORK/nginx/cache keys_zone=c:10m;
  server { listen 127.0.0.1:$P_NGINX; location / { proxy_pass http://127.0.0.1:$P_ORIGIN; proxy_cache c; proxy_cache_lock on; } }"
for conf in "$WORK/origin/nginx.conf" "$WORK/nginx/nginx.conf"; do
  sed -i "s/worker_connections 4096;/worker_connections $((most + 64));/; s/^worker_processes 1;/worker_processes 1;\nworker_rlimit_nofile $((2 * most + 128));/" "$conf"
done
start_server origin nginx -p "$WORK/origin" -c "$WORK/origin/nginx.conf"
start_server nginx nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf"

sed -e "s/127\.0\.0\.1:8080/127.0.0.1:$P_ETAGATE/; s/127\.0\.0\.1:9090/127.0.0.1:$P_ADMIN/; s/127\.0\.0\.1:8000/127.0.0.1:$P_ORIGIN/" \
  -e "s#/tmp/etagate.pid#$WORK/etagate.pid#; s#/tmp/etagate_upgrade.sock#$WORK/upgrade.sock#" \
  conf/etagate.yaml >"$WORK/etagate.yaml"
sed -i "s/^\(\s*max_connections:\) [0-9]*/\1 $((most + 64))/" "$WORK/etagate.yaml"
grep -q "max_connections: $((most + 64))" "$WORK/etagate.yaml" || { echo "bench-idle: conf/etagate.yaml has no server.max_connections to raise" >&2; exit 1; }
"$ETAGATE_BIN" -t -c "$WORK/etagate.yaml" >/dev/null
start_server etagate "$ETAGATE_BIN" -c "$WORK/etagate.yaml"
etagate_pid=${PIDS[-1]}
wait_http "http://127.0.0.1:$P_ORIGIN/" || { echo "bench-idle: the origin did not start" >&2; exit 1; }
wait_http "http://127.0.0.1:$P_NGINX/" || { echo "bench-idle: nginx did not start" >&2; exit 1; }
wait_http "http://127.0.0.1:$P_ADMIN/readyz" || { tail -5 "$WORK/etagate.out" >&2; exit 1; }

# The process whose RSS is the server's: etagate itself; nginx's worker (the master holds none
# of the connections).
nginx_master=$(cat "$WORK/nginx/nginx.pid")
nginx_worker=$(pgrep -P "$nginx_master" | head -1)

measure() { # NAME PORT PID COUNT: one table row
  python3 - "$@" "$settle" <<'PY'
import socket, sys, time
name, port, pid, n, settle = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
def rss():
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise SystemExit(f"bench-idle: no VmRSS for {name} (pid {pid})")
for _ in range(3):   # warm: connections and the first request
    s = socket.create_connection(("127.0.0.1", port)); s.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"); s.recv(65536); s.close()
time.sleep(1)
base = rss()
socks = []
deadline = time.time() + 120
for i in range(n):
    if time.time() > deadline:
        raise SystemExit(f"bench-idle: {name}: only {i} of {n} connections in 120 s")
    socks.append(socket.create_connection(("127.0.0.1", port), timeout=10))
time.sleep(2)
idle = rss()
request = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
for s in socks:
    s.sendall(request)
answered = 0
for s in socks:
    data = b""
    while b"hello\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    answered += data.startswith(b"HTTP/1.1 200")
time.sleep(2)
after_request = rss()
for s in socks:
    s.close()
time.sleep(settle)
settled = rss()
kib = lambda v: f"{v / 1024:.1f} MiB"
print(f"| {name} | {n} | {kib(base)} | {(idle - base) / n:.1f} KiB | {(after_request - base) / n:.1f} KiB | {answered} | {kib(settled)} ({(settled - base) * 100 / base:+.0f} %) |")
PY
}

{
  echo "| server | connections | RSS before | per idle connection | per connection idle after one request | 200s | RSS ${settle} s after closing (vs before) |"
  echo "|---|---|---|---|---|---|---|"
  for n in $counts; do
    if [ $((n + 256)) -gt "$fd_limit" ]; then
      echo "| (skipped) | $n | | | | | open-file limit $fd_limit is below $n connections per end |"
      continue
    fi
    measure etagate "$P_ETAGATE" "$etagate_pid" "$n"
    measure nginx "$P_NGINX" "$nginx_worker" "$n"
  done
} | if [ -n "$out" ]; then tee "$out"; else cat; fi
