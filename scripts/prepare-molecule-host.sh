#!/usr/bin/env bash
# Prepare this machine, idempotently, for the Molecule scenarios (podman driver) on real Debian 12
# and Debian 13 containers with systemd as PID 1, on a VM like the project's CI machine:
# root, no systemd on the host, cgroup v1 (hybrid), no CAP_SYS_RESOURCE,
# no container registry reachable (image is built locally with debootstrap).
#
# Ansible reaches the containers over SSH with pipelining (one round trip per task; the podman
# connection needs five `podman exec` per task): the image carries openssh-server, not started, and
# the public half of a key made here; .config/molecule/config.yml runs `sshd -i` through `podman exec`
# (which first makes /run/sshd: right after a container restart, systemd may not have yet).
#
# Usage:  scripts/prepare-molecule-host.sh                  # packages + host fixes + SSH key + base images
#         REBUILD_IMAGE=1 scripts/prepare-molecule-host.sh  # force fresh debootstrap images
# Env:    RELEASES="bookworm trixie" (the images localhost/debian12-systemd and localhost/debian13-systemd)
#         SSH_KEY=~/.cache/uqcrowd-log/molecule-ssh/id_ed25519 (the key the scenarios log in with)
#         MIRROR / SECURITY_MIRROR default to the URIs in /etc/apt/sources.list.d/debian.sources
set -euo pipefail

RELEASES="${RELEASES:-bookworm trixie}"
MIRROR="${MIRROR:-$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null)}"
SECURITY_MIRROR="${SECURITY_MIRROR:-$(awk '/^URIs:/{u=$2} END{print u}' /etc/apt/sources.list.d/debian.sources 2>/dev/null)}"
WORK="${WORK:-/var/tmp/molecule-runtime}"
SSH_KEY="${SSH_KEY:-$HOME/.cache/uqcrowd-log/molecule-ssh/id_ed25519}"
# Each release's image, and what is baked in only to save each converge a download (the roles still
# install these themselves): Debian 12 has Java 17, Debian 13 Java 21.
declare -A IMAGES=([bookworm]=localhost/debian12-systemd:latest [trixie]=localhost/debian13-systemd:latest)
declare -A EXTRA=([bookworm]=openjdk-17-jre-headless,python3-venv [trixie]=openjdk-21-jre-headless,python3-venv)

log() { printf '\n== %s  [%(%T)T]\n' "$*" -1; }
t0=$SECONDS

[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }

# ---------------------------------------------------------------- 1. packages
log "1/6 apt packages"
PKGS=(podman crun conmon netavark aardvark-dns iptables debootstrap uidmap
      slirp4netns fuse-overlayfs python3-venv openssh-client)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y --no-install-recommends "${missing[@]}" \
    || { apt-get update && apt-get install -y --no-install-recommends "${missing[@]}"; }
else
  echo "all present"
fi

# ------------------------------------------------------- 2. cgroup hybrid fix
# crun refuses hybrid cgroups when the v2 hierarchy owns a controller:
#   "crun: cgroups in hybrid mode not supported, drop all controllers from cgroupv2"
# On this kernel hugetlb is not mounted as v1, so it sits on cgroup2
# (/sys/fs/cgroup/unified). Mounting it as a v1 hierarchy moves it off v2.
log "2/6 cgroup v1/v2 hybrid fix"
U=/sys/fs/cgroup/unified
if [ -f "$U/cgroup.controllers" ]; then
  for c in $(cat "$U/cgroup.controllers"); do
    # a controller enabled in subtree_control cannot be moved; disable it first
    grep -qw "$c" "$U/cgroup.subtree_control" && echo "-$c" > "$U/cgroup.subtree_control" || true
    mkdir -p "/sys/fs/cgroup/$c"
    mountpoint -q "/sys/fs/cgroup/$c" || mount -t cgroup -o "$c" cgroup "/sys/fs/cgroup/$c"
    echo "moved controller $c to cgroup v1 at /sys/fs/cgroup/$c"
  done
  left="$(cat "$U/cgroup.controllers")"
  [ -z "$left" ] || { echo "cgroup2 still has controllers: $left" >&2; exit 1; }
