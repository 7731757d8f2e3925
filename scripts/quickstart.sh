#!/usr/bin/env bash
# Quick start: starts a local Kafka-protocol broker (tansu), writes sample log and JSON-lines
# files, runs the agent on them, prints the events read back from the topic, and stops cleanly.
set -euo pipefail
cd "$(dirname "$0")/.."
tansu="$(scripts/install-tools.sh)"
echo "== building the agent (release)"
cargo build --release -q -p agent -p bench
work="$(mktemp -d /tmp/agent-quickstart.XXXXXX)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
cleanup() {
  [ -n "${agent_pid:-}" ] && kill "$agent_pid" 2>/dev/null || true
  [ -n "${tansu_pid:-}" ] && kill "$tansu_pid" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup EXIT

echo "== starting tansu on 127.0.0.1:$port"
"$tansu" broker --listener-url "tcp://127.0.0.1:$port" --advertised-listener-url "tcp://127.0.0.1:$port" \
  >"$work/tansu.log" 2>&1 &
tansu_pid=$!
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
"$tansu" topic create quickstart --partitions 3 --broker "tcp://127.0.0.1:$port" >/dev/null

echo "== writing sample files under $work/logs"
mkdir -p "$work/logs"
for i in $(seq 1 5); do
  echo "127.0.0.1 - - [22/Nov/2026:10:00:0$i +0000] \"GET /item/$i HTTP/1.1\" 200 $((i * 100))"
done >"$work/logs/access.log"
printf '%s\n' '{"level":"info","msg":"service started","port":8080}' \
  '{"level":"warn","msg":"slow request","ms":1200}' \
  'this line is not JSON' >"$work/logs/app.json"

cat >"$work/agent.yml" <<YAML
path:
  data: $work/data
registry:
  flush: 1s
inputs:
  - id: access
    paths: ["$work/logs/*.log"]
    fields: {service: web}
  - id: app
    paths: ["$work/logs/*.json"]
    parsers:
      - ndjson:
          message_key: msg
output:
  kafka:
    hosts: ["127.0.0.1:$port"]
    topic: quickstart
    compression: gzip
YAML
echo "== config: $work/agent.yml"
target/release/agent test config -c "$work/agent.yml"

echo "== running the agent"
target/release/agent -c "$work/agent.yml" 2>"$work/agent.log" &
agent_pid=$!

echo "== events read back from topic 'quickstart':"
target/release/bench consume --bootstrap "127.0.0.1:$port" --topic quickstart --partitions 3 --expect 8 --timeout 30

echo "== stopping the agent (SIGTERM)"
kill -TERM "$agent_pid"
wait "$agent_pid" && echo "agent exited with status 0"
agent_pid=
echo "== registry ($work/data/registry/registry.json):"
cat "$work/data/registry/registry.json"; echo
echo "== agent log: $work/agent.log"
