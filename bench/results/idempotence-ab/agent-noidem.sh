#!/bin/sh
# The same agent binary with the idempotent producer off (bench A/B): adds `idempotent: false`
# under output.kafka of the config it is given.
cfg="$2"
sed -i 's/^    required_acks: \(.*\)$/    required_acks: \1\n    idempotent: false/' "$cfg"
exec "${AGENT_BIN:-target/release/agent}" "$@"
