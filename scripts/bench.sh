#!/usr/bin/env bash
# Side-by-side load benchmark: etagate against nginx proxy_cache, Varnish and Apache Traffic
# Server, all in front of one static nginx origin on loopback, each pinned to one core.
#
# Usage: scripts/bench.sh [--smoke] [--no-build] [--runs N] [--duration D] [--out FILE]
#                         [--systems LIST] [--keep]
#
#   --smoke        CI mode: every system, every scenario, 1 KiB only, 1 run of 1 s; checks that
#                  the whole thing works end to end (never judged by its numbers).
#   --no-build     use the existing target/release/etagate (or $ETAGATE_BIN).
#   --runs N       runs per system and scenario, medians reported (default 5).
#   --duration D   wrk duration of one run (default 10s; smoke 1s).
#   --out FILE     Markdown report (default docs/benchmarks.md; smoke: /tmp/etagate-bench-smoke.md).
#   --systems LIST comma-separated subset of: etagate,nginx,varnish,ats,ceiling.
#   --scenarios LIST comma-separated subset of: S1,S2,S3,S4,S5,S6 (default all).
#   --keep         keep the work directory (configs, logs, raw wrk output).
#
# Everything listens on 127.0.0.1 only. Servers under test run on core 0 (taskset -c 0); wrk,
# the origin and this script run on core 1. Details and the method: docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
. scripts/lib/common.sh

command_line="scripts/bench.sh${*:+ $*}"
runs=5; duration=10s; smoke=0; build=1; out=""; keep=0
systems_wanted="etagate,nginx,varnish,ats,ceiling"
scenarios_wanted="S1,S2,S3,S4,S5,S6"
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) smoke=1 ;;
    --no-build) build=0 ;;
    --runs) runs=$2; shift ;;
    --duration) duration=$2; shift ;;
    --out) out=$2; shift ;;
    --systems) systems_wanted=$2; shift ;;
    --scenarios) scenarios_wanted=$2; shift ;;
    --keep) keep=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done
if [ "$smoke" = 1 ]; then
  runs=1; duration=1s
  sizes=(1k); pass_sizes=(1k); text_sizes=(1k)
  warm_duration=1s; count_duration=1s
else
  sizes=(1k 16k 256k); pass_sizes=(1k 256k); text_sizes=(16k 256k)
  warm_duration=2s; count_duration=2s
fi
want() { [[ ",$systems_wanted," == *",$1,"* ]]; }
want_scenario() { [[ ",$scenarios_wanted," == *",$1,"* ]]; }

# ---------------------------------------------------------------------------------------------
# Dependencies and build
# ---------------------------------------------------------------------------------------------
if [ "$(id -u)" -eq 0 ] || command -v sudo >/dev/null 2>&1; then
  scripts/install-deps.sh bench
fi
for tool in nginx varnishd traffic_server wrk taskset python3 curl; do
  command -v "$tool" >/dev/null 2>&1 || { echo "bench: $tool is missing (scripts/install-deps.sh bench)" >&2; exit 1; }
done
if [ "$build" = 1 ]; then
  cargo build --release --bins
fi
ETAGATE_BIN=${ETAGATE_BIN:-$ROOT/target/release/etagate}
[ -x "$ETAGATE_BIN" ] || { echo "bench: $ETAGATE_BIN not found (build it or drop --no-build)" >&2; exit 1; }
if [ "$(getconf _NPROCESSORS_ONLN)" -lt 2 ]; then
  echo "bench: needs at least 2 CPUs (server on core 0, load generator on core 1)" >&2; exit 1
fi

load_at_start=$(cut -d' ' -f1 /proc/loadavg)

# From here on this script, and everything it starts without an explicit taskset, runs on core 1.
taskset -cp 1 $$ >/dev/null

# ---------------------------------------------------------------------------------------------
# Work directory (tmpfs when available: caches and temp files live in memory) and cleanup
# ---------------------------------------------------------------------------------------------
base=/tmp; [ -d /dev/shm ] && [ -w /dev/shm ] && base=/dev/shm
WORK=$(mktemp -d "$base/etagate-bench.XXXXXX")
chmod 755 "$WORK"
declare -a PIDS=()         # process-group leaders started here (each server runs under setsid)
SAMPLER=""
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  [ -n "$SAMPLER" ] && kill "$SAMPLER" 2>/dev/null || true
  stop_groups "${PIDS[@]}"
  if [ "$keep" = 1 ]; then echo "bench: work directory kept: $WORK"; else rm -rf "$WORK"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
