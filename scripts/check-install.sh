#!/usr/bin/env bash
# A production install from scratch, checked: a fresh virtual environment in a temporary
# directory, `pip install .` without extras, no development package in what got installed,
# then `otklik --help`, `otklik check-config` on the example config, and a real start of the
# bot until /healthz answers 200.
#   scripts/check-install.sh            # needs PyPI (or a mirror pip is set up for)
#   scripts/check-install.sh --docker   # also: build the image, run the compose file until
#                                       # the bot's container is healthy, post one mention to
#                                       # its API and find it in PostgreSQL, then remove it all
# Without Docker Hub, build local python:3.11-slim and postgres:16 first:
# scripts/container-standins/README.md.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}
docker=false
[[ ${1:-} == --docker ]] && docker=true
if $docker && ! docker compose version >/dev/null 2>&1; then
  echo "FAIL: --docker needs Docker with the compose plugin (\`docker compose version\`)"
  exit 1
fi

work=$(mktemp -d)
bot_pid=
cleanup() {
  [[ -n $bot_pid ]] && kill "$bot_pid" 2>/dev/null && wait "$bot_pid" 2>/dev/null
  if $docker && [[ -f $work/src/deploy/compose.yaml ]]; then
    docker compose -f "$work/src/deploy/compose.yaml" -p otklik-check down -v >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# A copy of what the package is built from: pip and setuptools leave build files beside it.
mkdir "$work/src"
cp -r "$root"/{pyproject.toml,README.md,LICENSE,config.example.yaml,bot,handlers,store,playbooks} \
  "$work/src/"
cp -r "$root/deploy" "$root/.dockerignore" "$work/src/"
find "$work/src" -name __pycache__ -prune -exec rm -rf {} +

echo "== pip install . (no extras) into a fresh venv"
"$python" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$work/venv/bin/python" -m pip install --quiet --disable-pip-version-check "$work/src"

echo "== installed: no development package"
"$work/venv/bin/python" -m pip list --format=freeze --disable-pip-version-check >"$work/installed.txt"
"$python" "$root/scripts/no-dev-packages.py" "$root/pyproject.toml" "$work/installed.txt"
du -sh "$work/venv" | sed 's/^/venv size: /'
echo "largest:" $(du -sm "$work"/venv/lib/python3*/site-packages/* | sort -rn | head -n 8 |
  awk '{n = $2; sub(".*/", "", n); printf "%s %s MB, ", n, $1}')

echo "== otklik --help, check-config on the example"
"$work/venv/bin/otklik" --help >/dev/null
(cd / && "$work/venv/bin/otklik" check-config -c "$work/src/config.example.yaml" >/dev/null)
"$work/venv/bin/otklik" version

echo "== the container's config (deploy/container-config.sh), as the image checks it"
mkdir "$work/etc"
sh "$work/src/deploy/container-config.sh" "$work/src/config.example.yaml" "$work/etc/config.yaml"
cp -r "$work/src/playbooks" "$work/etc/"
"$work/venv/bin/otklik" check-config -c "$work/etc/config.yaml" >/dev/null

echo "== otklik run until /healthz answers (from /, as systemd starts it)"
read -r api metrics < <("$python" -c '
import socket
ports = []
for _ in range(2):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); ports.append(s.getsockname()[1]); s.close()
print(*ports)')
sed -e "s|listen: 127.0.0.1:8080|listen: 127.0.0.1:$api|" \
    -e "s|listen: 127.0.0.1:9108|listen: 127.0.0.1:$metrics|" \
    -e "s|log_format: plain|log_format: json|" \
    "$work/src/config.example.yaml" >"$work/src/config.yaml"
(cd / && exec env -u OTKLIK_DATA_KEY -u OTKLIK_INDEX_KEY \
  "$work/venv/bin/otklik" run -c "$work/src/config.yaml" >"$work/run.log" 2>&1) &
bot_pid=$!
for _ in $(seq 120); do
  if "$python" -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$api/healthz', timeout=2)" 2>/dev/null; then
    break
  fi
  kill -0 "$bot_pid" 2>/dev/null || { cat "$work/run.log"; echo "FAIL: otklik run exited"; exit 1; }
  sleep 1
done
"$python" -c "import urllib.request as u; print('healthz:', u.urlopen('http://127.0.0.1:$api/healthz').read().decode())"
[[ -f $work/src/data/otklik.db ]] || { echo "FAIL: the database is not beside the config"; exit 1; }
head -n 1 "$work/run.log" | "$python" -c 'import json, sys; r = json.loads(sys.stdin.readline()); print("first log line (json):", r["level"], r["logger"])'
kill "$bot_pid"; wait "$bot_pid" || true; bot_pid=

if $docker; then
  echo "== docker build and compose up until healthy"
  keys=$("$work/venv/bin/otklik" keys generate | grep '^OTKLIK_')
  api_token=$("$python" -c 'import secrets; print(secrets.token_hex(32))')
  {
    echo "$keys"
    echo "OTKLIK_DB_PASSWORD=$("$python" -c 'import secrets; print(secrets.token_hex(16))')"
    echo "OTKLIK_API_TOKEN_MONITORING=$api_token"
  } >"$work/src/deploy/.env"
  compose=(docker compose -f "$work/src/deploy/compose.yaml" -p otklik-check)
  "${compose[@]}" up -d --build
  for _ in $(seq 60); do
    status=$(docker inspect --format '{{.State.Health.Status}}' "$("${compose[@]}" ps -q otklik)")
    [[ $status == healthy ]] && break
    sleep 5
  done
  "${compose[@]}" ps
  [[ $status == healthy ]] || { "${compose[@]}" logs otklik | tail -n 40; echo "FAIL: $status"; exit 1; }
  docker image ls otklik:0.1.0
  echo "== one mention through the published API, stored in PostgreSQL; the bot not root"
  OTKLIK_API_TOKEN=$api_token "$python" - <<'PY'
import json, os, urllib.request
body = {"external_id": "check-1", "text": "Третий день нет отопления!",
        "author": {"id": "id42", "name": "Пётр Сидоров", "channel": "vk"}}
req = urllib.request.Request(
    "http://127.0.0.1:8080/api/v1/mentions", data=json.dumps(body).encode(),
    headers={"Authorization": f"Bearer {os.environ['OTKLIK_API_TOKEN']}",
             "Content-Type": "application/json"})
with urllib.request.urlopen(req, timeout=30) as answer:
    result = json.load(answer)
    print("POST /api/v1/mentions:", answer.status, result)
    if answer.status != 202 or result["accepted"] != 1:
        raise SystemExit("FAIL: the mention was not accepted")
PY
  stored=$("${compose[@]}" exec -T postgres psql -U otklik -d otklik -tAc 'select count(*) from mentions')
  echo "mentions in PostgreSQL: $stored"
  [[ $stored == 1 ]] || { echo "FAIL: expected 1 mention in PostgreSQL"; exit 1; }
  uid=$("${compose[@]}" exec -T otklik id -u)
  echo "the bot's uid: $uid"
  [[ $uid != 0 ]] || { echo "FAIL: the bot runs as root"; exit 1; }
fi
echo "OK"
