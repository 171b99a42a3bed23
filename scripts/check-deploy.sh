#!/usr/bin/env bash
# Check the deployment files in deploy/ and exit non-zero if any check fails:
#   - Prometheus: promtool check rules / check config / test rules (unit tests of the alerts);
#   - Grafana: the dashboard is valid JSON, and every PromQL expression in it (and in the alert
#     rules) parses and names only metrics listed in docs/metrics.md;
#   - systemd: systemd-analyze verify on both units (skipped, with a message, where
#     systemd-analyze is missing or cannot run);
#   - shell: bash -n (and shellcheck when installed) on deploy/systemd/etagate-upgrade.sh;
#   - the example config deploy/etagate.yaml passes `etagate -t` (when a built etagate binary is
#     found: $ETAGATE_BIN, else the newer of target/release and target/debug; skipped otherwise);
#   - logrotate --debug on deploy/logrotate/etagate when logrotate is installed;
#   - Kubernetes: scripts/check-kubernetes.sh (deploy/kubernetes/ rendered with kubectl kustomize,
#     validated offline with kubernetes-validate, the PrometheusRule against alerts.yml with
#     promtool, the PodMonitor, the objects against each other and the image, and the
#     ConfigMap's configuration, with the variables the container's env sets, through
#     `etagate -t` in a stand-in for the pod);
#   - the container image: bash -n on the scripts that check it, then scripts/check-image-runtime.sh
#     (the binary run as deploy/container/Dockerfile's entrypoint runs it, as its user, on a
#     read-only root, in front of the demo origin; skipped without root or a built binary).
# Needs promtool (Debian: apt-get install prometheus, or scripts/install-deps.sh test) and
# python3; kubectl and kubernetes-validate for the Kubernetes checks (install-deps.sh test).
# With --live (and a built binary), also runs deploy/systemd/etagate-upgrade.sh for real on
# loopback ports: the forking unit's start and reload helpers, then an in-place upgrade.
# Usage: scripts/check-deploy.sh [--live]
set -uo pipefail
live=0
[ "${1:-}" = --live ] && live=1
cd "$(dirname "$0")/.." || exit 1

# shellcheck source=scripts/lib/checks.sh
. scripts/lib/checks.sh

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# --- Prometheus -----------------------------------------------------------------------------
if command -v promtool >/dev/null 2>&1; then
  check "promtool check rules deploy/prometheus/alerts.yml" promtool check rules deploy/prometheus/alerts.yml
  check "promtool check config deploy/prometheus/prometheus.yml" promtool check config deploy/prometheus/prometheus.yml
  check "promtool test rules deploy/prometheus/alerts_test.yml" promtool test rules deploy/prometheus/alerts_test.yml
else
  fail "promtool not found: install Debian's prometheus package (scripts/install-deps.sh test)"
fi

# --- Grafana dashboard and metric names -----------------------------------------------------
dashboard=deploy/grafana/etagate-dashboard.json
check "$dashboard is valid JSON" python3 -m json.tool "$dashboard"

# Every expression of the dashboard (variables substituted) becomes a recording rule, so that
# promtool parses it; every metric name in the dashboard and the alerts must be in
# docs/metrics.md (histogram series names are reduced to their family).
if python3 - "$dashboard" deploy/prometheus/alerts.yml docs/metrics.md "$tmp/dashboard-rules.yml" >"$tmp/names" 2>&1 <<'EOF'
import json, re, sys
dash_path, alerts_path, doc_path, rules_out = sys.argv[1:5]
dash = json.load(open(dash_path))
exprs = []
def walk(panels):
    for p in panels:
        for t in p.get("targets", []):
            if t.get("expr"):
                exprs.append((p.get("title", "?"), t["expr"]))
        walk(p.get("panels", []))
walk(dash.get("panels", []))
variables = [v["query"]["query"] if isinstance(v.get("query"), dict) else v.get("query", "")
             for v in dash.get("templating", {}).get("list", []) if v.get("type") == "query"]
def substitute(e):
    for k, v in {"$__rate_interval": "1m", "$__interval": "1m", "$job": "etagate",
                 "$instance": ".*", "$route": ".*", "$upstream": ".*"}.items():
        e = e.replace(k, v)
    return e
with open(rules_out, "w") as f:
    f.write("groups:\n  - name: dashboard\n    rules:\n")
    for i, (title, e) in enumerate(exprs):
        f.write(f"      - record: dashboard:panel{i}\n        expr: {json.dumps(substitute(e))}\n")
used = set()
texts = [e for _, e in exprs] + variables + [open(alerts_path).read()]
for text in texts:
    used.update(re.findall(r"\betagate_[a-z0-9_]+", text))
documented = set()
for line in open(doc_path):
    if line.lstrip().startswith("|"):
        documented.update(re.findall(r"`(etagate_[a-z0-9_]+)`", line))
def known(name):
    return name in documented or re.sub(r"_(bucket|sum|count)$", "", name) in documented