# A private copy: a rebuild of target/release during the run must not change what is measured.
cp "$ETAGATE_BIN" "$WORK/etagate-bin"; ETAGATE_BIN="$WORK/etagate-bin"

# start_server NAME CORE CMD... : runs CMD in its own session pinned to CORE; sets LAST_PID.
start_server() {
  local name=$1 core=$2; shift 2
  setsid taskset -c "$core" "$@" >"$WORK/$name.out" 2>&1 </dev/null &
  LAST_PID=$!
  PIDS+=("$LAST_PID")
}

read -r P_ORIGIN P_CEIL P_ETAGATE P_ADMIN P_NGINX P_VARNISH P_ATS <<<"$(free_ports 7)"

meta="$WORK/meta.tsv"; results="$WORK/results.tsv"; : >"$meta"; : >"$results"
note() { printf '%s\t%s\n' "$1" "$2" >>"$meta"; }
warn() { echo "bench: WARNING: $*" >&2; note warning "$*"; }
if awk -v l="$load_at_start" 'BEGIN { exit !(l > 0.7) }'; then
  warn "load average $load_at_start before the benchmark started: other processes compete for the two cores, numbers are noisy"
fi

# ---------------------------------------------------------------------------------------------
# Origin content: three flavours of the same three sizes
#   /v/SIZE     nginx's own ETag (and Last-Modified), Cache-Control: max-age=3600    (S1, S2)
#   /nv/SIZE    no ETag, no Last-Modified, Cache-Control: max-age=3600              (S5)
#   /pass/SIZE  no ETag, no Last-Modified, Cache-Control: private                   (S3)
#   /ns/SIZE    no ETag, no Last-Modified, Cache-Control: no-store                  (S4)
#   /off/...    the same files (a symlink); etagate routes /off with etag disabled
#   /txt/SIZE   text (this repository's docs and sources, text/html), no validators,
#               Cache-Control: max-age=3600                                         (S6)
# ---------------------------------------------------------------------------------------------
mkdir -p "$WORK/www"
for d in v nv pass ns; do
  mkdir -p "$WORK/www/$d"
  head -c 1024   /dev/urandom >"$WORK/www/$d/1k"
  head -c 16384  /dev/urandom >"$WORK/www/$d/16k"
  head -c 262144 /dev/urandom >"$WORK/www/$d/256k"
