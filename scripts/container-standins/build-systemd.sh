#!/usr/bin/env bash
# A Debian bookworm image with systemd as its init, to try the README's "Production install ›
# systemd" steps on a machine without systemd (see README.md here). Not a stand-in for an
# official image: there is none; it stands in for a Debian 12 server.
#   sudo scripts/container-standins/build-systemd.sh   # CA_BUNDLE=..., MIRROR=..., TAG=...
#   docker run -d --privileged --cgroupns=host -v /sys/fs/cgroup:/sys/fs/cgroup:rw \
#     --tmpfs /run --tmpfs /run/lock otklik-systemd-standin
. "$(dirname "$0")/common.sh"
ca=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
bootstrap systemd,systemd-sysv,dbus,python3,python3-venv,ca-certificates,curl,procps,sqlite3
cp "$ca" "$root/etc/ssl/certs/ca-certificates.crt"
# pip trusts what the host trusts, in every shell and unit (systemd passes no PIP_CERT).
printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' >"$root/etc/pip.conf"
# A container has no consoles, udev or hardware clock: units that wait for them only stall boot.
for unit in getty@tty1.service console-getty.service systemd-udevd.service \
  systemd-udev-trigger.service systemd-modules-load.service sys-kernel-debug.mount \
  sys-kernel-tracing.mount dev-hugepages.mount systemd-remount-fs.service \
  systemd-timesyncd.service; do
  ln -sf /dev/null "$root/etc/systemd/system/$unit"
done
: >"$root/etc/machine-id"  # made at first boot, one per container
slim
tag=${TAG:-otklik-systemd-standin}
import_image "$tag-rootfs" \
  --change 'ENV container=docker' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["/sbin/init"]'
# docker import takes no STOPSIGNAL: SIGRTMIN+3 is systemd's "halt", so `docker stop` shuts down.
printf 'FROM %s\nSTOPSIGNAL SIGRTMIN+3\n' "$tag-rootfs" | docker build -t "$tag" -
docker rmi "$tag-rootfs" >/dev/null
docker image ls "$tag"
