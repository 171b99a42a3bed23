#!/usr/bin/env bash
# Fuzz every etagate parser that reads untrusted input (cargo-fuzz / libFuzzer), each for a
# bounded time, starting from the committed seed corpus. Exits non-zero if any target crashes,
# hangs or runs out of memory, and prints where the crashing input was saved.
#
# Usage: scripts/fuzz.sh [--seconds N] [TARGET...]
#   --seconds N   fuzz each target for N seconds (default 10); the build comes on top
#   TARGET...     some of the targets (default: all; `cargo fuzz list --fuzz-dir fuzz` names them)
#
# The targets live in fuzz/fuzz_targets/ (one per parser: what each asserts is in its header),
# their seeds in fuzz/corpus/<target>/. Each run fuzzes a temporary copy of the seeds, so the
# committed corpus never grows by itself. Crash inputs go to fuzz/artifacts/<target>/.
#
# Toolchain: cargo-fuzz needs nightly-only rustc flags; the stable toolchain accepts them with
# RUSTC_BOOTSTRAP=1, which this script sets (for its own commands only). It installs
# cargo-fuzz with `cargo install cargo-fuzz --locked` when missing (2m20s here, once a machine).
#
# Build: one `cargo fuzz build` for all ten targets, release with debug assertions (overflow
# checks on) and no sanitizer. Measured on the 2-core machine (CPU time is the steady figure;
# wall time depends on what else runs there):
#   release, -s none (this)  cold build 8.5-10.5 min wall, 12-13 CPU-min; no change: 1 s
#   release, ASan            cold build 13 min wall, 19 CPU-min; fuzzes 2-4x fewer inputs/s
#   dev, -s none             cold build 6 min wall, 6.5 CPU-min; fuzzes 7-16x fewer inputs/s
# A whole cold `scripts/fuzz.sh --seconds 5` took 9m16s (21m40s while others loaded the
# machine), a warm one 50 s. etagate's parsers are safe Rust, so ASan would mainly watch the
# C-derived unsafe YAML parser under serde_yaml: FUZZ_SANITIZER=address builds with it (a 60 s
# ASan run of config_yaml found nothing). Most of a cold build is etagate's dependency tree
# (pingora, rustls, C libraries), which the targets link but never run: FUZZ_TARGET_DIR=DIR
# builds in a directory that can outlive the checkout (CI clones afresh) to pay it once.
#
# A longer campaign, e.g. ten minutes per target, keeping what it learns:
#   scripts/fuzz.sh --seconds 600 authority
#   (or, to grow a local corpus across runs: RUSTC_BOOTSTRAP=1 cargo fuzz run -O -a -s none \
#      --fuzz-dir fuzz authority /tmp/authority-corpus fuzz/corpus/authority -- -max_total_time=3600)
# New inputs worth keeping as seeds: minimize the grown corpus first and commit only a few small
# files (RUSTC_BOOTSTRAP=1 cargo fuzz cmin -O -a -s none --fuzz-dir fuzz authority DIR).
#
# When a target crashes:
#   1. reproduce: fuzz/target/<host triple>/release/<target> fuzz/artifacts/<target>/crash-...
#      (or: RUSTC_BOOTSTRAP=1 cargo fuzz run -O -a -s none --fuzz-dir fuzz <target> <file>)
#   2. minimize: RUSTC_BOOTSTRAP=1 cargo fuzz tmin -O -a -s none --fuzz-dir fuzz <target> <file>
#      (it prints where it wrote the smallest crashing input)
#   3. turn it into a unit test in the module's #[cfg(test)] section, written the way the target
#      reads its input (each target's header says, e.g. `range` reads "LEN\nRANGE"): the
#      failing assertion, with the minimized bytes as a literal (`cargo fuzz fmt -O -a -s none
#      --fuzz-dir fuzz <target> <file>` prints them as a byte array). Check that the test
#      fails, fix the code, check that it passes; copy the minimized input into
#      fuzz/corpus/<target>/ so every later run replays it.
#      Examples: authority::tests::a_canonical_authority_reparses_to_itself,
#      etag::tests::only_the_documented_shape_is_a_content_tag.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

