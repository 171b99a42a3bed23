# shellcheck shell=bash
# The report lines of the check scripts (check-deploy.sh and the scripts it calls): one line per
# check, `ok`, `FAIL` or `skip`, after $CHECK_PREFIX; $failures counts the FAILs. Source it.

failures=0
pass() { echo "ok    ${CHECK_PREFIX:-}$*"; }
fail() { echo "FAIL  ${CHECK_PREFIX:-}$*"; failures=$((failures + 1)); }
skip() { echo "skip  ${CHECK_PREFIX:-}$*"; }

# check WHAT CMD...: run CMD, pass or fail WHAT; its output is shown only when it fails.
check() {
  local what=$1 out
  shift
  out=$(mktemp)
  if "$@" >"$out" 2>&1; then
    pass "$what"
  else
    fail "$what"
    sed 's/^/      /' "$out"
  fi
  rm -f "$out"
}