done
ln -s "$WORK/www" "$WORK/www/off"
mkdir -p "$WORK/www/txt"
cat docs/*.md src/http/*.rs src/proxy/*.rs >"$WORK/corpus"
for n in 1024 16384 262144; do
  head -c $n "$WORK/corpus" >"$WORK/www/txt/$((n / 1024))k"
done

# A static nginx serving $WORK/www: the origin (core 1) and the ceiling row (core 0).
nginx_static_conf() { # PREFIX PORT
  # add_header with an empty value removes Last-Modified (nginx clears the header and its
  # time); etag off drops the ETag: the response carries no validator at all.
  nginx_conf "$1" "server {
    listen 127.0.0.1:$2;
    root $WORK/www;
    location = /__status { stub_status; }
    location /v/ { add_header Cache-Control \"max-age=3600\"; }
    location /nv/ {
      etag off; if_modified_since off; add_header Last-Modified \"\";
      add_header Cache-Control \"max-age=3600\";
    }
    location ~ ^(/off)?/pass/ {
      etag off; if_modified_since off; add_header Last-Modified \"\";
      add_header Cache-Control \"private\";
    }
    location /ns/ {
      etag off; if_modified_since off; add_header Last-Modified \"\";
      add_header Cache-Control \"no-store\";
    }
    location /txt/ {
      default_type text/html;
      etag off; if_modified_since off; add_header Last-Modified \"\";
      add_header Cache-Control \"max-age=3600\";
    }
  }"
}

# ---------------------------------------------------------------------------------------------
# Systems under test
# ---------------------------------------------------------------------------------------------
declare -A URL PID
systems=()

nginx_static_conf "$WORK/origin" "$P_ORIGIN"
start_server origin 1 nginx -p "$WORK/origin" -c "$WORK/origin/nginx.conf"
ORIGIN_PID=$LAST_PID
wait_http "http://127.0.0.1:$P_ORIGIN/v/1k" || { cat "$WORK/origin.out" "$WORK/origin/error.log" >&2; echo "bench: origin did not start" >&2; exit 1; }
ORIGIN="http://127.0.0.1:$P_ORIGIN"

origin_requests() { curl -s --max-time 2 "$ORIGIN/__status" | awk 'NR==3{print $3}'; }

if want etagate; then
  mkdir -p "$WORK/etagate"
  cat >"$WORK/etagate/etagate.yaml" <<EOF
# Generated by scripts/bench.sh
listeners:
  - address: 127.0.0.1:$P_ETAGATE
admin:
  address: 127.0.0.1:$P_ADMIN
upstreams:
  origin:
    servers: [127.0.0.1:$P_ORIGIN]
routes:
  - name: etag-off            # S3 with content ETags disabled
    path: /off
    upstream: origin
    etag: { enabled: false }
  - name: default             # every policy at its default
    path: /
    upstream: origin
cache:
  budget: 512MiB
access_log:
  enabled: false
server:
  threads: 1
  pid_file: $WORK/etagate/etagate.pid
  upgrade_socket: $WORK/etagate/upgrade.sock
  grace_period: 1s
  shutdown_timeout: 1s
EOF
  "$ETAGATE_BIN" -t -c "$WORK/etagate/etagate.yaml" >/dev/null
  RUST_LOG=warn start_server etagate 0 "$ETAGATE_BIN" -c "$WORK/etagate/etagate.yaml"
  PID[etagate]=$LAST_PID
  if wait_http "http://127.0.0.1:$P_ADMIN/readyz" 100; then
    URL[etagate]="http://127.0.0.1:$P_ETAGATE"; systems+=(etagate)
  else
    cat "$WORK/etagate.out" >&2; echo "bench: etagate did not become ready" >&2; exit 1
  fi
fi

if want nginx; then
  p="$WORK/nginx"; mkdir -p "$p/tmp" "$p/cache"
  nginx_conf "$p" "proxy_cache_path $p/cache levels=1:2 keys_zone=bench:64m max_size=512m inactive=1h use_temp_path=off;
  upstream origin { server 127.0.0.1:$P_ORIGIN; keepalive 64; }
  server {
    listen 127.0.0.1:$P_NGINX;
    location / {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection \"\";
      proxy_cache bench;
    }
    location /txt/ {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection \"\";
      proxy_cache bench;
      gzip on;               # S6: nginx compresses each response as it sends it
    }
  }"
  start_server nginx 0 nginx -p "$p" -c "$p/nginx.conf"
  PID[nginx]=$LAST_PID
  if wait_http "http://127.0.0.1:$P_NGINX/v/1k"; then
    URL[nginx]="http://127.0.0.1:$P_NGINX"; systems+=(nginx)
  else
    warn "nginx proxy_cache did not start: $(tail -3 "$p/error.log" "$WORK/nginx.out" 2>/dev/null | tr '\n' ' ')"
  fi
fi

if want varnish; then
  mkdir -p "$WORK/varnish"
  # -j none: no privilege separation (we are root, the work dir is private); -T none: no CLI
  # port; the builtin VCL (caches what the origin allows, passes private responses) after one
  # addition for S6: text is stored gzipped (Varnish's gzip support), gunzipped for clients
  # that do not accept gzip.
  cat >"$WORK/varnish.vcl" <<EOF
vcl 4.1;
backend origin { .host = "127.0.0.1"; .port = "$P_ORIGIN"; }
sub vcl_backend_response {
  if (bereq.url ~ "^/txt/") { set beresp.do_gzip = true; }
}
EOF
  start_server varnish 0 varnishd -F -j none -T none -n "$WORK/varnish" \
    -a "127.0.0.1:$P_VARNISH" -f "$WORK/varnish.vcl" -s malloc,512m
  PID[varnish]=$LAST_PID
  if wait_http "http://127.0.0.1:$P_VARNISH/v/1k" 150; then
    URL[varnish]="http://127.0.0.1:$P_VARNISH"; systems+=(varnish)
  else
    warn "Varnish did not start: $(tail -3 "$WORK/varnish.out" | tr '\n' ' ')"
  fi
fi

if want ats; then
  # Apache Traffic Server from a private runroot: every directory it reads or writes is under
  # $WORK/ats, the config is generated, and it stays root (user_id #-1).
  a="$WORK/ats"; mkdir -p "$a/etc" "$a/run" "$a/log" "$a/cache" "$a/var"
  cat >"$a/runroot.yaml" <<EOF
prefix: $a
exec_prefix: /usr
bindir: /usr/bin
sbindir: /usr/sbin
sysconfdir: $a/etc
datadir: $a/cache
includedir: /usr/include
libdir: /usr/lib/trafficserver
libexecdir: /usr/lib/trafficserver/modules
localstatedir: $a/var
runtimedir: $a/run
logdir: $a/log
cachedir: $a/cache
EOF
  for f in cache.config hosting.config parent.config plugin.config socks.config splitdns.config \
           ssl_multicert.config volume.config sni.yaml strategies.yaml logging.yaml; do
    if [ -f "/etc/trafficserver/$f" ]; then cp "/etc/trafficserver/$f" "$a/etc/"; else : >"$a/etc/$f"; fi
  done
  [ -d /etc/trafficserver/body_factory ] && cp -r /etc/trafficserver/body_factory "$a/etc/"
  cat >"$a/etc/records.config" <<EOF
CONFIG proxy.config.admin.user_id STRING #-1
CONFIG proxy.config.crash_log_helper STRING NULL
CONFIG proxy.config.http.server_ports STRING $P_ATS:ip-in=127.0.0.1
CONFIG proxy.config.exec_thread.autoconfig INT 0
CONFIG proxy.config.exec_thread.limit INT 1
CONFIG proxy.config.exec_thread.affinity INT 0
CONFIG proxy.config.accept_threads INT 0
CONFIG proxy.config.task_threads INT 1
CONFIG proxy.config.cache.threads_per_disk INT 2
CONFIG proxy.config.dns.nameservers STRING 127.0.0.1
CONFIG proxy.config.log.logging_enabled INT 0
CONFIG proxy.config.url_remap.remap_required INT 1
CONFIG proxy.config.reverse_proxy.enabled INT 1
CONFIG proxy.config.http.cache.http INT 1
CONFIG proxy.config.http.cache.required_headers INT 2
CONFIG proxy.config.http.insert_request_via_str INT 0
CONFIG proxy.config.http.insert_response_via_str INT 0
CONFIG proxy.config.cache.ram_cache.size INT 536870912
CONFIG proxy.config.cache.ram_cache_cutoff INT 4194304
CONFIG proxy.config.diags.debug.enabled INT 0
CONFIG proxy.config.net.connections_throttle INT 10000
CONFIG proxy.config.body_factory.template_sets_dir STRING $a/etc/body_factory
EOF
  echo "map / http://127.0.0.1:$P_ORIGIN/" >"$a/etc/remap.config"
  echo "$a/cache 512M" >"$a/etc/storage.config"
  cat >"$a/etc/ip_allow.yaml" <<EOF
ip_allow:
  - apply: in
    ip_addrs: 127.0.0.1
    action: allow
    methods: ALL
  - apply: out
    ip_addrs: 127.0.0.1
    action: allow
    methods: ALL
EOF
  start_server ats 0 traffic_server --run-root="$a/runroot.yaml"
  PID[ats]=$LAST_PID
  if wait_http "http://127.0.0.1:$P_ATS/v/1k" 200; then
    URL[ats]="http://127.0.0.1:$P_ATS"; systems+=(ats)
  else
    warn "Apache Traffic Server did not start, skipped: $(grep -hE 'ERROR|FATAL|EMERGENCY' "$a/log/diags.log" "$WORK/ats.out" 2>/dev/null | tail -3 | tr '\n' ' ')"
  fi
fi

if want ceiling; then
  nginx_static_conf "$WORK/ceiling" "$P_CEIL"
  start_server ceiling 0 nginx -p "$WORK/ceiling" -c "$WORK/ceiling/nginx.conf"
  PID[ceiling]=$LAST_PID
  if wait_http "http://127.0.0.1:$P_CEIL/v/1k"; then
    URL[ceiling]="http://127.0.0.1:$P_CEIL"; systems+=(ceiling)
  else
    warn "the ceiling nginx did not start"
  fi
fi
[ ${#systems[@]} -gt 0 ] || { echo "bench: no system started" >&2; exit 1; }
echo "bench: systems: ${systems[*]} (origin $ORIGIN); work dir $WORK"

# ---------------------------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------------------------
tree_rss_kb() { # sum of VmRSS over PID and its descendants
  local total=0 p r c
  local -a queue=("$1")
  while [ ${#queue[@]} -gt 0 ]; do
    p=${queue[0]}; queue=("${queue[@]:1}")
    [ -r "/proc/$p/status" ] || continue
    r=$(awk '/^VmRSS:/{print $2}' "/proc/$p/status" 2>/dev/null || true)
    total=$((total + ${r:-0}))
    for c in $(cat /proc/"$p"/task/*/children 2>/dev/null); do queue+=("$c"); done
  done
  echo "$total"
}
rss_sampler() { # PID FILE: the max RSS (KiB) seen, every 0.5 s, until killed
  local max=0 r
  while :; do
    r=$(tree_rss_kb "$1")
    if [ "$r" -gt "$max" ]; then max=$r; echo "$max" >"$2"; fi
    sleep 0.5
  done
}

