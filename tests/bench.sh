#!/usr/bin/env bash
# Cairn's benchmarks (commands that print figures, never assertions): builds release binaries and runs
# them against a fresh local test environment. Figures and the machine go into docs/benchmarks.md.
#   bash tests/bench.sh backup [--sizes 5000,20000]
#   bash tests/bench.sh restore [--objects 20000]
#   bash tests/bench.sh server [--objects 20000 --backups 1]   (--backups 200: one server process, 200 backups in a row)
#   bash tests/bench.sh sync [--backups 10000 --period 2s]   (a fresh server syncing a bucket of that many backups)
#   bash tests/bench.sh drain [--nodes 20 --pods-per-node 30 --concurrency 1,4,10]   (builds kubectl too)
#   bash tests/bench.sh images [--nodes 500 --images 200]
#   bash tests/bench.sh velero [--sizes 5000,20000]   (builds Velero and its AWS plugin too: build-velero.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = drain ]; then export CAIRN_BUILD_KUBECTL=1; fi
bash tests/env/build-deps.sh
if [ "${1:-}" = velero ]; then
  velero_paths=$(bash tests/env/build-velero.sh)
  set -- "$@" --velero "$(sed -n 1p <<<"$velero_paths")" --plugin-dir "$(sed -n 2p <<<"$velero_paths")"
fi
cargo build --release --quiet -p backup-cli -p backup-server -p cairn-tests --bin cairn --bin backup-server --bin cairn-bench
exec target/release/cairn-bench "$@" --cairn target/release/cairn
