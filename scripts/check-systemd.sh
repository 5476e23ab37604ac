#!/usr/bin/env bash
# shellcheck disable=SC2016  # single-quoted scripts expand inside the container, not here
# The README's "Production install › systemd" steps, run as written in a Debian 12 container
# with systemd as PID 1, then checked: the unit active and /healthz 200, the bot running as
# otklik, the database under /var/lib/otklik and the rest of the system read-only to it, a
# restart and a crash (Restart=on-failure), the backup unit once, a clean stop, and no
# development package in /opt/otklik/venv.
#   sudo scripts/check-systemd.sh        # KEEP=1: leave the container running to look around
# Needs root, Docker and PyPI (or a mirror pip is set up for). Builds the image with
# scripts/container-standins/build-systemd.sh when it is missing (IMAGE=... for another).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
image=${IMAGE:-otklik-systemd-standin}
name=otklik-check-systemd-$$
work=$(mktemp -d)
cleanup() {
  if [[ ${KEEP:-} == 1 ]]; then
    echo "kept: docker exec -it $name bash; docker rm -f $name"
  else
    docker rm -f "$name" >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }
inside() { docker exec -i "$name" bash -euo pipefail -c "$1"; }

if ! docker image inspect "$image" >/dev/null 2>&1; then
  echo "== building $image"
  TAG=$image "$root/scripts/container-standins/build-systemd.sh"
fi