# Interference from other processes: CPU time the machine spent during a run (user, nice,
# system over all CPUs, /proc/stat) minus what the server under test, the origin and this
# script's children (wrk, curl, the sampler) used. Reported as a share of the run's CPU time.
cpu_busy_ticks() { awk '/^cpu /{print $2 + $3 + $4; exit}' /proc/stat; }
children_ticks() { # CPU of this shell's reaped children, from the `times` builtin (run in this shell)
  times >"$WORK/times"
  awk 'NR == 2 { t = 0
         for (i = 1; i <= 2; i++) { s = $i; m = s; sub(/m.*/, "", m); sub(/^[0-9]+m/, "", s); sub(/s$/, "", s); t += (m * 60 + s) * 100 }
         printf "%d\n", t }' "$WORK/times"
}
NCPU=$(getconf _NPROCESSORS_ONLN); HZ=$(getconf CLK_TCK)

header_of() { # URL NAME [curl args...]: the value of response header NAME
  local url=$1 name=$2; shift 2
  curl -s -D - -o /dev/null --max-time 5 "$@" "$url" | tr -d '\r' |
    awk -v n="$(echo "$name" | tr 'A-Z' 'a-z')" 'BEGIN{FS=": "} tolower($1)==n{sub(/^[^:]*: /,""); print; exit}'
}
status_of() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$@"; }

