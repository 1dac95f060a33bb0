#!/usr/bin/env bash
# Cairn's main job, end to end, on a throwaway local cluster: brings up a real control plane and S3 server
# on loopback, shows the cluster and the (empty) bucket, and takes everything down again at the end.
# With --keep the environment stays up; stop it with: tests/env/cairn-env --state DIR down
set -euo pipefail
cd "$(dirname "$0")/.."
keep=false
[ "${1:-}" = "--keep" ] && keep=true

bash tests/env/build-deps.sh
echo "== building cairn"
cargo build --quiet -p backup-cli -p cairn-tests --bin cairn --bin cairn-testenv
testenv=target/debug/cairn-testenv
state=$(mktemp -d -t cairn-demo.XXXXXX)
if [ "$keep" = false ]; then
  trap '"$testenv" --state "$state" down' EXIT
fi

echo "== starting a local cluster (etcd, kube-apiserver, kube-controller-manager, kube-scheduler) and an S3 server"
"$testenv" --state "$state" up >/dev/null
eval "$("$testenv" --state "$state" env)"
echo "== the cluster and the bucket"
"$testenv" --state "$state" status
echo "== cairn"
target/debug/cairn version
if [ "$keep" = true ]; then
  echo "== the environment stays up; to use it: eval \"\$($testenv --state $state env)\""
  echo "   to stop it: $testenv --state $state down"
fi