seconds=10
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds="${2:?--seconds needs a number}"; shift 2 ;;
    --seconds=*) seconds="${1#--seconds=}"; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "fuzz.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
case "$seconds" in
  ''|*[!0-9]*|0) echo "fuzz.sh: --seconds wants a positive whole number, not '$seconds'" >&2; exit 2 ;;
esac

export RUSTC_BOOTSTRAP=1
start=$SECONDS
elapsed() { echo "$((SECONDS - start))s"; }

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi
cargo fuzz --version >/dev/null 2>&1 || { echo "fuzz.sh: cargo fuzz does not run after install" >&2; exit 1; }

target_dir="${FUZZ_TARGET_DIR:-$root/fuzz/target}"
build_flags=(--release --debug-assertions --sanitizer "${FUZZ_SANITIZER:-none}" --fuzz-dir fuzz)

mapfile -t all < <(cargo fuzz list --fuzz-dir fuzz)
if [ ${#targets[@]} -eq 0 ]; then
  targets=("${all[@]}")
fi
for t in "${targets[@]}"; do
  case " ${all[*]} " in
    *" $t "*) ;;
    *) echo "fuzz.sh: no target '$t'; targets: ${all[*]}" >&2; exit 2 ;;
  esac
done

echo "== building ${#targets[@]} fuzz target(s) ($(cargo fuzz --version), ${build_flags[*]:0:4})"
cargo fuzz build "${build_flags[@]}" --target-dir "$target_dir"
echo "   built in $(elapsed)"

triple=$(rustc -vV | sed -n 's/^host: //p')
bin_dir="$target_dir/$triple/release"
work=$(mktemp -d "${TMPDIR:-/tmp}/etagate-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT

failed=()
for t in "${targets[@]}"; do
  corpus="$work/corpus-$t"
  mkdir -p "$corpus" "$root/fuzz/artifacts/$t"
  if [ -d "fuzz/corpus/$t" ]; then
    cp -R "fuzz/corpus/$t/." "$corpus/"
  fi
  log="$work/$t.log"
  # -timeout: one input running 10 s is a hang; -rss_limit_mb: libFuzzer's default, explicit.
  rc=0
  "$bin_dir/$t" "$corpus" \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="$root/fuzz/artifacts/$t/" >"$log" 2>&1 || rc=$?
  stats=$(grep -E '^#[0-9]+' "$log" | tail -1 | grep -oE '^#[0-9]+|cov: [0-9]+|corp: [0-9]+' | tr '\n' ' ' || true)
  if [ "$rc" -eq 0 ]; then
    echo "== $t: ok (${stats:-no stats}; $(elapsed) so far)"
    continue
  fi
  failed+=("$t")
  echo "== $t: FAILED (libFuzzer exit $rc)"
  if grep -q "panicked at" "$log"; then
    grep -m1 -A3 "panicked at" "$log" | sed 's/^/   | /'
  fi
  grep -E "ERROR: libFuzzer|SUMMARY:" "$log" | sed 's/^/   | /' || true
  echo "   (whole libFuzzer log: $root/fuzz/artifacts/$t/last-failure.log)"
  cp "$log" "$root/fuzz/artifacts/$t/last-failure.log"
  artifact=$(grep -oE 'Test unit written to .*' "$log" | tail -1 | sed 's/^Test unit written to //' || true)
  if [ -n "$artifact" ] && [ -f "$artifact" ]; then
    echo "   crashing input: $artifact ($(wc -c <"$artifact") bytes); its first 256 bytes:"
    head -c 256 "$artifact" | od -A x -t x1z -v | sed 's/^/   | /'
    echo "   reproduce: $bin_dir/$t $artifact"
    echo "   minimize (from $root): RUSTC_BOOTSTRAP=1 cargo fuzz tmin ${build_flags[*]} --target-dir $target_dir $t $artifact"
  fi
done

echo "== fuzzed ${#targets[@]} target(s) for ${seconds}s each in $(elapsed)"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz.sh: ${#failed[@]} target(s) failed: ${failed[*]}" >&2
  exit 1
fi