WRK_BASE=(wrk -t1 -c64 --latency --timeout 5s)
noisy_pct=5; max_retries=2; retried=0
retry_budget=$(( smoke ? 0 : runs * 12 ))   # at most about 10 extra minutes at the defaults
mkdir -p "$WORK/raw"
failures=0

# run_wrk SCENARIO ROW SIZE RUN MODE DURATION URL [wrk -H args...]
#   MODE: main (measured, RSS sampled), warm (discarded), count (status counting)
run_wrk() {
  local scen=$1 row=$2 size=$3 run=$4 mode=$5 dur=$6 url=$7; shift 7
  local sys=${row%%:*}
  local raw="$WORK/raw/$scen-$row-$size-$run-$mode.txt" rssf="$WORK/raw/rss.$$"
  local lua_args=()
  [ "$mode" = count ] && lua_args=(-- count)
  echo 0 >"$rssf"
  local b0 s0 o0 c0
  b0=$(cpu_busy_ticks); s0=$(tree_ticks "${PID[$sys]}"); o0=$(tree_ticks "$ORIGIN_PID"); children_ticks >"$WORK/c0"
  if [ "$mode" = main ]; then rss_sampler "${PID[$sys]}" "$rssf" & SAMPLER=$!; fi
  local secs=${dur%s}
  if ! timeout $((secs + 30)) taskset -c 1 "${WRK_BASE[@]}" -d"$dur" -s "$ROOT/scripts/bench/stats.lua" "$@" "$url" "${lua_args[@]}" >"$raw" 2>&1; then
    warn "wrk failed: $scen $row $size run $run ($mode): $(tail -2 "$raw" | tr '\n' ' ')"
    failures=$((failures + 1))
  fi
  if [ -n "$SAMPLER" ]; then kill "$SAMPLER" 2>/dev/null || true; wait "$SAMPLER" 2>/dev/null || true; SAMPLER=""; fi
  [ "$mode" = warm ] && return 0
  local b1 s1 o1 c1 foreign
  b1=$(cpu_busy_ticks); s1=$(tree_ticks "${PID[$sys]}"); o1=$(tree_ticks "$ORIGIN_PID"); children_ticks >"$WORK/c1"
  c0=$(cat "$WORK/c0"); c1=$(cat "$WORK/c1")
  local stat
  stat=$(grep '^WRKSTAT' "$raw" || true)
  if [ -z "$stat" ]; then
    warn "no wrk summary: $scen $row $size run $run ($mode)"; failures=$((failures + 1)); return 0
  fi
  local kv; declare -A f=()
  for kv in ${stat#WRKSTAT }; do f[${kv%%=*}]=${kv#*=}; done
  local errs=$((f[err_connect] + f[err_read] + f[err_write] + f[err_status] + f[err_timeout]))
  foreign=$(awk -v b=$((b1 - b0)) -v o=$((s1 - s0 + o1 - o0 + c1 - c0)) -v d="${f[duration_us]}" -v n="$NCPU" -v hz="$HZ" \
    'BEGIN { x = 100 * (b - o) / (d / 1e6 * hz * n); if (x < 0) x = 0; printf "%.1f", x }')
  if [ "${f[requests]}" -eq 0 ]; then warn "no requests completed: $scen $row $size"; failures=$((failures + 1)); fi
  [ "$errs" -gt 0 ] && warn "$errs wrk errors: $scen $row $size run $run ($mode)"
  # Server CPU per request: the server's process tree (pinned to its core), user + system.
  local cpu_us
  cpu_us=$(awk -v t=$((s1 - s0)) -v hz="$HZ" -v n="${f[requests]}" 'BEGIN { if (n > 0) printf "%.1f", t / hz * 1e6 / n; else print 0 }')
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
    "$scen" "$row" "$size" "$run" "$mode" "${f[requests]}" "${f[duration_us]}" "${f[bytes]}" \
    "${f[p50_us]}" "${f[p99_us]}" "$errs" "${f[n200]}" "${f[n304]}" "${f[nother]}" "$(cat "$rssf")" "$foreign" "$cpu_us" >"$WORK/last.tsv"
  LAST_FOREIGN=$foreign
  [ "$mode" = main ] || cat "$WORK/last.tsv" >>"$results"
  printf '  %-4s %-12s %-5s run %s %-5s %8.0f req/s  %6s µs CPU/req  p50 %6.2f ms  p99 %6.2f ms  other CPU %5s%%\n' "$scen" "$row" "$size" "$run" "$mode" \
    "$(echo "${f[requests]} ${f[duration_us]}" | awk '{print $1 / ($2 / 1e6)}')" "$cpu_us" \
    "$(echo "${f[p50_us]}" | awk '{print $1 / 1000}')" "$(echo "${f[p99_us]}" | awk '{print $1 / 1000}')" "$foreign"
}

# check LABEL EXPECTED ACTUAL: records whether a system answered as the scenario assumes.
check() {
  if [ "$2" = "$3" ]; then note check "$1: $3 (as expected)"
  else warn "$1: expected $2, got $3"; fi
}

# The origin's request counter tells whether a request reached it.
origin_delta() { # URL [curl args...]: origin requests caused by 3 requests to URL
  local before after
  before=$(origin_requests)
  for _ in 1 2 3; do curl -s -o /dev/null --max-time 5 "$@"; done
  after=$(origin_requests)
  echo $((after - before - 1))   # the status request itself counts once
}

# measure SCEN SIZE RUN "ROW|URL": one measured run; keeps it in best[ROW|RUN] (a local of
# run_scenario) when it is the first or quieter than the one kept.
measure() {
  local scen=$1 size=$2 r=$3 row=${4%%|*} url=${4#*|}
  local -a h=()
  [ -n "${hdr[$row]}" ] && h=(-H "${hdr[$row]}")
  : >"$WORK/last.tsv"; LAST_FOREIGN=0
  run_wrk "$scen" "$row" "$size" "$r" main "$duration" "$url" "${h[@]}"
  [ -s "$WORK/last.tsv" ] || return 0
  local key="$row|$r"
  if [ -z "${best[$key]:-}" ] || awk -v a="$LAST_FOREIGN" -v b="${best_foreign[$key]}" 'BEGIN { exit !(a < b) }'; then
    best[$key]=$(cat "$WORK/last.tsv"); best_foreign[$key]=$LAST_FOREIGN
  fi
}

# One scenario: SCEN, rows ("system:variant" path), sizes; per size: warm every row, then
# interleave the rows run by run so slow drift hits them alike.
run_scenario() { # SCEN "sizes..." rows...   (row spec: NAME|PATHPREFIX|HEADERMODE)
  local scen=$1; local -a szs=($2); shift 2
  local size spec row path hmode sys url r
  for size in "${szs[@]}"; do
    echo "== $scen $size"
    local -a active=()
    declare -A hdr=()
    for spec in "$@"; do
      IFS='|' read -r row path hmode <<<"$spec"
      sys=${row%%:*}
      [ -n "${URL[$sys]:-}" ] || continue
      url="${URL[$sys]}$path/$size"
      curl -s -o /dev/null --max-time 5 "$url"; curl -s -o /dev/null --max-time 5 "$url"
      # hdr: the one request header field a row sends, if any
      local tag=""
      case "$hmode" in
        own) tag=$(header_of "$url" etag) ;;                  # the ETag this system returns
        etagate) [ -n "${URL[etagate]:-}" ] && tag=$(header_of "${URL[etagate]}$path/$size" etag) ;;
      esac
      case "$hmode" in
        own|etagate) hdr[$row]=${tag:+If-None-Match: $tag}
                     [ -z "$tag" ] && warn "$scen $row $size: no ETag to revalidate with" ;;
        ae) hdr[$row]="Accept-Encoding: gzip, br" ;;
        *) hdr[$row]="" ;;
      esac
      local -a h=()
      [ -n "${hdr[$row]}" ] && h=(-H "${hdr[$row]}")
      # What the system answers, and whether the origin was asked.
      local st; st=$(status_of "${h[@]}" "$url")
      case "$scen" in
        S1) check "$scen $row $size status" 200 "$st"
            [ "$sys" != ceiling ] && check "$scen $row $size origin requests for 3 hits" 0 "$(origin_delta "$url")" ;;
        S2) check "$scen $row $size status" 304 "$st"
            [ "$sys" != ceiling ] && check "$scen $row $size origin requests for 3 revalidations" 0 "$(origin_delta "${h[@]}" "$url")" ;;
        S3) check "$scen $row $size status" 200 "$st"
            [ "$sys" != ceiling ] && check "$scen $row $size origin requests for 3 requests" 3 "$(origin_delta "$url")"
            if [ "$sys" = etagate ]; then
              local want_etag=yes; [ "$row" = etagate:off ] && want_etag=no
              local got=no; [ -n "$(header_of "$url" etag)" ] && got=yes
              check "$scen $row $size content ETag" "$want_etag" "$got"
            fi ;;
        S4) check "$scen $row $size status" 200 "$st"
            [ "$sys" != ceiling ] && check "$scen $row $size origin requests for 3 requests" 3 "$(origin_delta "$url")" ;;
        S5) if [ "$sys" = etagate ]; then check "$scen $row $size status" 304 "$st"
            else note check "$scen $row $size status: $st (no validator from the origin: 200 expected)"; fi
            check "$scen $row $size origin requests for 3 revalidations" 0 "$(origin_delta "${h[@]}" "$url")" ;;
        S6) check "$scen $row $size status" 200 "$st"
            check "$scen $row $size origin requests for 3 hits" 0 "$(origin_delta "${h[@]}" "$url")"
            local want_coding=gzip; [ "$sys" = etagate ] && want_coding=br
            check "$scen $row $size Content-Encoding" "$want_coding" "$(header_of "$url" content-encoding "${h[@]}")" ;;
      esac
      [ "$smoke" = 0 ] && run_wrk "$scen" "$row" "$size" 0 warm "$warm_duration" "$url" "${h[@]}"
      active+=("$row|$url")
    done
    # Measured runs, interleaved: run 1 of every row, then run 2, ...
    local -A best=() best_foreign=()
    local key pass
    for r in $(seq 1 "$runs"); do
      for spec in "${active[@]}"; do
        measure "$scen" "$size" "$r" "$spec"
      done
    done
    # A run during which other processes took more than $noisy_pct% of the CPU is measured
    # again after the others (a burst of foreign work has then often passed), at most
    # $max_retries more times and within a budget for the whole benchmark; the quietest
    # attempt counts.
    for pass in $(seq 1 "$max_retries"); do
      for r in $(seq 1 "$runs"); do
        for spec in "${active[@]}"; do
          key="${spec%%|*}|$r"
          [ -n "${best_foreign[$key]:-}" ] || continue
          awk -v a="${best_foreign[$key]}" -v t="$noisy_pct" 'BEGIN { exit !(a > t) }' || continue
          [ "$retry_budget" -gt 0 ] || continue
          retry_budget=$((retry_budget - 1)); retried=$((retried + 1))
          echo "    (run $r of ${spec%%|*}: other processes used ${best_foreign[$key]}% of the CPU; measuring again)"
          measure "$scen" "$size" "$r" "$spec"
        done
      done
    done
    for key in "${!best[@]}"; do printf '%s\n' "${best[$key]}" >>"$results"; done
    if [ "$scen" = S5 ]; then
      for spec in "${active[@]}"; do
        row=${spec%%|*}; url=${spec#*|}
        local -a h=()
        [ -n "${hdr[$row]}" ] && h=(-H "${hdr[$row]}")
        run_wrk "$scen" "$row" "$size" 1 count "$count_duration" "$url" "${h[@]}"
      done
    fi
    unset hdr
  done
}

