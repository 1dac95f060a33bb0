#!/usr/bin/env bash
# Cairn's benchmarks (commands that print figures, never assertions): builds release binaries and runs
# them against a fresh local test environment. Figures and the machine go into docs/benchmarks.md.
#   bash tests/bench.sh backup [--sizes 5000,20000]
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/env/build-deps.sh
cargo build --release --quiet -p backup-cli -p cairn-tests --bin cairn --bin cairn-bench
exec target/release/cairn-bench "$@" --cairn target/release/cairn
