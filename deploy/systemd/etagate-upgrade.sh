#!/usr/bin/env bash
# etagate-upgrade: zero-downtime binary upgrade of etagate (Pingora graceful upgrade), and the
# start/reload helper of deploy/systemd/etagate-forking.service.
#
# Install: install -m 0755 deploy/systemd/etagate-upgrade.sh /usr/local/sbin/etagate-upgrade
#
# Usage:
#   etagate-upgrade [upgrade] [--new-binary FILE] [--unit UNIT] [--allow-restart]
#       As root, on a host running etagate under systemd. Optionally installs FILE as the new
#       binary (checked first, the previous one kept as BIN.prev), then upgrades the running
#       service in place. Requires the Type=forking unit (etagate-forking.service). Against the
#       Type=simple unit it refuses, or with --allow-restart falls back to `systemctl restart`
#       (a short outage).
#   etagate-upgrade in-place (--pid PID | --pid-file FILE) [--log FILE]
#       Without systemd: hand the sockets of the etagate process PID over to a new process
#       started from --bin, then (with --pid-file) record the new PID there.
#   etagate-upgrade systemd-start      ExecStart= of etagate-forking.service
#   etagate-upgrade systemd-reload     ExecReload= of etagate-forking.service
#
# Options, or the environment variable in brackets:
#   --bin FILE             [ETAGATE_BIN]             default /usr/local/bin/etagate
#   --conf FILE            [ETAGATE_CONF]            default /etc/etagate/etagate.yaml
#   --admin URL            [ETAGATE_ADMIN_URL]       default http://127.0.0.1:9090
#   --run-dir DIR          [ETAGATE_RUN_DIR]         default /run/etagate
#   --upgrade-socket PATH  [ETAGATE_UPGRADE_SOCKET]  default: server.upgrade_socket of --conf
#   --timeout SECONDS      [ETAGATE_TIMEOUT]         readiness wait, default 30
#
# The in-place hand-over, step by step (what `systemd-reload` does when an upgrade is
# requested, and what `in-place` does):
#   1. `NEW -t -c CONF`: the new binary must accept the config. Failure: nothing changed.
#   2. Start `NEW -u -c CONF` in the background (foreground mode, no -d). It loads the config,
#      then listens on server.upgrade_socket and waits ~5s for the old process's sockets.
#   3. Wait until that upgrade socket is listening (/proc/net/unix). If the new process exits
#      first: nothing changed, the old process still serves.
#   4. SIGQUIT to the old process: it sends its listening sockets (public listeners and the admin
#      listener) to the new one, keeps accepting for 5 more seconds (Pingora's fixed close
#      timeout), reports 503 "draining" on /readyz, then stops accepting, finishes requests in
#      flight during server.grace_period and exits (after at most server.shutdown_timeout more).
#   5. Wait for GET /readyz == 200. Both processes answer on the admin port during the overlap,
#      but the old one answers 503 "draining", so a 200 comes from the new one. Then watch the
#      new process for 6 more seconds (the old one's 5s close timeout).
#   6. Record the new PID in the PID file (atomically): systemd adopts it as the main PID when
#      the old one exits.
# The point of no return is step 4. If the new process dies after it (for example an access log
# it cannot open, which `-t` does not try), the old process still stops accepting 5s later:
# the service goes down. `etagate-upgrade` (the root command) then restores the previous binary
# and restarts the service.
#
# Exit status: 0 done; 1 failed, the old process still serves; 2 usage; 3 the new process died
# after the hand-over (act now: see the message); 4 the new process took over but never reported
# ready. Under systemd, systemd-reload also writes this status to $RUN_DIR/upgrade.result for
# the root command to read.

set -euo pipefail

BIN=${ETAGATE_BIN:-/usr/local/bin/etagate}
CONF=${ETAGATE_CONF:-/etc/etagate/etagate.yaml}
ADMIN_URL=${ETAGATE_ADMIN_URL:-http://127.0.0.1:9090}
RUN_DIR=${ETAGATE_RUN_DIR:-/run/etagate}
UPGRADE_SOCKET=${ETAGATE_UPGRADE_SOCKET:-}
TIMEOUT=${ETAGATE_TIMEOUT:-30}
UNIT=etagate.service
NEW_BINARY=""
ALLOW_RESTART=0
OLD_PID=""
PID_FILE=""
LOG_FILE=""

log() { echo "etagate-upgrade: $*" >&2; }
die() { local code=$1; shift; log "$*"; exit "$code"; }

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed -n '/^# Usage:/,/^# Options/p' | sed 's/^# \{0,1\}//' >&2
  exit 2
}

mode=upgrade
case "${1:-}" in
  upgrade|in-place|systemd-start|systemd-reload) mode=$1; shift ;;
  -h|--help) usage ;;