started=$(date +%s)
# S1: cache hit, 200.            S2: 304 from the cache, each system's own ETag.
# S3: uncacheable (private) pass-through.  S4: no-store pass-through.
# S5: no validators at the origin, clients send etagate's ETag.
# S6: cache hit of text for a client that accepts gzip and br (ATS has no compression here).
want_scenario S1 && run_scenario S1 "${sizes[*]}" "etagate|/v|none" "nginx|/v|none" "varnish|/v|none" "ats|/v|none" "ceiling|/v|none"
want_scenario S2 && run_scenario S2 "${sizes[*]}" "etagate|/v|own" "nginx|/v|own" "varnish|/v|own" "ats|/v|own" "ceiling|/v|own"
want_scenario S3 && run_scenario S3 "${pass_sizes[*]}" "etagate|/pass|none" "etagate:off|/off/pass|none" "nginx|/pass|none" "varnish|/pass|none" "ats|/pass|none" "ceiling|/pass|none"
want_scenario S4 && run_scenario S4 "${pass_sizes[*]}" "etagate|/ns|none" "nginx|/ns|none" "varnish|/ns|none" "ats|/ns|none" "ceiling|/ns|none"
want_scenario S5 && run_scenario S5 "${sizes[*]}" "etagate|/nv|etagate" "nginx|/nv|etagate" "varnish|/nv|etagate" "ats|/nv|etagate"
want_scenario S6 && run_scenario S6 "${text_sizes[*]}" "etagate|/txt|ae" "nginx|/txt|ae" "varnish|/txt|ae"
elapsed=$(( $(date +%s) - started ))

# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------
first_line() { "$@" 2>&1 | head -1 || true; }
note machine "$(lscpu 2>/dev/null | awk -F: '/^Model name/{gsub(/^[ \t]+/,"",$2); print $2; exit}'), $(getconf _NPROCESSORS_ONLN) cores"
note date "$(date -u '+%Y-%m-%d %H:%M UTC')"
note version "$("$ETAGATE_BIN" --version 2>&1 | head -1) (commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null || echo ', with local changes'))"
note version "$(first_line nginx -v)"
note version "$(first_line varnishd -V)"
note version "$(traffic_server -V 2>&1 | grep -m1 'Apache Traffic Server' || first_line traffic_server -V)"
note version "$(first_line wrk -v)"
note wrk "taskset -c 1 wrk -t1 -c64 -d$duration --latency --timeout 5s -s scripts/bench/stats.lua [-H 'If-None-Match: <ETag>' | -H 'Accept-Encoding: gzip, br'] URL"
note runs "$runs"
note duration "$duration"
note elapsed "$elapsed"
note retried "$retried"
note mode "$([ "$smoke" = 1 ] && echo smoke || echo full)"
note command "$command_line"

report_args=(--results "$results" --meta "$meta")
if [ -n "$out" ]; then report_args+=(--out "$out")
elif [ "$smoke" = 0 ]; then report_args+=(--out docs/benchmarks.md)
else report_args+=(--out "${TMPDIR:-/tmp}/etagate-bench-smoke.md")
fi
python3 scripts/bench/report.py "${report_args[@]}"
echo "bench: measured for ${elapsed}s"
if [ "$failures" -gt 0 ]; then
  echo "bench: $failures run(s) failed" >&2
  exit 1
fi
