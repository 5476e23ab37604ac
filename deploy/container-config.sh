#!/bin/sh
# The example config made for the container image (deploy/Dockerfile), checked by
# scripts/check-install.sh too: the API and metrics on all the container's interfaces (publish
# only the API's port), data in the /var/lib/otklik volume, the database URL from
# OTKLIK_DATABASE_URL (compose sets PostgreSQL's). Each change must hit, or this fails.
#   deploy/container-config.sh config.example.yaml /etc/otklik/config.yaml
set -eu
in=$1
out=$2
sed -e 's|^  listen: 127.0.0.1:8080$|  listen: 0.0.0.0:8080|' \
    -e 's|^  listen: 127.0.0.1:9108$|  listen: 0.0.0.0:9108|' \
    -e 's|^  url: sqlite+aiosqlite:///data/otklik.db$|  url: ${OTKLIK_DATABASE_URL:-sqlite+aiosqlite:////var/lib/otklik/otklik.db}|' \
    -e 's|^  path: data/models/sentiment.org.npz$|  path: /var/lib/otklik/models/sentiment.org.npz|' \
    "$in" >"$out"
for changed in 'listen: 0.0.0.0:8080' 'listen: 0.0.0.0:9108' 'OTKLIK_DATABASE_URL' \
    'path: /var/lib/otklik/models/'; do
  grep -q "$changed" "$out" || { echo "$0: '$changed' not made: has $in changed?" >&2; exit 1; }
done