missing = sorted(n for n in used if not known(n))
if missing:
    print("metrics used in the dashboard or the alerts but not in docs/metrics.md: " + ", ".join(missing))
    sys.exit(1)
if not exprs:
    print("no expressions found in the dashboard")
    sys.exit(1)
print(f"{len(exprs)} dashboard expressions, {len(used)} metric names")
EOF
then
  pass "dashboard and alert metric names are documented in docs/metrics.md ($(tail -n 1 "$tmp/names"))"
  if command -v promtool >/dev/null 2>&1; then
    check "dashboard PromQL parses (promtool)" promtool check rules "$tmp/dashboard-rules.yml"
  fi
else
  fail "dashboard / metric names"
  sed 's/^/      /' "$tmp/names"
fi

# --- systemd units --------------------------------------------------------------------------
units=(deploy/systemd/etagate.service deploy/systemd/etagate-forking.service)
if ! command -v systemd-analyze >/dev/null 2>&1; then
  skip "systemd-analyze verify: systemd-analyze is not installed"
else
  # The units name /usr/local/bin/etagate and /usr/local/sbin/etagate-upgrade, which verify
  # requires to exist: check copies that point at stand-ins instead.
  mkdir -p "$tmp/units" "$tmp/bin"
  printf '#!/bin/sh\nexit 0\n' >"$tmp/bin/etagate"
  printf '#!/bin/sh\nexit 0\n' >"$tmp/bin/etagate-upgrade"
  chmod +x "$tmp/bin/etagate" "$tmp/bin/etagate-upgrade"
  printf '[Unit]\nDescription=probe\n[Service]\nType=oneshot\nExecStart=%s\n' "$tmp/bin/etagate" >"$tmp/units/probe.service"
  if ! systemd-analyze verify --man=no --generators=no "$tmp/units/probe.service" >"$tmp/out" 2>&1; then
    skip "systemd-analyze verify: cannot run here ($(head -n 1 "$tmp/out"))"
  else
    for unit in "${units[@]}"; do
      name=$(basename "$unit")
      sed -e "s#/usr/local/bin/etagate#$tmp/bin/etagate#g" \
          -e "s#/usr/local/sbin/etagate-upgrade#$tmp/bin/etagate-upgrade#g" "$unit" >"$tmp/units/$name"
      systemd-analyze verify --man=no --generators=no "$tmp/units/$name" >"$tmp/out" 2>&1
      rc=$?
      # Warnings (unknown keys, bad values) do not change the exit status: any line about the
      # unit itself counts as a failure.
      if [ $rc -ne 0 ] || grep -q "$name" "$tmp/out"; then
        fail "systemd-analyze verify $unit"
        sed -e "s#$tmp/units/##g" -e 's/^/      /' "$tmp/out"
      else
        pass "systemd-analyze verify $unit"
      fi
    done
  fi
fi

# --- upgrade script -------------------------------------------------------------------------
check "bash -n deploy/systemd/etagate-upgrade.sh" bash -n deploy/systemd/etagate-upgrade.sh
if [ -x deploy/systemd/etagate-upgrade.sh ]; then
  pass "deploy/systemd/etagate-upgrade.sh is executable"
else
  fail "deploy/systemd/etagate-upgrade.sh is not executable (chmod +x)"
fi
image_scripts=(scripts/check-kubernetes.sh scripts/check-image-runtime.sh scripts/lib/run-in-image.sh
  scripts/lib/container.sh)
check "bash -n ${image_scripts[*]}" bash -c 'for f; do bash -n "$f" || exit 1; done' _ "${image_scripts[@]}"
if command -v shellcheck >/dev/null 2>&1; then
  check "shellcheck deploy/systemd/etagate-upgrade.sh scripts/check-deploy.sh and the image's and Kubernetes checks' scripts" \
    shellcheck -S warning -x deploy/systemd/etagate-upgrade.sh scripts/check-deploy.sh \
      "${image_scripts[@]}"
else
  skip "shellcheck: not installed"
fi

# --- example configuration ------------------------------------------------------------------
bin=${ETAGATE_BIN:-}
if [ -z "$bin" ]; then
  # The most recently built of the two.
  for b in target/release/etagate target/debug/etagate; do
    if [ -x "$b" ] && { [ -z "$bin" ] || [ "$b" -nt "$bin" ]; }; then bin=$b; fi
  done
fi
if [ -n "$bin" ] && [ -x "$bin" ]; then
  # The example names /etc/etagate/admin.token, which need not exist here.
  head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$tmp/admin.token"
  sed "s#/etc/etagate/admin.token#$tmp/admin.token#" deploy/etagate.yaml >"$tmp/etagate.yaml"
  check "etagate -t deploy/etagate.yaml ($bin)" "$bin" -t -c "$tmp/etagate.yaml"
else
  skip "etagate -t deploy/etagate.yaml: no built binary (cargo build, or set ETAGATE_BIN)"
fi

