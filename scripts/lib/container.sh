# shellcheck shell=bash
# Shell helpers for the checks that stand in for the container image and its pods
# (scripts/check-kubernetes.sh, scripts/check-image-runtime.sh). Source it from the repository
# root; it defines functions only.

# find_etagate_bin: the etagate binary the checks run, as scripts/check-deploy.sh finds it:
# $ETAGATE_BIN, else the more recently built of target/release and target/debug; empty if none.
find_etagate_bin() {
  local b found=${ETAGATE_BIN:-}
  if [ -z "$found" ]; then
    for b in target/release/etagate target/debug/etagate; do
      if [ -x "$b" ] && { [ -z "$found" ] || [ "$b" -nt "$found" ]; }; then found=$b; fi
    done
  fi
  [ -n "$found" ] && [ -x "$found" ] && echo "$found"
  return 0
}

# dockerfile_instruction NAME: the words of the last exec-form (JSON) NAME instruction of
# deploy/container/Dockerfile (ENTRYPOINT, CMD), one per line.
dockerfile_instruction() {
  python3 - "$1" <<'PY'
import json, re, sys
words = None
for line in open("deploy/container/Dockerfile"):
    m = re.match(r"\s*" + sys.argv[1] + r"\s+(\[.*\])\s*$", line)
    if m:
        words = json.loads(m.group(1))
if words is None:
    sys.exit(f"deploy/container/Dockerfile has no exec-form {sys.argv[1]} line")
print("\n".join(words))
PY
}

# dockerfile_user: the uid of the Dockerfile's USER line (USER UID:GID).
dockerfile_user() {
  sed -n 's/^USER[[:space:]]\{1,\}\([0-9]\{1,\}\).*/\1/p' deploy/container/Dockerfile | tail -n 1
}

# kubelet_update DIR FILE...: replace the files of a ConfigMap-style volume DIR the way the
# kubelet does: the new files in a new hidden directory, then ..data renamed over to point at
# it (one atomic switch), the old directory removed. Each FILE is copied under its base name;
# DIR's top-level links (NAME -> ..data/NAME) are created for new names.
kubelet_update() {
  local dir=$1 stamp old f name; shift
  stamp="..$(date +%Y_%m_%d_%H_%M_%S.%N)"
  mkdir "$dir/$stamp"
  for f in "$@"; do cp "$f" "$dir/$stamp/"; done
  chmod -R a+rX "$dir/$stamp"
  old=$(readlink "$dir/..data" 2>/dev/null || true)
  ln -s "$stamp" "$dir/..data_tmp"
  mv -T "$dir/..data_tmp" "$dir/..data"
  for f in "$@"; do
    name=$(basename "$f")
    [ -L "$dir/$name" ] || ln -s "..data/$name" "$dir/$name"
  done
  [ -n "$old" ] && rm -rf "${dir:?}/$old"
  return 0
}
