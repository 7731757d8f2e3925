#!/usr/bin/env bash
# The test command (README, and what CI runs): installs the test tools, then format, lints,
# every test (unit, integration against librdkafka's mock cluster, end to end with the agent
# binary and a tansu broker process), the benchmark's smoke run (bench/tests/smoke.rs: every
# installed target delivers every line; no timing judged), the package test
# (scripts/package-test.sh) and the docs.
set -euo pipefail
cd "$(dirname "$0")/.."
export TANSU_BIN="$(scripts/install-tools.sh)"
scripts/install-peers.sh   # Kafka Connect jars, Filebeat 8.1.3 and rsvg-convert, for the benchmark's smoke run
# The peers were just installed: the smoke run must measure them, not skip them.
export BENCH_REQUIRE_PEERS=1
export CARGO_TERM_COLOR=never
echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo test"
cargo test --workspace
echo "== package test (builds the .deb, dpkg -i, systemd-analyze verify, purge)"
scripts/package-test.sh
echo "== cargo doc"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet
echo "== all checks passed"
