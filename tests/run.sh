#!/usr/bin/env bash
# Cairn's test command (the README's, and the only thing .ci/run calls): builds the test environment's
# binaries if they are not cached, then runs every test. The integration tests start a real control plane
# and S3 server on loopback once per run and stop them when the run ends.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/env/build-deps.sh
cargo test --workspace --locked
