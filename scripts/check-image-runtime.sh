#!/usr/bin/env bash
# Check what deploy/container/Dockerfile's image relies on, without building it (no container
# engine here). First the Dockerfile itself: every COPY from the context names a file that
# exists and that Dockerfile.dockerignore lets in, and the builder's Rust is at least
# Cargo.toml's rust-version. Then the built binary runs the way the image's ENTRYPOINT and CMD
# run it (both read from the Dockerfile, with its USER), in a stand-in for the pod of
# deploy/kubernetes/ (scripts/lib/run-in-image.sh: its own mount and PID namespaces, PID 1, the
# image's uid, no capabilities, a read-only root, the volumes of the manifests and nothing else
# writable), with the environment the pod gives container etagate (the image's ENV and the
# env of deploy/kubernetes/base/deployment.yaml, the downward API's pod IP being 127.0.0.1 and
# its name etagate-0), in front of the demo origin on loopback ports. The configuration is a
# ConfigMap volume as the kubelet lays it out (etagate.yaml -> ..data/etagate.yaml ->
# ..TIMESTAMP/etagate.yaml), read-only, and says node: ${POD_NAME}, advertise: ${POD_IP}:PORT
# like the manifests' ConfigMap. In order:
#   - the stand-in's root is read-only to the image's user;
#   - etagate starts, answers /readyz 200, is the one member its cluster.dns finds (it
#     advertises ${POD_IP}), serves a 200 with an ETag, then the same URL as a cache hit from
#     node etagate-0 (${POD_NAME}), and logs the requests as JSON on standard output;
#   - a ConfigMap update (the kubelet's ..data swap) reaches etagate through
#     server.watch_config alone: exactly one reload, applied in place;
#   - a ConfigMap update naming a variable the pod does not set is rejected and counted, and
#     the previous configuration keeps serving; the next good update applies;
#   - a renewed certificate in the TLS Secret's volume (cert-manager's renewal, the same swap)
#     reaches new TLS handshakes through server.watch_config;
#   - the disk tier writes its files in the cache volume;
#   - SIGTERM to PID 1: /readyz answers 503 draining while requests are still served, and etagate
#     exits 0 within 2 x server.grace_period + server.shutdown_timeout (the drain, then the
#     grace period of the closed listeners, then the runtimes: docs/operations.md);
#   - a second etagate on the same cache volume (a StatefulSet pod's restart) answers the URL
#     from the disk tier;
#   - nothing was written but the expected files in the writable volumes, and no process
#     tripped over the read-only root.
# Needs root, util-linux (unshare, setpriv), curl, openssl, python3 with PyYAML, and a built
# etagate ($ETAGATE_BIN, else the newer of target/release and target/debug) with
# etagate-demo-origin next to it; skipped, with a message, without them.
# Usage: scripts/check-image-runtime.sh
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
# shellcheck source=scripts/lib/common.sh
. scripts/lib/common.sh
# shellcheck source=scripts/lib/container.sh
. scripts/lib/container.sh

CHECK_PREFIX="image runtime: "
# shellcheck source=scripts/lib/checks.sh
. scripts/lib/checks.sh
WORK_DF=$(mktemp)
finish() {
  if [ $failures -gt 0 ]; then
    echo "check-image-runtime: $failures check(s) failed"
    exit 1
  fi
  echo "check-image-runtime: all checks passed"
  exit 0
}

# --- the Dockerfile itself ------------------------------------------------------------------
# Every COPY from the build context names a file that exists and that Dockerfile.dockerignore
# lets into the context, and the builder's Rust is at least Cargo.toml's rust-version.
if python3 - >"$WORK_DF" 2>&1 <<'PY'
import os, re, sys
lines = open("deploy/container/Dockerfile").read().splitlines()
ignore = [l.strip() for l in open("deploy/container/Dockerfile.dockerignore")
          if l.strip() and not l.startswith("#")]