fi

# -------------------------------------------------------------- 3. ulimits
# No CAP_SYS_RESOURCE: crun cannot raise a hard rlimit. Podman sets
# nofile=1048576 and nproc=<host max> in the OCI spec by default and lowers its
# own RLIMIT_NPROC hard limit to 32768 first, so crun fails with
#   "crun: setrlimit `RLIMIT_NPROC`: Operation not permitted" (or RLIMIT_NOFILE).
# Pin both to values that are <= what crun inherits.
log "3/6 podman default_ulimits"
nofile=$(ulimit -Hn); [ "$nofile" = unlimited ] && nofile=1048576
nproc=$(ulimit -Hu);  { [ "$nproc" = unlimited ] || [ "$nproc" -gt 32768 ]; } && nproc=32768
mkdir -p /etc/containers/containers.conf.d
cat > /etc/containers/containers.conf.d/50-molecule-runtime.conf <<EOF
# written by scripts/prepare-molecule-host.sh (host lacks CAP_SYS_RESOURCE)
[containers]
default_ulimits = [
  "nofile=${nofile}:${nofile}",
  "nproc=${nproc}:${nproc}",
]
EOF
cat /etc/containers/containers.conf.d/50-molecule-runtime.conf

# ------------------------------------------------------------- 4. SSH key
log "4/6 SSH key $SSH_KEY"
mkdir -p -m 0700 "$(dirname "$SSH_KEY")"
[ -f "$SSH_KEY" ] || ssh-keygen -q -t ed25519 -N '' -C uqcrowd-log-molecule -f "$SSH_KEY"
key_id="$(ssh-keygen -l -f "$SSH_KEY.pub" | awk '{print $2}')"
echo "$key_id"

