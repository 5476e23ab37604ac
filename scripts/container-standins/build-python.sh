#!/usr/bin/env bash
# A stand-in for python:3.11-slim (see README.md here): Debian bookworm's Python 3.11 with
# venv, `python` on PATH, and this host's CA bundle, so pip in the container trusts what the
# host trusts (a TLS-intercepting proxy to PyPI, say).
#   sudo scripts/container-standins/build-python.sh    # CA_BUNDLE=..., MIRROR=..., TAG=...
. "$(dirname "$0")/common.sh"
ca=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
bootstrap python3,python3-venv,ca-certificates
ln -s python3 "$root/usr/bin/python"
cp "$ca" "$root/etc/ssl/certs/ca-certificates.crt"
slim
import_image "${TAG:-python:3.11-slim}" \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
  --change 'CMD ["python3"]'