esac
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) BIN=$2; ETAGATE_BIN=$2; shift 2 ;;
    --conf) CONF=$2; ETAGATE_CONF=$2; shift 2 ;;
    --admin) ADMIN_URL=$2; ETAGATE_ADMIN_URL=$2; shift 2 ;;
    --run-dir) RUN_DIR=$2; ETAGATE_RUN_DIR=$2; shift 2 ;;
    --upgrade-socket) UPGRADE_SOCKET=$2; shift 2 ;;
    --timeout) TIMEOUT=$2; shift 2 ;;
    --unit) UNIT=$2; shift 2 ;;
    --new-binary) NEW_BINARY=$2; shift 2 ;;
    --allow-restart) ALLOW_RESTART=1; shift ;;
    --pid) OLD_PID=$2; shift 2 ;;
    --pid-file) PID_FILE=$2; shift 2 ;;
    --log) LOG_FILE=$2; shift 2 ;;
    -h|--help) usage ;;
    *) log "unknown argument: $1"; usage ;;
  esac
done
REQUEST_FILE=$RUN_DIR/upgrade.request
[ -n "$PID_FILE" ] || PID_FILE=$RUN_DIR/etagate.pid

# server.upgrade_socket from the config when not given: a plain `key: value` line is all this
# looks for (the shipped configs write it that way); otherwise etagate's default.
upgrade_socket() {
  if [ -z "$UPGRADE_SOCKET" ]; then
    UPGRADE_SOCKET=$(sed -n -E "s/^[[:space:]]+upgrade_socket:[[:space:]]*[\"']?([^\"'#[:space:]]+).*/\1/p" "$CONF" 2>/dev/null | tail -n 1)
    [ -n "$UPGRADE_SOCKET" ] || UPGRADE_SOCKET=/tmp/etagate_upgrade.sock
  fi
  echo "$UPGRADE_SOCKET"
}

alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }

# A process that exited but was not reaped yet still answers kill -0: look at its state too.
running() {
  alive "$1" || return 1
  local state
  state=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$1/status" 2>/dev/null || true)
  [ "$state" != Z ]
}

# Is a unix socket bound to PATH in listening state? (/proc/net/unix: flags 00010000 = listening)
socket_listening() {
  awk -v p="$1" '$NF == p && $4 == "00010000" { found = 1 } END { exit !found }' /proc/net/unix 2>/dev/null
}

readyz() {
  command -v curl >/dev/null 2>&1 || return 2
  [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$ADMIN_URL/readyz" 2>/dev/null)" = 200 ]
}

# Wait until PID is ready: /readyz 200 twice in a row (or, without curl, still alive after 2s).
wait_ready() {
  local pid=$1 deadline=$((SECONDS + TIMEOUT)) ok=0 rc
  while [ $SECONDS -lt $deadline ]; do
    running "$pid" || return 1
    rc=0; readyz || rc=$?
    if [ $rc -eq 2 ]; then
      log "curl not found: not checking /readyz, only that the process stays up"
      sleep 2; running "$pid"; return
    fi
    if [ $rc -eq 0 ]; then ok=$((ok + 1)); [ $ok -ge 2 ] && return 0; else ok=0; fi
    sleep 0.2
  done
  return 2
}

write_pid_file() {
  local tmp="$PID_FILE.tmp.$$"
  if [ ! -d "$(dirname "$PID_FILE")" ]; then
    log "not recording pid $1: $(dirname "$PID_FILE") does not exist"
    return 0
  fi
  echo "$1" > "$tmp" && mv -f "$tmp" "$PID_FILE"
}

# Start etagate in the foreground mode, in the background of this script; its PID goes to
# SPAWNED. Its standard output and error are ours (the journal under systemd) unless --log was
# given. (Not in a subshell: this script must stay its parent to see it exit.)
SPAWNED=""
spawn() {
  if [ -n "$LOG_FILE" ]; then
    "$BIN" "$@" -c "$CONF" >>"$LOG_FILE" 2>&1 </dev/null &
  else
    "$BIN" "$@" -c "$CONF" </dev/null &
  fi
  SPAWNED=$!
}

