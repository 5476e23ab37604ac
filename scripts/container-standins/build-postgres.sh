#!/usr/bin/env bash
# A stand-in for postgres:16 (see README.md here): Debian bookworm's PostgreSQL 15 with a small
# entrypoint (postgres-entrypoint.sh) that honours the official image's POSTGRES_USER,
# POSTGRES_PASSWORD, POSTGRES_DB and PGDATA.
#   sudo scripts/container-standins/build-postgres.sh   # MIRROR=..., TAG=...
here=$(cd "$(dirname "$0")" && pwd)
. "$here/common.sh"
bootstrap ca-certificates
# No cluster made at install time and no service started in the chroot: the entrypoint does it.
mkdir -p "$root/etc/postgresql-common"
echo 'create_main_cluster = false' >"$root/etc/postgresql-common/createcluster.conf"
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod +x "$root/usr/sbin/policy-rc.d"
mount -t proc proc "$root/proc"
chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
  -o Dpkg::Options::=--force-confold postgresql-15
umount "$root/proc"
rm "$root/usr/sbin/policy-rc.d"
install -m 0755 "$here/postgres-entrypoint.sh" "$root/usr/local/bin/docker-entrypoint.sh"
install -d -o 0 -g 0 -m 0755 "$root/var/lib/postgresql"
chroot "$root" install -d -o postgres -g postgres -m 0700 /var/lib/postgresql/data
chroot "$root" install -d -o postgres -g postgres -m 2775 /var/run/postgresql
slim
tag=${TAG:-postgres:16}
import_image "$tag-rootfs" \
  --change 'ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'ENV PGDATA=/var/lib/postgresql/data' \
  --change 'VOLUME /var/lib/postgresql/data' \
  --change 'ENTRYPOINT ["docker-entrypoint.sh"]' \
  --change 'EXPOSE 5432' \
  --change 'CMD ["postgres"]'
# docker import takes no STOPSIGNAL: SIGINT is PostgreSQL's fast shutdown, as the official's.
printf 'FROM %s\nSTOPSIGNAL SIGINT\n' "$tag-rootfs" | docker build -t "$tag" -
docker rmi "$tag-rootfs" >/dev/null
docker image ls "$tag"