# The README's two shell blocks under **systemd.**, word for word.
awk '/^\*\*systemd\.\*\*/ {s = 1} /^\*\*Container\.\*\*/ {s = 0}
     s && /^```/ {b = !b; if (!b) n++; next}
     s && b {print > (dir "/block" n + 0 ".sh")}' dir="$work" "$root/README.md"
[[ -s $work/block0.sh && -s $work/block1.sh ]] || fail "no two shell blocks under **systemd.** in README.md"
# The backup timer's install lines from the head of its unit.
sed -n 's/^#   //p' "$root/deploy/otklik-backup.service" >"$work/backup.sh"

echo "== $image with systemd as PID 1"
# --privileged would give every capability; where dockerd's bounding set lacks one (a
# sandbox), runc refuses. All but CAP_SYS_RESOURCE, without seccomp, boots systemd too.
docker run -d --name "$name" --cap-add ALL --cap-drop SYS_RESOURCE \
  --security-opt seccomp=unconfined --security-opt apparmor=unconfined \
  --cgroupns=host -v /sys/fs/cgroup:/sys/fs/cgroup:rw --tmpfs /run --tmpfs /run/lock \
  "$image" /sbin/init >/dev/null
for _ in $(seq 60); do
  state=$(docker exec "$name" systemctl is-system-running 2>/dev/null || true)
  [[ $state == running || $state == degraded ]] && break
  sleep 1
done
echo "system: $state, $(docker exec "$name" systemctl --version | head -n 1)"
[[ $state == running ]] || { docker exec "$name" systemctl --failed --no-pager; fail "systemd: $state"; }

echo "== a checkout in /root/otklik"
(cd "$root" && tar -c --exclude=__pycache__ pyproject.toml README.md LICENSE config.example.yaml bot handlers store \
  playbooks deploy) | inside 'mkdir /root/otklik && tar -x -C /root/otklik'

echo "== README, first block"
sed 's/^/  /' "$work/block0.sh"
inside "cd /root/otklik && set -x && $(cat "$work/block0.sh")" >"$work/block0.log" 2>&1 ||
  { tail -n 30 "$work/block0.log"; fail "the README's first block"; }
grep -E '^\+ |^Successfully installed' "$work/block0.log" | cut -c 1-160

echo "== README, filled in: the keys into otklik.env, the data paths into config.yaml"
inside '
keys=$(/opt/otklik/venv/bin/otklik keys generate | grep ^OTKLIK_)
for key in OTKLIK_DATA_KEY OTKLIK_INDEX_KEY; do
  line=$(printf "%s\n" "$keys" | grep "^$key=")
  sed -i "s|^$key=\$|$line|" /etc/otklik/otklik.env
done
[ "$(grep -c "^OTKLIK_\(DATA\|INDEX\)_KEY=." /etc/otklik/otklik.env)" = 2 ]
sed -i -e "s|^  url: sqlite+aiosqlite:///data/otklik.db\$|  url: sqlite+aiosqlite:////var/lib/otklik/otklik.db|" \
  -e "s|^  path: data/models/sentiment.org.npz\$|  path: /var/lib/otklik/models/sentiment.org.npz|" \
  /etc/otklik/config.yaml
grep -q "^  url: sqlite+aiosqlite:////var/lib/otklik/otklik.db$" /etc/otklik/config.yaml
grep -q "^  path: /var/lib/otklik/models/sentiment.org.npz$" /etc/otklik/config.yaml
stat -c "%n %U:%G %a" /etc/otklik/otklik.env' || fail "filling in the env file or the config"

echo "== README, second block"
sed 's/^/  /' "$work/block1.sh"
inside "shopt -s expand_aliases && set -x && $(cat "$work/block1.sh")" >"$work/block1.log" 2>&1 ||
  { tail -n 30 "$work/block1.log"; fail "the README's second block"; }
grep -E '^\+ |^OK |^Created' "$work/block1.log" | cut -c 1-160

healthz() {  # waits for 200 from /healthz; prints the body
  inside 'for _ in $(seq 90); do
    body=$(curl -sf 127.0.0.1:8080/healthz) && { echo "$body"; exit 0; }
    sleep 1
  done; exit 1'
}
main_pid() { docker exec "$name" systemctl show -p MainPID --value otklik; }

echo "== active, /healthz, the journal"
body=$(healthz) || { inside 'journalctl -u otklik -n 40 --no-pager'; fail "no 200 from /healthz"; }
echo "systemctl is-active otklik: $(docker exec "$name" systemctl is-active otklik)"
echo "GET /healthz: 200 $body"
inside 'journalctl -u otklik -n 20 --no-pager -o cat' | cut -c 1-160

echo "== as otklik, writing only /var/lib/otklik"
pid=$(main_pid)
user=$(docker exec "$name" ps -o user= -p "$pid")
echo "main process $pid runs as: $user"
[[ $user == otklik ]] || fail "the bot runs as $user"
inside 'ls -l /var/lib/otklik'
inside 'test "$(stat -c %U /var/lib/otklik/otklik.db)" = otklik' ||
  fail "no database of otklik's under /var/lib/otklik"
# In the unit's own mount namespace: what ProtectSystem=strict and ReadWritePaths leave writable.
inside "nsenter -t $pid -m -- sh -c '
  for dir in /etc/otklik /opt/otklik /usr /var/lib/otklik; do
    if touch \$dir/.probe 2>/dev/null; then rm \$dir/.probe; echo \"\$dir writable\"
    else echo \"\$dir read-only\"; fi
  done'" | tee "$work/writable.txt"
grep -q '^/var/lib/otklik writable' "$work/writable.txt" || fail "/var/lib/otklik not writable"
[[ $(grep -c 'read-only$' "$work/writable.txt") == 3 ]] || fail "ProtectSystem=strict not in force"
inside "grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/$pid/status | tr '\n\t' '  '; echo"

echo "== restart, then a crash"
docker exec "$name" systemctl restart otklik
body=$(healthz) || fail "no 200 after the restart"
after=$(main_pid)
echo "systemctl restart otklik: pid $pid -> $after, /healthz 200"
[[ $after != "$pid" ]] || fail "the same process after a restart"
docker exec "$name" kill -9 "$after"
sleep 6  # RestartSec=5
body=$(healthz) || fail "not back after SIGKILL"
echo "kill -9 $after: back as $(main_pid), NRestarts=$(docker exec "$name" systemctl show -p NRestarts --value otklik)"

echo "== the backup unit, once"
sed 's/^/  /' "$work/backup.sh"
inside "cd /root/otklik && $(cat "$work/backup.sh")" >/dev/null 2>&1 || fail "installing the backup timer"
docker exec "$name" systemctl start otklik-backup.service ||
  { inside 'journalctl -u otklik-backup -n 20 --no-pager'; fail "otklik-backup.service"; }
inside 'journalctl -u otklik-backup --no-pager -o cat | head -n 2
file=/var/backups/otklik/otklik-$(date +%Y-%m-%d).db
ls -l "$file"
echo "integrity: $(sqlite3 "$file" "pragma integrity_check") revision: $(sqlite3 "$file" "select version_num from alembic_version")"
systemctl list-timers otklik-backup.timer --no-pager | head -n 2' || fail "no readable backup"

echo "== stop"
docker exec "$name" systemctl stop otklik
state=$(docker exec "$name" systemctl is-active otklik || true)
echo "systemctl stop otklik: $state, $(docker exec "$name" systemctl show -p Result --value otklik)"
[[ $state == inactive ]] || fail "otklik is $state after stop"

echo "== /opt/otklik/venv: no development package"
docker exec "$name" /opt/otklik/venv/bin/pip list --format=freeze --disable-pip-version-check \
  >"$work/installed.txt"
python3 "$root/scripts/no-dev-packages.py" "$root/pyproject.toml" "$work/installed.txt"
echo "OK"