# The hand-over itself (steps 1-6 above). $1 is the PID of the running process.
hand_over() {
  local old=$1 new sock deadline
  running "$old" || die 1 "the running etagate (pid $old) is not running"
  log "checking $CONF with $BIN"
  "$BIN" -t -c "$CONF" >&2 || die 1 "the new binary rejects the configuration; nothing changed"
  sock=$(upgrade_socket)

  spawn -u; new=$SPAWNED
  log "started $BIN -u (pid $new); waiting for it to listen on $sock"
  deadline=$((SECONDS + 20))
  until socket_listening "$sock"; do
    if ! running "$new"; then
      wait "$new" 2>/dev/null || true
      die 1 "the new process exited before taking over (see its log above); the old one (pid $old) still serves"
    fi
    if [ $SECONDS -ge $deadline ]; then
      kill -TERM "$new" 2>/dev/null || true
      die 1 "the new process did not open $sock within 20s (is server.upgrade_socket $sock?); stopped it, the old one (pid $old) still serves"
    fi
    sleep 0.1
  done

  log "sending SIGQUIT to the old process (pid $old): it hands over its sockets and drains"
  kill -QUIT "$old"
  if ! wait_ready "$new"; then
    if running "$new"; then
      write_pid_file "$new"
      die 4 "the new process (pid $new) took over but $ADMIN_URL/readyz did not answer 200 within ${TIMEOUT}s; it keeps running: check its log"
    fi
    die 3 "the new process (pid $new) exited after the hand-over; the old one (pid $old) stops accepting within 5s: restore the previous binary and start the service again"
  fi
  # The old process keeps accepting for 5s after the hand-over: if the new one dies within that
  # window there is still time to notice before the listeners are gone for good.
  deadline=$((SECONDS + 6))
  while [ $SECONDS -lt $deadline ]; do
    running "$new" || die 3 "the new process (pid $new) exited right after the hand-over; the old one (pid $old) stops accepting now: restore the previous binary and start the service again"
    sleep 0.2
  done
  write_pid_file "$new"
  log "new process (pid $new) is ready; the old one (pid $old) drains and exits"
}

