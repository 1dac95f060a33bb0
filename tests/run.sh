#!/usr/bin/env bash
# Cairn's test command (the README's, and the only thing .ci/run calls): checks the code is formatted, builds
# the test environment's binaries if they are not cached (and installs protoc), checks the code is free of
# clippy warnings and documented without broken links, then runs every test. The integration tests start a
# real control plane and S3 server on loopback once per run and stop them when the run ends.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { echo "cairn tests: $*" >&2; }
cargo fmt --all --check || { say "the code is not formatted; run cargo fmt"; exit 1; }
# First: it also installs protoc, which building the CRI client needs.
bash tests/env/build-deps.sh
cargo clippy --workspace --all-targets --locked -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet
cargo test --workspace --locked