# --- the upgrade helper, for real (--live) -------------------------------------------------
if [ $live -eq 1 ]; then
  if [ -z "$bin" ] || [ ! -x "$bin" ]; then
    fail "--live: no built etagate binary (cargo build, or set ETAGATE_BIN)"
  else
    live_check() {
      local ports admin listen conf pid1 pid2 helper=deploy/systemd/etagate-upgrade.sh
      ports=$(python3 -c 'import socket
s=[socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(" ".join(str(x.getsockname()[1]) for x in s))')
      listen=${ports% *}; admin=${ports#* }
      mkdir -p "$tmp/live/run"
      conf=$tmp/live/etagate.yaml
      cat >"$conf" <<YAML
listeners:
  - address: 127.0.0.1:$listen
admin:
  address: 127.0.0.1:$admin
upstreams:
  app:
    servers: [127.0.0.1:9]
routes:
  - name: default
    upstream: app
access_log:
  enabled: false
server:
  pid_file: $tmp/live/run/etagate.pid
  upgrade_socket: $tmp/live/run/upgrade.sock
  grace_period: 1s
  shutdown_timeout: 1s
YAML
      export ETAGATE_BIN=$bin ETAGATE_CONF=$conf ETAGATE_RUN_DIR=$tmp/live/run \
        ETAGATE_ADMIN_URL=http://127.0.0.1:$admin ETAGATE_UPGRADE_SOCKET=$tmp/live/run/upgrade.sock
      "$helper" systemd-start || return 1
      pid1=$(cat "$tmp/live/run/etagate.pid")
      MAINPID=$pid1 "$helper" systemd-reload || return 1
      "$helper" in-place --pid-file "$tmp/live/run/etagate.pid" || return 1
      pid2=$(cat "$tmp/live/run/etagate.pid")
      [ "$pid1" != "$pid2" ] || { echo "the PID file still names $pid1"; return 1; }
      # (an exited process can linger as a zombie when nothing reaps orphans, as in containers)
      if kill -0 "$pid1" 2>/dev/null && ! grep -q '^State:[[:space:]]*Z' "/proc/$pid1/status" 2>/dev/null; then
        echo "old process $pid1 still runs"; return 1
      fi
      [ "$(curl -s "http://127.0.0.1:$admin/readyz")" = ready ] || { echo "/readyz is not ready"; return 1; }
      kill -TERM "$pid2"
      for _ in $(seq 50); do
        grep -q '^State:[[:space:]]*[^Z]' "/proc/$pid2/status" 2>/dev/null || break
        sleep 0.2
      done
    }
    if (live_check) >"$tmp/live.out" 2>&1; then
      pass "etagate-upgrade: systemd-start, systemd-reload, in-place upgrade ($bin)"
    else
      fail "etagate-upgrade: systemd-start, systemd-reload, in-place upgrade ($bin)"
      grep -v '^\[' "$tmp/live.out" | sed 's/^/      /'
      pid=$(cat "$tmp/live/run/etagate.pid" 2>/dev/null) && kill -TERM "$pid" 2>/dev/null
    fi
  fi
fi

# --- logrotate ------------------------------------------------------------------------------
if command -v logrotate >/dev/null 2>&1; then
  # logrotate refuses a `create` line naming a user that does not exist on this machine.
  if id etagate >/dev/null 2>&1; then
    cp deploy/logrotate/etagate "$tmp/logrotate.conf"
  else
    sed 's/^\([[:space:]]*create[[:space:]][0-7]*\) etagate etagate/\1 root root/' \
      deploy/logrotate/etagate >"$tmp/logrotate.conf"
  fi
  chmod 0644 "$tmp/logrotate.conf"
  # logrotate --debug exits 0 even for unknown directives: an "error:" line is the failure.
  if logrotate --debug --state "$tmp/logrotate.state" "$tmp/logrotate.conf" >"$tmp/out" 2>&1 &&
     ! grep -q '^error:' "$tmp/out"; then
    pass "logrotate --debug deploy/logrotate/etagate"
  else
    fail "logrotate --debug deploy/logrotate/etagate"
    sed 's/^/      /' "$tmp/out"
  fi
else
  skip "logrotate --debug: logrotate is not installed"
fi

# --- Kubernetes manifests and the container image -------------------------------------------
# Both scripts print ok/FAIL/skip lines of their own; each FAIL line counts here.
for script in scripts/check-kubernetes.sh scripts/check-image-runtime.sh; do
  "$script" >"$tmp/sub" 2>&1
  rc=$?
  grep -v '^check-[a-z-]*: ' "$tmp/sub"
  failures=$((failures + $(grep -c '^FAIL' "$tmp/sub")))
  if [ $rc -ne 0 ] && ! grep -q '^FAIL' "$tmp/sub"; then
    fail "$script exited with status $rc"
  fi
done

if [ $failures -gt 0 ]; then
  echo "check-deploy: $failures check(s) failed"
  exit 1
fi
echo "check-deploy: all checks passed"
