#!/bin/sh
# The same agent binary, idempotence off but at most 5 requests in flight (bench A/B).
cfg="$2"
sed -i 's/^    required_acks: \(.*\)$/    required_acks: \1\n    idempotent: false\n    librdkafka: {max.in.flight: "5"}/' "$cfg"
exec "${AGENT_BIN:-target/release/agent}" "$@"
