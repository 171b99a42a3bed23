#!/usr/bin/env bash
# Run one command the way a container of deploy/container/Dockerfile's image runs it, without a
# container engine (none can build or run images on the machines the checks run on):
#
#   - its own mount and PID namespaces: the command is PID 1, as in a container, and every
#     mount below disappears with it;
#   - a root file system that is read-only as a whole (readOnlyRootFilesystem): this machine's
#     /usr (Debian bookworm, the image's base) read-only, /usr/local/bin holding only the files
#     given with --bin (the image's COPY lines), an /etc holding the image's users
#     (etagate, 65532) and a copy of this machine's name-service files, /dev with the usual
#     nodes, /proc, and nothing else;
#   - writable only where a volume is mounted: --volume binds a directory of this machine
#     (read-write, or read-only with :ro), --tmpfs mounts a fresh file system of the given size,
#     written as tmpfs or Kubernetes write it (20g or 20Gi): a PersistentVolumeClaim's stand-in,
#     whose size etagate checks cache.disk.budget against;
#   - as UID:UID with no supplementary groups, no capabilities, no_new_privs (the manifests'
#     runAsUser/runAsGroup, capabilities drop ALL, allowPrivilegeEscalation false);
#   - with an environment holding only PATH, HOME and the --env values (the image's ENV and the
#     pod's env).
#
# Networking is this machine's: listeners on 127.0.0.1 are reachable from outside, as a port
# forward would make them. Needs root (mount namespaces, chroot, setpriv), util-linux's unshare.
# The command's exit status is this script's.
#
# Usage: scripts/lib/run-in-image.sh --root EMPTY_DIR [--uid UID] [--bin NAME=FILE]...
#          [--volume DIR:PATH[:ro]]... [--tmpfs PATH:SIZE]... [--env NAME=VALUE]...
#          [--host "IP NAME..."]... -- COMMAND [ARG...]
# To signal the command (it is PID 1 inside), send the signal to the only child of this
# script's process (unshare --fork waits for it and ignores SIGTERM itself):
#   cat /proc/PID/task/PID/children
set -euo pipefail

if [ "${RUN_IN_IMAGE_NAMESPACE:-}" != 1 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "run-in-image: needs root (mount namespace, chroot, setpriv)" >&2
    exit 125
  fi
  RUN_IN_IMAGE_NAMESPACE=1 exec unshare --mount --pid --fork --propagation private --kill-child \
    -- "$0" "$@"
fi
unset RUN_IN_IMAGE_NAMESPACE

die() { echo "run-in-image: $*" >&2; exit 125; }

root="" uid=65532
bins=() volumes=() tmpfses=() envs=() hosts=()
while [ $# -gt 0 ]; do
  case $1 in
    --root) root=$2; shift 2 ;;
    --uid) uid=$2; shift 2 ;;
    --bin) bins+=("$2"); shift 2 ;;
    --volume) volumes+=("$2"); shift 2 ;;
    --tmpfs) tmpfses+=("$2"); shift 2 ;;
    --env) envs+=("$2"); shift 2 ;;
    --host) hosts+=("$2"); shift 2 ;;
    --) shift; break ;;
    *) die "unknown option $1" ;;
  esac
done
if [ -z "$root" ] || [ ! -d "$root" ]; then die "--root must name an existing directory"; fi
[ $# -gt 0 ] || die "no command"
case $uid in ''|*[!0-9]*|0) die "--uid must be a non-root numeric uid" ;; esac

ro_bind() { # ro_bind SOURCE TARGET
  mount --bind "$1" "$2"
  mount -o remount,bind,ro "$2"
}

# The root: a tmpfs, made read-only once everything is mounted on it. The image's own
# directories exist in it even where no volume is mounted.
mount -t tmpfs -o mode=0755 image-root "$root"
mkdir -p "$root"/{usr,etc,dev,proc,run,tmp,var/cache}
mkdir -p "$root"/{etc/etagate/config,run/etagate,var/cache/etagate}
for d in bin lib lib64 sbin; do
  if [ -L "/$d" ]; then                # merged /usr, as in the image
    ln -s "$(readlink "/$d")" "$root/$d"
  elif [ -d "/$d" ]; then
    mkdir "$root/$d"
    ro_bind "/$d" "$root/$d"
  fi
done
ro_bind /usr "$root/usr"
# /usr/local is the image's own: only the files it installs.
mount -t tmpfs -o mode=0755 image-usr-local "$root/usr/local"
mkdir -p "$root/usr/local/bin" "$root/usr/local/sbin"
for b in "${bins[@]}"; do
  name=${b%%=*} file=${b#*=}
  [ -f "$file" ] || die "--bin $b: no such file"
  touch "$root/usr/local/bin/$name"
  chmod 0755 "$root/usr/local/bin/$name"
  ro_bind "$(readlink -f "$file")" "$root/usr/local/bin/$name"
done
mount -o remount,ro "$root/usr/local"

# /etc: the image's users, this machine's name-service files (no /etc/hosts entries but
# localhost and the --host lines), the CA store.
cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
etagate:x:65532:65532::/nonexistent:/usr/sbin/nologin
EOF
printf 'root:x:0:\nnogroup:x:65534:\netagate:x:65532:\n' >"$root/etc/group"
{ echo "127.0.0.1 localhost"; for h in "${hosts[@]}"; do echo "$h"; done; } >"$root/etc/hosts"
for f in nsswitch.conf resolv.conf ld.so.cache ld.so.conf host.conf; do
  [ -e "/etc/$f" ] && cp -L "/etc/$f" "$root/etc/$f"
done
for d in ssl ca-certificates alternatives ld.so.conf.d; do
  [ -d "/etc/$d" ] && { mkdir -p "$root/etc/$d"; ro_bind "/etc/$d" "$root/etc/$d"; }
done

for n in null zero full random urandom; do
  touch "$root/dev/$n"
  mount --bind "/dev/$n" "$root/dev/$n"
done
ln -s /proc/self/fd "$root/dev/fd"
mount -t proc -o nosuid,nodev,noexec proc "$root/proc"

for v in "${volumes[@]}"; do
  IFS=: read -r src dest mode <<<"$v"
  [ -d "$src" ] || die "--volume $v: no such directory"
  mkdir -p "$root$dest"
  mount --bind "$src" "$root$dest"
  [ "${mode:-}" = ro ] && mount -o remount,bind,ro "$root$dest"
done
for t in "${tmpfses[@]}"; do
  IFS=: read -r dest size <<<"$t"
  size=${size%i}; size=${size,,}     # a Kubernetes quantity (20Gi) in tmpfs's units (20g)
  mkdir -p "$root$dest"
  # Group-owned and group-writable like a volume under the pod's fsGroup.
  mount -t tmpfs -o "size=$size,mode=2770,uid=0,gid=$uid" image-volume "$root$dest"
done
mount -o remount,ro "$root"

exec chroot "$root" /usr/bin/setpriv --reuid="$uid" --regid="$uid" --clear-groups \
  --no-new-privs --inh-caps=-all --bounding-set=-all -- \
  /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  HOME=/nonexistent "${envs[@]}" "$@"
