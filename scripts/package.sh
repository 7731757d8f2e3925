#!/usr/bin/env bash
# Builds the Debian package with cargo-deb (installed into .tools/cargo-deb on first use) and
# prints the path of the .deb. The package holds /usr/bin/agent, /etc/agent/agent.yml (a
# conffile), the systemd unit and the docs; see packaging/.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cargo_deb="$root/.tools/cargo-deb/bin/cargo-deb"
if [ ! -x "$cargo_deb" ]; then
  echo "installing cargo-deb 3.8.0 into .tools/cargo-deb" >&2
  cargo install --quiet --locked cargo-deb --version 3.8.0 --root "$root/.tools/cargo-deb" >&2
fi
cd "$root"
"$cargo_deb" --version >&2
# --output keeps the name stable for the caller; --strip drops the line tables (9 MB, not 50).
deb="$root/target/debian/agent.deb"
"$cargo_deb" -p agent --quiet --strip --output "$deb" >&2
echo "$deb"
