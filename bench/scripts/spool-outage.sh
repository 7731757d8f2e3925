#!/bin/bash
# Spool throughput with the release agent: Kafka (tansu) is killed, a log file is copied in and
# spooled, tansu starts again and the spool is replayed. Prints the spool and replay times and the
# agent's spool log lines. Not yet a `bench run` case (single run, no peer): see README.
#
#   bash bench/scripts/spool-outage.sh FILE     (e.g. a corpus file under bench/cache/, made by `bench run`)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
FILE=${1:?usage: spool-outage.sh LOGFILE}
TANSU=$(bash "$ROOT/scripts/install-tools.sh" | tail -1)
AGENT=$ROOT/target/release/agent
[ -x "$AGENT" ] || cargo build --release -p agent --manifest-path "$ROOT/Cargo.toml"
WORK=$(mktemp -d)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
trap 'kill $AP $TP 2>/dev/null || true; rm -rf "$WORK"' EXIT
start_tansu() {
  "$TANSU" broker --listener-url tcp://127.0.0.1:$PORT --advertised-listener-url tcp://127.0.0.1:$PORT >/dev/null 2>&1 &
  TP=$!
  until (echo > /dev/tcp/127.0.0.1/$PORT) 2>/dev/null; do sleep 0.1; done
  "$TANSU" topic create spool --partitions 3 --broker tcp://127.0.0.1:$PORT >/dev/null
}
offset() { python3 -c "import json,sys;e=json.load(open('$WORK/data/registry/registry.json'))['entries'];print(e[0]['offset'] if e else 0)" 2>/dev/null || echo 0; }
mkdir -p "$WORK/logs"
cat > "$WORK/agent.yml" <<EOT
path:
  data: $WORK/data
logging:
  level: info
  metrics:
    period: 1s
inputs:
  - id: spool-bench
    paths: [$WORK/logs/*.log]
    check_interval: 1s
output:
  kafka:
    hosts: ["127.0.0.1:$PORT"]
    topic: spool
    codec: raw
    compression: gzip
    compression_level: 6
EOT
start_tansu
"$AGENT" -c "$WORK/agent.yml" 2> "$WORK/agent.log" & AP=$!
sleep 2
kill -9 $TP; wait $TP 2>/dev/null || true
t0=$(date +%s.%N)
cp "$FILE" "$WORK/logs/a.log"
SIZE=$(stat -c %s "$WORK/logs/a.log")
until [ "$(offset)" = "$SIZE" ]; do sleep 0.1; done
t1=$(date +%s.%N)
echo "spooled $SIZE bytes in $(echo "$t1 - $t0" | bc) s (including the time until Kafka counts as unreachable); spool on disk: $(du -sb "$WORK/data/spool" | cut -f1) bytes"
start_tansu
t2=$(date +%s.%N)
while ls "$WORK"/data/spool/*.seg >/dev/null 2>&1; do sleep 0.1; done
t3=$(date +%s.%N)
echo "replayed in $(echo "$t3 - $t2" | bc) s"
kill -TERM $AP; wait $AP || true
grep -E "spooling|answers|replayed|stopped" "$WORK/agent.log" | cut -c1-400
