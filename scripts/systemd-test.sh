#!/usr/bin/env bash
# The installed unit under a real systemd (run by scripts/package-test.sh while the package is
# installed). These machines have no systemd as PID 1, so the test boots one: /lib/systemd/systemd
# as PID 1 of a new PID and mount namespace, told it runs in a container and to start
# agent.service. The unit is the one the package installed, byte for byte, with all its
# sandboxing (User=agent, SupplementaryGroups=adm, ProtectSystem=strict, the system call filter).
#
# That systemd must not set up the machine: started normally, agent.service's default
# dependencies pull in sysinit.target (tmpfiles, sysctl, kernel modules...), and
# systemd-tmpfiles --remove empties /tmp on the shared file system (seen here). So its unit search
# path (SYSTEMD_UNIT_PATH) holds only the unit under test and empty stand-ins for the targets and
# the slice it names, and /tmp, /var/tmp and /run are fresh tmpfs in its mount namespace.
#
# Checks, each through systemctl: the agent starts and stays active; it runs as the agent user;
# it reads a file only root and adm may read; its lines go through a tansu broker and come back
# through the agent's own sink into /var/lib/agent; /healthz says ready; `systemctl reload` applies
# a changed config (a new input's lines arrive); `systemctl stop` ends it with status 0.
# Needs root, the package installed, and TANSU_BIN (scripts/install-tools.sh prints its path).
set -euo pipefail
fail() { echo "systemd test FAILED: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || fail "must run as root"
dpkg -s agent >/dev/null 2>&1 || fail "the agent package is not installed"
tansu="${TANSU_BIN:?set TANSU_BIN to the tansu binary (scripts/install-tools.sh prints its path)}"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_until() { # seconds, command...: true once the command succeeds, false after the seconds
  local n=$(($1 * 5))
  shift
  for _ in $(seq "$n"); do "$@" && return 0; sleep 0.2; done
  return 1
}

work="$(mktemp -d)"
logs=/var/log/agent-systemd-test
# Its own data directory under the unit's StateDirectory (the only place it may write): no
# registry of an earlier run decides what is read.
data="/var/lib/agent/systemd-test-$$"
sink="$data/sink.out"
sd=""
tansu_pid=""
cleanup() {
  if [ -n "$sd" ]; then
    # Killing the namespace's PID 1 ends every process in it (the agent too).
    local init
    init="$(pgrep -P "$sd" -x systemd || true)"
    [ -z "$init" ] || kill -KILL "$init" 2>/dev/null || true
    kill -KILL "$sd" 2>/dev/null || true
    wait "$sd" 2>/dev/null || true
  fi
  if [ -n "$tansu_pid" ]; then
    kill "$tansu_pid" 2>/dev/null || true
    wait "$tansu_pid" 2>/dev/null || true
  fi
  [ ! -f "$work/agent.yml.orig" ] || cp -p "$work/agent.yml.orig" /etc/agent/agent.yml
  rm -rf "$work" "$logs" "$data" "${units:-}"
  return 0
}
trap cleanup EXIT

kport="$(free_port)"
hport="$(free_port)"
"$tansu" broker --listener-url "tcp://127.0.0.1:$kport" --advertised-listener-url "tcp://127.0.0.1:$kport" \
  >"$work/tansu.log" 2>&1 &
tansu_pid=$!
wait_until 20 bash -c "exec 3<>/dev/tcp/127.0.0.1/$kport" 2>/dev/null || fail "tansu does not listen: $(cat "$work/tansu.log")"
"$tansu" topic create logs --partitions 1 --broker "tcp://127.0.0.1:$kport" >/dev/null

# A log directory and file as most of /var/log: readable by root and adm only.
mkdir -p "$logs"
printf 'systemd line %s\n' 1 2 3 >"$logs/app.log"
chown -R root:adm "$logs"
chmod 0750 "$logs"
chmod 0640 "$logs/app.log"

[ -f /etc/agent/agent.yml ] && cp -p /etc/agent/agent.yml "$work/agent.yml.orig"
config() { # the input globs
  cat >/etc/agent/agent.yml <<EOF
path:
  data: $data
inputs:
  - id: app
    paths: [$1]
    check_interval: 200ms
output:
  kafka:
    hosts: ["127.0.0.1:$kport"]
    topic: logs
    codec: raw
sinks:
  - id: back
    topics: [logs]
    file: $sink
    hosts: ["127.0.0.1:$kport"]
    group_id: systemd-test
    initial_offset: earliest
    commit_interval: 200ms
http:
  enabled: true
  port: $hport
EOF
  chown root:agent /etc/agent/agent.yml
  chmod 0640 /etc/agent/agent.yml
}
config "\"$logs/app.log\""

echo "== booting systemd (PID 1 of a new PID and mount namespace) with agent.service only"
# Outside /tmp, which the namespace covers with a fresh tmpfs.
units="$(mktemp -d /var/lib/agent-systemd-test-units.XXXXXX)"
cp -p /lib/systemd/system/agent.service "$units/"
for target in sysinit basic shutdown network network-online; do
  printf '[Unit]\nDescription=stand-in for %s.target (systemd-test.sh)\nDefaultDependencies=no\n' "$target" \
    >"$units/$target.target"
done
printf '[Unit]\nDescription=System Slice\nDefaultDependencies=no\n' >"$units/system.slice"
unshare --pid --fork --mount --mount-proc env SYSTEMD_UNIT_PATH="$units" container=agent-test sh -c '
  for d in /run /tmp /var/tmp; do mount -t tmpfs tmpfs "$d" || exit 1; done
  exec /lib/systemd/systemd --system --unit=agent.service --log-target=null' &
sd=$!
pid1() { pgrep -P "$sd" -x systemd; }
wait_until 20 pid1 >/dev/null || fail "systemd did not start"
in_sd() { nsenter -t "$(pid1)" -m -p "$@"; }
active() { [ "$(in_sd systemctl is-active agent.service 2>/dev/null)" = active ]; }
status() { in_sd systemctl status agent.service --no-pager 2>&1 | tail -20; }
wait_until 60 active || fail "agent.service is not active: $(status)"
sink_has() { [ -f "$sink" ] && [ "$(grep -c "$1" "$sink")" -ge "$2" ]; }
wait_until 60 sink_has "systemd line" 3 || fail "the three lines did not come back through the sink: $(status)"

# It runs as the agent user, with adm (that is how it read the file).
main="$(in_sd systemctl show -p MainPID --value agent.service)"
uid="$(in_sd awk '/^Uid:/ {print $2}' "/proc/$main/status")"
[ "$uid" = "$(id -u agent)" ] || fail "the agent runs as uid $uid, not agent ($(id -u agent))"
in_sd grep -q "^Groups:.*\b$(getent group adm | cut -d: -f3)\b" "/proc/$main/status" || fail "the agent is not in adm"

# In a subshell: a failed connection must not end the script.
health() (
  exec 3<>"/dev/tcp/127.0.0.1/$hport" || exit 1
  printf 'GET /healthz HTTP/1.0\r\n\r\n' >&3
  cat <&3
)
ready() { health 2>/dev/null | grep -q '"status":"ready"'; }
wait_until 20 ready || fail "/healthz does not say ready: $(health 2>&1 | tail -1)"

echo "== systemctl reload applies a changed config"
printf 'reloaded line %s\n' 1 2 >"$logs/other.log"
chown root:adm "$logs/other.log"
chmod 0640 "$logs/other.log"
config "\"$logs/app.log\", \"$logs/other.log\""
in_sd systemctl reload agent.service
wait_until 60 sink_has "reloaded line" 2 || fail "the new input's lines did not arrive after the reload: $(status)"
[ "$(in_sd systemctl show -p MainPID --value agent.service)" = "$main" ] || fail "the reload restarted the process"
[ "$(grep -c "systemd line" "$sink")" = 3 ] || fail "lines sent twice across the reload: $(cat "$sink")"

echo "== systemctl stop ends it cleanly"
in_sd systemctl stop agent.service
[ "$(in_sd systemctl show -p Result --value agent.service)" = success ] || fail "stop result: $(in_sd systemctl show -p Result --value agent.service)"
[ "$(in_sd systemctl show -p ExecMainStatus --value agent.service)" = 0 ] || fail "exit status $(in_sd systemctl show -p ExecMainStatus --value agent.service)"
echo "systemd test passed: active as agent (uid $uid, adm), 5 lines through Kafka and back, reload applied, clean stop"