allowed = {p[1:].rstrip("/") for p in ignore if p.startswith("!")}
problems = []
if ignore[:1] != ["*"]:
    problems.append("Dockerfile.dockerignore no longer starts with '*' (the checks below assume it)")
for line in lines:
    m = re.match(r"COPY\s+(?!--from)(?:--\S+\s+)*(.+)\s+\S+$", line)
    if not m:
        continue
    for src in m.group(1).split():
        src = src.rstrip("/")
        if not os.path.exists(src):
            problems.append(f"COPY {src}: no such file")
        elif not any(src == a or src.startswith(a + "/") for a in allowed):
            problems.append(f"COPY {src}: left out of the context by Dockerfile.dockerignore")
want = re.search(r'^rust-version\s*=\s*"([\d.]+)"', open("Cargo.toml").read(), re.M).group(1)
have = re.search(r"^ARG RUST_VERSION=([\d.]+)", "\n".join(lines), re.M).group(1)
if tuple(map(int, have.split("."))) < tuple(map(int, want.split("."))):
    problems.append(f"ARG RUST_VERSION={have} is older than Cargo.toml's rust-version {want}")
print("\n".join(problems))
sys.exit(1 if problems else 0)
PY
then
  pass "deploy/container/Dockerfile: every COPY source is in the build context; Rust $(sed -n 's/^ARG RUST_VERSION=//p' deploy/container/Dockerfile)"
else
  fail "deploy/container/Dockerfile:"
  sed 's/^/      /' "$WORK_DF"
fi
rm -f "$WORK_DF"

bin=$(find_etagate_bin)
if [ -z "$bin" ]; then
  skip "no built etagate binary (cargo build, or set ETAGATE_BIN)"
  finish
fi
origin_bin=$(dirname "$bin")/etagate-demo-origin
if [ ! -x "$origin_bin" ]; then
  skip "no $origin_bin next to $bin (cargo build --bins)"
  finish
fi
if [ "$(id -u)" != 0 ]; then
  skip "needs root (mount and PID namespaces, chroot, setpriv)"
  finish
fi
for tool in unshare setpriv curl openssl python3; do
  command -v "$tool" >/dev/null 2>&1 || { skip "$tool is not installed"; finish; }
done
python3 -c 'import yaml' 2>/dev/null || { skip "python3 has no PyYAML (scripts/install-deps.sh test)"; finish; }

