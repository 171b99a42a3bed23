# Shell helpers shared by the scripts that start servers on loopback. Source it; it defines
# functions only.

# free_ports N: N distinct free ports on 127.0.0.1, space-separated.
# Taken below the kernel's ephemeral range (32768+ on Linux): a port the kernel handed out for
# a probe can be handed out again to any outgoing connection before our server binds it.
free_ports() {
  python3 - "$1" <<'PY'
import random, socket, sys
want, found = int(sys.argv[1]), []
for port in random.sample(range(20000, 32000), 12000):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        continue
    finally:
        s.close()
    found.append(port)
    if len(found) == want:
        break
print(" ".join(map(str, found)))
PY
}

# stop_groups PID...: TERM each process group, up to 5 s to exit, then KILL what is left.
stop_groups() {
  local pid alive
  for pid in "$@"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
  for _ in $(seq 1 50); do
    alive=0
    for pid in "$@"; do kill -0 -- "-$pid" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
  for pid in "$@"; do kill -KILL -- "-$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}

# start_server NAME CMD...: CMD in its own session and process group (stop_groups stops it and
# its children), output in $WORK/NAME.out; its pid appended to the caller's PIDS array.
start_server() {
  local name=$1; shift
  setsid "$@" >"$WORK/$name.out" 2>&1 </dev/null &
  PIDS+=("$!")
}

# wait_http URL [TRIES]: until URL answers 200, 0.1 s apart (default 100 tries); 1 if it never does.
wait_http() {
  local i code
  for i in $(seq 1 "${2:-100}"); do
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$1" 2>/dev/null || true)
    [ "$code" = 200 ] && return 0
    sleep 0.1
  done
  return 1
}

# tree_ticks PID: CPU time (utime + stime, in clock ticks) of PID and its descendants.
tree_ticks() { # utime + stime of PID and its descendants
  local total=0 p c
  local -a queue=("$1")
  while [ ${#queue[@]} -gt 0 ]; do
    p=${queue[0]}; queue=("${queue[@]:1}")
    [ -r "/proc/$p/stat" ] || continue
    total=$((total + $(sed 's/^.*) //' "/proc/$p/stat" | awk '{print $12 + $13}')))
    for c in $(cat /proc/"$p"/task/*/children 2>/dev/null); do queue+=("$c"); done
  done
  echo "$total"
}

# usage: the calling script's header comment (line 2 up to `set -euo`), without the `# `.
usage() {
  sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
}

# bench_setup NAME BUILD TOOL...: what a benchmark script needs before it starts: the bench
# packages installed (when root or sudo can), every TOOL on PATH (else exit 1 naming it), the
# release binary built unless BUILD is 0; sets ETAGATE_BIN (kept when the caller set it).
bench_setup() {
  local name=$1 build=$2 tool
  shift 2
  if [ "$(id -u)" -eq 0 ] || command -v sudo >/dev/null 2>&1; then
    scripts/install-deps.sh bench
  fi
  for tool in "$@"; do
    command -v "$tool" >/dev/null 2>&1 || { echo "$name: $tool is missing (scripts/install-deps.sh bench)" >&2; exit 1; }
  done
  if [ "$build" = 1 ]; then cargo build --release --bin etagate; fi
  ETAGATE_BIN=${ETAGATE_BIN:-$PWD/target/release/etagate}
}

# nginx_conf PREFIX HTTP_BODY [MASTER]: $PREFIX/nginx.conf for one foreground nginx with one
# worker (MASTER "off" for a single process, e.g. under valgrind), access log off, keep-alive
# for the whole run, its temporary files under $PREFIX/tmp, and HTTP_BODY inside `http {}`.
nginx_conf() {
  local p=$1 body=$2 master=${3:-on}
  mkdir -p "$p/tmp"
  cat >"$p/nginx.conf" <<EOF
daemon off;
master_process $master;
worker_processes 1;
pid $p/nginx.pid;
error_log $p/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on; tcp_nopush on; tcp_nodelay on;
  keepalive_requests 1000000; keepalive_timeout 120s;
  default_type application/octet-stream;
  client_body_temp_path $p/tmp; proxy_temp_path $p/tmp; fastcgi_temp_path $p/tmp;
  uwsgi_temp_path $p/tmp; scgi_temp_path $p/tmp;
  $body
}
EOF
}

# etagate_metric ADMIN_PORT SAMPLE: the value of one sample (`name` or `name{labels}`) of
# etagate's metrics, empty when absent. awk reads to the end: leaving early would make curl
# fail with a write error under pipefail.
etagate_metric() {
  curl -s --max-time 2 "http://127.0.0.1:$1/metrics" |
    awk -v m="$2" '$1 == m && !found { v = $2; found = 1 } END { print v }'
}