# ------------------------------------------------------------- 5. base images
# build_image SUITE IMAGE EXTRA_PKGS: a minimal Debian SUITE with systemd, sshd (not started) and our key.
mkdir -p "$WORK"
build_image() {
  local suite="$1" image="$2" extra="$3" built_for s
  local rootfs="$WORK/rootfs-$suite"
  built_for="$(podman image inspect --format '{{ index .Config.Labels "uqcrowd.built-for" }}' "$image" 2>/dev/null || true)"
  if [ -z "${REBUILD_IMAGE:-}" ] && podman image exists "$image" && [ "$built_for" = "$extra $key_id" ]; then
    echo "$image exists (REBUILD_IMAGE=1 to rebuild)"
    return
  fi
  rm -rf "$rootfs"
  s=$SECONDS
  debootstrap --variant=minbase \
    --include="systemd,systemd-sysv,dbus,python3,python3-apt,iproute2,procps,ca-certificates,openssh-server,$extra" \
    "$suite" "$rootfs" "$MIRROR" >"$WORK/debootstrap-$suite.log" 2>&1 \
    || { tail -30 "$WORK/debootstrap-$suite.log"; exit 1; }
  echo "debootstrap $suite: $((SECONDS - s))s"

  printf 'deb %s %s main\n' "$MIRROR" "$suite" "$MIRROR" "$suite-updates" "$SECURITY_MIRROR" "$suite-security" \
    > "$rootfs/etc/apt/sources.list"
  rm -f "$rootfs/etc/apt/sources.list.d/debian.sources"  # one list of sources: the one above
  # fresh machine-id per container (systemd generates it at boot)
  : > "$rootfs/etc/machine-id"; rm -f "$rootfs/var/lib/dbus/machine-id"
  # units that are useless in a container or that grab the dpkg lock mid-converge
  # (ssh: Ansible starts `sshd -i` through `podman exec`; nothing listens on port 22)
  for u in apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer e2scrub_all.timer \
           e2scrub_reap.service fstrim.timer getty@tty1.service systemd-pstore.service ssh.service ssh.socket; do
    chroot "$rootfs" systemctl disable "$u" >/dev/null 2>&1 || true
  done
  for u in getty.target console-getty.service systemd-remount-fs.service dev-hugepages.mount \
           sys-fs-fuse-connections.mount; do
    chroot "$rootfs" systemctl mask "$u" >/dev/null 2>&1
  done
  install -d -m 0700 "$rootfs/root/.ssh"
  install -m 0600 "$SSH_KEY.pub" "$rootfs/root/.ssh/authorized_keys"
  chroot "$rootfs" apt-get clean
  rm -rf "$rootfs"/var/lib/apt/lists/*
  # make apt's cache look stale so `apt: update_cache=true cache_valid_time=N` really updates
  touch -d @0 "$rootfs/var/lib/apt/lists"; rm -f "$rootfs/var/lib/apt/periodic/update-success-stamp"

  s=$SECONDS
  tar -C "$rootfs" -c . | podman import \
      --change 'CMD ["/sbin/init"]' --change 'STOPSIGNAL=SIGRTMIN+3' \
      --change 'ENV container=podman' --change "LABEL uqcrowd.built-for=$extra $key_id" - "$image"
  echo "podman import: $((SECONDS - s))s"
  rm -rf "$rootfs"
}

# ------------------------------------------------------------ 6. smoke test
# smoke_test IMAGE: systemd reaches "running" in a container of it, and SSH through podman exec logs in.
smoke_test() {
  local image="$1" name="mr-smoke-$$" state="" login
  podman rm -f "$name" >/dev/null 2>&1 || true
  podman run -d --name "$name" --systemd=always "$image" /sbin/init >/dev/null
  for _ in $(seq 1 60); do
    state="$(podman exec "$name" systemctl is-system-running 2>/dev/null || true)"
    case "$state" in running|degraded) break;; esac; sleep 1
  done
  echo "$image: systemctl is-system-running: $state"
  [ "$state" = running ] || { podman exec "$name" systemctl --failed --no-pager || true; }
  login="$(ssh -i "$SSH_KEY" -o "ProxyCommand=podman exec -i %h /bin/sh -c 'mkdir -p /run/sshd && exec /usr/sbin/sshd -i'" \
           -o StrictHostKeyChecking=no \
           -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o BatchMode=yes root@"$name" whoami 2>&1 || true)"
  echo "$image: ssh through podman exec: $login"
  podman rm -f -t 0 "$name" >/dev/null
  [ "$state" = running ] || { echo "$image: systemd did not reach 'running'" >&2; exit 1; }
  [ "$login" = root ] || { echo "$image: cannot log in over SSH" >&2; exit 1; }
}

# The images are built side by side (downloads and unpacking: little CPU), each into its own log.
images=() pids=()
for suite in $RELEASES; do
  [ -n "${IMAGES[$suite]:-}" ] || { echo "unknown release $suite (known: ${!IMAGES[*]})" >&2; exit 2; }
  images+=("${IMAGES[$suite]}")
  build_image "$suite" "${IMAGES[$suite]}" "${EXTRA[$suite]}" > "$WORK/build-$suite.log" 2>&1 &
  pids+=($!)
done
log "5/6 base images ${images[*]}"
i=0
for suite in $RELEASES; do
  wait "${pids[$i]}" || { cat "$WORK/build-$suite.log"; echo "the Debian $suite image was not built" >&2; exit 1; }
  cat "$WORK/build-$suite.log"
  i=$((i + 1))
done
for image in "${images[@]}"; do
  log "6/6 smoke test $image"
  smoke_test "$image"
done

log "done in $((SECONDS - t0))s. Molecule scenarios can now use ${images[*]}"