case "$mode" in
  systemd-start)
    # Type=forking start: run etagate, wait until it is ready, record its PID, exit.
    spawn; new=$SPAWNED
    if ! wait_ready "$new"; then
      running "$new" && kill -TERM "$new" 2>/dev/null
      die 1 "etagate (pid $new) did not become ready within ${TIMEOUT}s ($ADMIN_URL/readyz); see the log above"
    fi
    write_pid_file "$new"
    log "etagate (pid $new) is ready"
    ;;

  systemd-reload)
    old=${MAINPID:-}
    [ -n "$old" ] || old=$(cat "$PID_FILE" 2>/dev/null || true)
    [ -n "$old" ] || die 1 "no main PID (MAINPID unset and no $PID_FILE)"
    if [ -e "$REQUEST_FILE" ]; then
      rm -f "$REQUEST_FILE"
      trap 'echo $? > "$RUN_DIR/upgrade.result"' EXIT
      log "upgrade requested: handing over from pid $old"
      hand_over "$old"
    else
      "$BIN" -t -c "$CONF" >&2 || die 1 "configuration rejected; the running configuration stays"
      kill -HUP "$old"
      log "SIGHUP sent to pid $old (configuration reload)"
    fi
    ;;

  in-place)
    if [ -z "$OLD_PID" ]; then
      OLD_PID=$(cat "$PID_FILE" 2>/dev/null || true)
      [ -n "$OLD_PID" ] || die 2 "give --pid PID or --pid-file FILE"
    fi
    hand_over "$OLD_PID"
    # Report when the old process is gone: 5s close timeout + grace period + shutdown timeout.
    deadline=$((SECONDS + 120))
    while running "$OLD_PID" && [ $SECONDS -lt $deadline ]; do sleep 0.5; done
    if running "$OLD_PID"; then
      log "the old process (pid $OLD_PID) is still running after 120s"
    else
      log "the old process (pid $OLD_PID) has exited; upgrade complete"
    fi
    ;;

  upgrade)
    [ "$(id -u)" -eq 0 ] || die 2 "run as root (it writes $REQUEST_FILE and runs systemctl)"
    command -v systemctl >/dev/null 2>&1 || die 2 "no systemctl: use 'etagate-upgrade in-place --pid PID'"
    systemctl is-active --quiet "$UNIT" || die 1 "$UNIT is not active; start it instead: systemctl start $UNIT"
    # Unless given here, use the paths the unit itself uses (its Environment= lines).
    unit_env=$(systemctl show -p Environment --value "$UNIT")
    from_unit() {
      local v
      v=$(tr ' ' '\n' <<<"$unit_env" | sed -n "s/^$1=//p" | tail -n 1)
      [ -n "$v" ] && printf '%s' "$v"
    }
    [ -n "${ETAGATE_BIN:-}" ] || BIN=$(from_unit ETAGATE_BIN || echo "$BIN")
    [ -n "${ETAGATE_CONF:-}" ] || CONF=$(from_unit ETAGATE_CONF || echo "$CONF")
    [ -n "${ETAGATE_RUN_DIR:-}" ] || RUN_DIR=$(from_unit ETAGATE_RUN_DIR || echo "$RUN_DIR")
    [ -n "${ETAGATE_ADMIN_URL:-}" ] || ADMIN_URL=$(from_unit ETAGATE_ADMIN_URL || echo "$ADMIN_URL")
    REQUEST_FILE=$RUN_DIR/upgrade.request
    type=$(systemctl show -p Type --value "$UNIT")
    user=$(systemctl show -p User --value "$UNIT"); user=${user:-etagate}
    old=$(systemctl show -p MainPID --value "$UNIT")

    if [ "$type" != forking ] && [ $ALLOW_RESTART -ne 1 ]; then
      die 1 "$UNIT is Type=$type, which cannot hand its sockets to a new process (see docs/operations.md). Install deploy/systemd/etagate-forking.service as $UNIT, or accept a short outage with --allow-restart"
    fi

    installed=0
    if [ -n "$NEW_BINARY" ]; then
      [ -x "$NEW_BINARY" ] || die 1 "$NEW_BINARY is not an executable file"
      "$NEW_BINARY" --version >/dev/null || die 1 "$NEW_BINARY does not run"
      # Check the config as the service's user: the token and certificate files must be readable
      # by it, not just by root.
      if command -v runuser >/dev/null 2>&1 && id "$user" >/dev/null 2>&1; then
        runuser -u "$user" -- "$NEW_BINARY" -t -c "$CONF" >&2 || die 1 "$NEW_BINARY rejects $CONF; nothing changed"
      else
        "$NEW_BINARY" -t -c "$CONF" >&2 || die 1 "$NEW_BINARY rejects $CONF; nothing changed"
      fi
      # Copy first: --new-binary may be $BIN.prev itself (a rollback).
      install -m 0755 "$NEW_BINARY" "$BIN.new.$$"
      cp -p "$BIN" "$BIN.prev"
      mv -f "$BIN.new.$$" "$BIN"
      installed=1
      log "installed $NEW_BINARY as $BIN (previous binary kept as $BIN.prev)"
    fi

    rollback() {
      if [ $installed -eq 1 ]; then
        mv -f "$BIN.prev" "$BIN"
        log "restored the previous binary"
      fi
    }

    if [ "$type" != forking ]; then
      log "$UNIT is Type=$type: restarting (new connections are refused for a few seconds)"
      if ! systemctl restart "$UNIT"; then
        rollback; systemctl restart "$UNIT" || true
        die 3 "restart failed; previous binary restored and restarted: systemctl status $UNIT"
      fi
      log "restarted $UNIT (main pid $(systemctl show -p MainPID --value "$UNIT"))"
      exit 0
    fi

    rm -f "$RUN_DIR/upgrade.result"
    echo "requested by etagate-upgrade at $(date -u +%FT%TZ)" > "$REQUEST_FILE"
    trap 'rm -f "$REQUEST_FILE"' EXIT
    log "upgrading $UNIT in place (main pid $old)"
    systemctl reload "$UNIT" || true
    rm -f "$REQUEST_FILE"
    result=$(cat "$RUN_DIR/upgrade.result" 2>/dev/null || echo missing)
    case "$result" in
      0) ;;
      1) rollback
         die 1 "upgrade failed before the hand-over; pid $old still serves with the binary it started with (journalctl -u $UNIT)" ;;
      4) die 4 "the new process took over but is not ready: check journalctl -u $UNIT; the previous binary is in $BIN.prev" ;;
      missing)
         die 1 "the reload did not report a result (refused, or timed out: TimeoutStartSec); check systemctl status $UNIT and journalctl -u $UNIT before doing anything else; the previous binary is in $BIN.prev" ;;
      *) # 3: the new process died after taking the sockets; the old one stops accepting 5s
         # after the hand-over. Start again from the previous binary.
         rollback
         log "upgrade failed after the hand-over (result: $result); restarting $UNIT"
         systemctl restart "$UNIT" || true
         die 3 "restarted $UNIT after a failed upgrade: check systemctl status $UNIT and journalctl -u $UNIT" ;;
    esac

    # The old process exits after 5s + grace_period (+ up to shutdown_timeout); systemd then
    # reads the PID file and adopts the new process.
    deadline=$((SECONDS + 120))
    while [ $SECONDS -lt $deadline ]; do
      main=$(systemctl show -p MainPID --value "$UNIT")
      [ "$main" != "$old" ] && [ "$main" != 0 ] && break
      sleep 1
    done
    main=$(systemctl show -p MainPID --value "$UNIT")
    systemctl is-active --quiet "$UNIT" || die 3 "$UNIT is no longer active: systemctl status $UNIT"
    [ "$main" != "$old" ] || die 3 "systemd still reports the old main pid $old after 120s: systemctl status $UNIT"
    version=$(curl -s --max-time 2 "$ADMIN_URL/metrics" 2>/dev/null | sed -n 's/^etagate_build_info{\(.*\)} 1$/\1/p' || true)
    log "upgrade complete: main pid $old -> $main ${version:+($version)}"
    ;;
esac