WORK=$(mktemp -d)
PIDS=()
cleanup() { [ ${#PIDS[@]} -gt 0 ] && stop_groups "${PIDS[@]}"; rm -rf "$WORK"; }
trap cleanup EXIT

# The image: what its entrypoint runs, as whom; and the environment the pod gives it.
mapfile -t entrypoint < <(dockerfile_instruction ENTRYPOINT)
mapfile -t cmd < <(dockerfile_instruction CMD)
uid=$(dockerfile_user)
if [ ${#entrypoint[@]} -eq 0 ] || [ ${#cmd[@]} -eq 0 ] || [ -z "$uid" ]; then
  fail "cannot read ENTRYPOINT, CMD and USER from deploy/container/Dockerfile"
  finish
fi
config_path=${cmd[-1]}
manifest=deploy/kubernetes/base/deployment.yaml
if ! mapfile -t pod_env < <(python3 scripts/lib/kubernetes_check.py pod-env "$manifest" \
       status.podIP=127.0.0.1 metadata.name=etagate-0) || [ ${#pod_env[@]} -eq 0 ]; then
  fail "cannot read container etagate's env from $manifest"
  finish
fi
env_args=()
for e in "${pod_env[@]}"; do env_args+=(--env "$e"); done
echo "      (${entrypoint[*]} ${cmd[*]} as uid $uid, env ${pod_env[*]}, $bin)"

read -r port tls_port admin peer origin_port < <(free_ports 5)
grace=2 shutdown=2

# The pod's volumes, as directories of this machine (kubelet-style for ConfigMap and Secrets).
vol=$WORK/volumes
mkdir -p "$vol"/{config,admin,peer,tls,run,cache}
chmod 0777 "$vol/run"                                # emptyDir
chown "0:$uid" "$vol/cache"; chmod 2770 "$vol/cache"  # a PersistentVolumeClaim under fsGroup
random_hex() { head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
random_hex >"$WORK/token"
random_hex >"$WORK/secret"
# secret_volume DIR FILE...: kubelet_update, then the Secret's mode and group (0440, fsGroup).
secret_volume() {
  kubelet_update "$@"
  chgrp -R "$uid" "$1"
  chmod 0440 "$1"/..?*/*
}
secret_volume "$vol/admin" "$WORK/token"
secret_volume "$vol/peer" "$WORK/secret"
# Two certificates for the kubernetes.io/tls Secret: the first, and its renewal.
for n in 1 2; do
  mkdir -p "$WORK/tls$n"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=etagate-$n" \
    -days 2 -keyout "$WORK/tls$n/tls.key" -out "$WORK/tls$n/tls.crt" >/dev/null 2>&1
done
secret_volume "$vol/tls" "$WORK/tls1/tls.crt" "$WORK/tls1/tls.key"
fingerprint() { openssl x509 -noout -fingerprint -sha256 2>/dev/null | sed 's/.*=//'; }
served_fingerprint() {
  openssl s_client -connect "127.0.0.1:$tls_port" -servername etagate.example </dev/null 2>/dev/null | fingerprint
}

# The ConfigMap's etagate.yaml: the manifests' paths, layout and variables, loopback ports.
write_config() { # write_config FILE [ROUTE_EXTRA_LINE]
  cat >"$1" <<YAML
listeners:
  - address: 127.0.0.1:$port
  - address: 127.0.0.1:$tls_port
    tls: { cert: /etc/etagate/tls/tls.crt, key: /etc/etagate/tls/tls.key }
admin:
  address: 127.0.0.1:$admin
  token_file: /etc/etagate/admin/token
upstreams:
  app:
    servers: [127.0.0.1:$origin_port]
routes:
  - name: default
    upstream: app
${2:-}
cache:
  budget: 64MiB
  disk:
    path: /var/cache/etagate
    budget: 64MiB
etag:
  buffer_budget: 16MiB
access_log:
  path: "-"
  format: json
server:
  threads: 1
  pid_file: /run/etagate/etagate.pid
  upgrade_socket: /run/etagate/upgrade.sock
  grace_period: ${grace}s
  shutdown_timeout: ${shutdown}s
  watch_config: true
cluster:
  node: \${POD_NAME}
  listen: 127.0.0.1:$peer
  advertise: \${POD_IP}:$peer
  secret_file: /etc/etagate/peer/secret
  dns: { name: localhost, port: $peer, interval: 1s }
YAML
}
mkdir -p "$WORK/cm"
write_config "$WORK/cm/etagate.yaml"
kubelet_update "$vol/config" "$WORK/cm/etagate.yaml"

# image NAME: sets $image to the run-in-image.sh command for one container of the image (its
# files, its user, a root of its own), to which the container's options and command are added.
image() {
  mkdir -p "$WORK/root-$1"
  image=(scripts/lib/run-in-image.sh --root "$WORK/root-$1" --uid "$uid" --bin "etagate=$bin")
}
# forget PID: drop PID from PIDS once its process has been stopped and waited for.
forget() {
  local p keep=()
  for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  PIDS=("${keep[@]}")
}
etagate_volumes=(--volume "$vol/config:$(dirname "$config_path"):ro" --volume "$vol/admin:/etc/etagate/admin:ro"
  --volume "$vol/peer:/etc/etagate/peer:ro" --volume "$vol/tls:/etc/etagate/tls:ro" --volume "$vol/run:/run/etagate"
  --volume "$vol/cache:/var/cache/etagate")

# pid1 PID: the host PID of the process that is PID 1 in the namespaces of run-in-image.sh PID.
pid1() {
  local c
  for _ in $(seq 1 50); do
    c=$(awk '{print $1}' "/proc/$1/task/$1/children" 2>/dev/null)
    [ -n "$c" ] && { echo "$c"; return 0; }
    sleep 0.1
  done
  return 1
}
metric() { etagate_metric "$admin" "$1"; }
wait_metric() { # wait_metric SAMPLE MIN [TRIES]: until SAMPLE >= MIN, 0.2 s apart
  local v
  for _ in $(seq 1 "${3:-50}"); do
    v=$(metric "$1")
    [ -n "$v" ] && python3 -c "import sys; sys.exit(0 if float('$v') >= $2 else 1)" && return 0
    sleep 0.2
  done
  return 1
}

# --- the stand-in itself --------------------------------------------------------------------
image probe
if "${image[@]}" -- /bin/sh -c 'touch /tmp/probe || touch /probe || touch /usr/local/bin/probe' >/dev/null 2>&1; then
  fail "the stand-in's root is writable: the checks below would prove nothing"
  finish
fi
pass "the stand-in's root is read-only to uid $uid"

start_server origin "$origin_bin" --listen "127.0.0.1:$origin_port"
wait_http "http://127.0.0.1:$origin_port/cacheable" || { fail "the demo origin did not start"; finish; }

# --- etagate -----------------------------------------------------------------------------------
image etagate
start_server etagate "${image[@]}" "${etagate_volumes[@]}" "${env_args[@]}" -- "${entrypoint[@]}" "${cmd[@]}"
etagate_ns=${PIDS[-1]}
if wait_http "http://127.0.0.1:$admin/readyz" 150 && [ "$(curl -s "http://127.0.0.1:$admin/readyz")" = ready ]; then
  pass "etagate started from the image's ENTRYPOINT and CMD on the ConfigMap's volume and answers /readyz 200 ready"
else
  fail "etagate did not become ready"
  sed 's/^/      /' "$WORK/etagate.out"
  finish
fi
# cluster.dns (localhost) finds 127.0.0.1:PEER: etagate itself if advertise became
# 127.0.0.1:PEER from ${POD_IP}, a second member otherwise.
if wait_metric etagate_cluster_members 1 25 && sleep 1.2 && [ "$(metric etagate_cluster_members)" = 1 ]; then
  pass "cluster.advertise \${POD_IP}:$peer is 127.0.0.1:$peer: the one member cluster.dns finds is etagate itself"
else
  fail "cluster.dns finds $(metric etagate_cluster_members) members, want 1 (itself: advertise \${POD_IP}:$peer)"
fi

url=http://127.0.0.1:$port/cacheable
first=$(curl -s -D - -o /dev/null "$url")
second=$(curl -s -D - -o /dev/null "$url")
etag=$(printf '%s' "$first" | tr -d '\r' | sed -n 's/^[Ee][Tt][Aa][Gg]: //p')
if printf '%s' "$first" | head -n 1 | grep -q ' 200' && [ -n "$etag" ] &&
   printf '%s' "$second" | grep -qi '^cache-status: etagate-0; hit'; then
  pass "a 200 with ETag $etag through the gateway, then a cache hit from node etagate-0 (\${POD_NAME})"
else
  fail "no 200 with an ETag followed by a hit"
  printf '%s\n---\n%s\n' "$first" "$second" | sed 's/^/      /'
fi
# The access log has its own writer thread: give it a moment.
for _ in $(seq 1 50); do
  grep -q '"uri":"/cacheable"' "$WORK/etagate.out" && break
  sleep 0.1
done
if grep -q '"uri":"/cacheable"' "$WORK/etagate.out"; then
  pass "access log lines as JSON on standard output"
else
  fail "no JSON access log line on standard output"
fi

# --- ConfigMap updates, in place -------------------------------------------------------------
# kubelet_update swaps ..data as the kubelet does; watch_config alone must notice (no SIGHUP).
generation=$(metric etagate_config_generation)
write_config "$WORK/cm/etagate.yaml" "    debug_headers: true"
kubelet_update "$vol/config" "$WORK/cm/etagate.yaml"
if wait_metric etagate_config_generation $((generation + 1)) 50 && sleep 0.8 &&
   [ "$(metric etagate_config_generation)" = $((generation + 1)) ] &&
   curl -s -D - -o /dev/null "$url" | grep -qi '^x-cache-key:'; then
  pass "a ConfigMap update (..data swap) reached etagate through server.watch_config: exactly one reload (generation $(metric etagate_config_generation)), applied in place"
else
  fail "the ConfigMap update was not applied once (generation $generation, now $(metric etagate_config_generation))"
  tail -n 20 "$WORK/etagate.out" | sed 's/^/      /'
fi
# A variable the pod does not set: rejected at its place, the running configuration stays.
generation=$(metric etagate_config_generation)
write_config "$WORK/cm/etagate.yaml" "    debug_headers: true
    cache: { stale_if_error: \${ETAGATE_NOT_IN_THE_POD} }"
kubelet_update "$vol/config" "$WORK/cm/etagate.yaml"
if wait_metric 'etagate_config_reloads_total{result="failure"}' 1 50 &&
   grep -q 'environment variable ETAGATE_NOT_IN_THE_POD is not set' "$WORK/etagate.out" &&
   [ "$(metric etagate_config_generation)" = "$generation" ] &&
   curl -s -D - -o /dev/null "$url" | grep -qi '^x-cache-key:'; then
  pass "a ConfigMap update naming a variable the pod does not set is rejected and counted; the running configuration stays"
else
  fail "an update with an unset variable was not rejected cleanly (failures $(metric 'etagate_config_reloads_total{result="failure"}'), generation $(metric etagate_config_generation))"
  tail -n 20 "$WORK/etagate.out" | sed 's/^/      /'
fi
write_config "$WORK/cm/etagate.yaml" "    debug_headers: true"
kubelet_update "$vol/config" "$WORK/cm/etagate.yaml"
wait_metric etagate_config_generation $((generation + 1)) 50 ||
  fail "the good ConfigMap update after the rejected one was not applied"

# --- a renewed certificate -------------------------------------------------------------------
before=$(served_fingerprint)
renewed=$(fingerprint <"$WORK/tls2/tls.crt")
generation=$(metric etagate_config_generation)
secret_volume "$vol/tls" "$WORK/tls2/tls.crt" "$WORK/tls2/tls.key"
after=""
if [ "$before" = "$(fingerprint <"$WORK/tls1/tls.crt")" ] && wait_metric etagate_config_generation $((generation + 1)) 50; then
  after=$(served_fingerprint)
fi
if [ -n "$after" ] && [ "$after" = "$renewed" ]; then
  pass "a renewed certificate in the TLS Secret's volume reached new handshakes (generation $(metric etagate_config_generation))"
else
  fail "the renewed certificate was not served (before ${before:-none}, after ${after:-none}, renewed $renewed)"
fi

failed_reloads=$(metric 'etagate_config_reloads_total{result="failure"}')
[ "${failed_reloads:-0}" = 1 ] || fail "$failed_reloads reload(s) failed, want the one rejected above"

# --- the disk tier --------------------------------------------------------------------------
if wait_metric etagate_cache_disk_objects 1 50 && [ -f "$vol/cache/LOCK" ] && [ -d "$vol/cache/v1" ]; then
  pass "the disk tier wrote its files in the cache volume"
else
  fail "no disk tier files in the cache volume (objects: $(metric etagate_cache_disk_objects))"
fi

# --- SIGTERM --------------------------------------------------------------------------------
stop_and_time() { # stop_and_time NS_PID: SIGTERM to its PID 1; sets stop_rc and stop_ms
  local pid start
  pid=$(pid1 "$1") || { stop_rc=255; stop_ms=0; return; }
  start=$(date +%s%N)
  kill -TERM "$pid"
  for _ in $(seq 1 10); do
    [ "$(curl -s --max-time 1 "http://127.0.0.1:$admin/readyz")" = draining ] && break
    sleep 0.1
  done
  drain_readyz=$(curl -s --max-time 1 -o /dev/null -w '%{http_code} ' "http://127.0.0.1:$admin/readyz")$(curl -s --max-time 1 "http://127.0.0.1:$admin/readyz")
  drain_public=$(curl -s --max-time 1 -o /dev/null -w '%{http_code}' "$url")
  wait "$1"
  stop_rc=$?
  stop_ms=$((($(date +%s%N) - start) / 1000000))
}
stop_and_time "$etagate_ns"
limit=$(((2 * grace + shutdown + 1) * 1000))
if [ "$drain_readyz" = "503 draining" ] && [ "$drain_public" = 200 ]; then
  pass "SIGTERM: /readyz answers 503 draining while requests are still served (200)"
else
  fail "SIGTERM: /readyz '$drain_readyz', a request got '$drain_public' (want '503 draining' and 200)"
fi
if [ "$stop_rc" = 0 ] && [ "$stop_ms" -le "$limit" ]; then
  pass "SIGTERM: exit status 0 after ${stop_ms} ms (at most 2 x grace_period ${grace}s + shutdown_timeout ${shutdown}s + 1s)"
else
  fail "SIGTERM: exit status $stop_rc after ${stop_ms} ms (want 0 within $limit ms)"
  tail -n 20 "$WORK/etagate.out" | sed 's/^/      /'
fi
forget "$etagate_ns"

# --- a restart on the same volume -----------------------------------------------------------
mv "$WORK/etagate.out" "$WORK/etagate-1.out"
image etagate2
start_server etagate "${image[@]}" "${etagate_volumes[@]}" "${env_args[@]}" -- "${entrypoint[@]}" "${cmd[@]}"
etagate_ns=${PIDS[-1]}
status=""
if wait_http "http://127.0.0.1:$admin/readyz" 150 && wait_metric etagate_cache_disk_objects 1 50; then
  status=$(curl -s -D - -o /dev/null "$url" | tr -d '\r' | grep -i '^cache-status:')
fi
if printf '%s' "$status" | grep -q 'hit.*detail=disk'; then
  pass "restarted on the same cache volume: the URL is a hit from disk ($status)"
else
  fail "restarted on the same cache volume: no disk hit ('$status')"
  tail -n 20 "$WORK/etagate.out" | sed 's/^/      /'
fi
stop_and_time "$etagate_ns"
[ "$stop_rc" = 0 ] || fail "the restarted etagate exited with $stop_rc"
forget "$etagate_ns"

# --- what was written -----------------------------------------------------------------------
unexpected=$(cd "$vol" && find run cache -mindepth 1 \
  ! -path cache/LOCK ! -path cache/v1 ! -path 'cache/v1/??' \
  ! -regex 'cache/v1/[0-9a-f][0-9a-f]/[0-9a-f]+-[0-9a-f]+\.e' \
  ! -path run/etagate.pid ! -path run/upgrade.sock)
if [ -z "$unexpected" ]; then
  pass "written: only the disk tier's files (the ConfigMap and Secret volumes are read-only)"
else
  fail "unexpected files in the writable volumes:"
  echo "$unexpected" | sed 's/^/      /'
fi
if grep -il 'read-only file system' "$WORK"/*.out >/dev/null; then
  fail "a process tripped over the read-only root:"
  grep -ih 'read-only file system' "$WORK"/*.out | sed 's/^/      /'
else
  pass "no process tried to write outside its volumes"
fi

finish
