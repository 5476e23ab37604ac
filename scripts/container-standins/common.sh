# shellcheck shell=bash
# Shared by the build-*.sh here: a Debian bookworm root made by debootstrap, imported into
# Docker under the official image's tag. Sourced, not run.
set -euo pipefail
root=$(mktemp -d /var/tmp/standin.XXXXXX)
cleanup() {
  # debootstrap may leave /proc and /sys mounted when it fails: never rm -rf through a mount.
  awk -v r="$root/" 'index($2, r) == 1 {print $2}' /proc/mounts | sort -r | xargs -r umount
  if awk -v r="$root/" 'index($2, r) == 1 {f = 1} END {exit !f}' /proc/mounts; then
    echo "$0: still mounted under $root, not removed" >&2
  else
    rm -rf "$root"
  fi
}
trap cleanup EXIT

bootstrap() {  # packages, comma-separated; MIRROR unset: debootstrap's default Debian mirror
  debootstrap --variant=minbase --include="$1" bookworm "$root" ${MIRROR:+"$MIRROR"}
}

slim() {  # what the official slim images leave out too
  chroot "$root" apt-get clean
  rm -rf "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* "$root"/usr/share/man/* \
    "$root"/usr/share/info/* "$root"/var/cache/debconf/*-old "$root"/var/log/*.log
  rm -f "$root/etc/hostname" "$root/etc/resolv.conf"  # Docker supplies both at run time
}

import_image() {  # tag, then --change options
  local tag=$1
  shift
  tar --numeric-owner -C "$root" --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' -c . |
    docker import "$@" - "$tag"
  docker image ls "$tag"
}
