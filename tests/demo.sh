#!/usr/bin/env bash
# Cairn's main job, end to end, on a throwaway local cluster: brings up a real control plane (etcd,
# kube-apiserver, kube-controller-manager, kube-scheduler) on loopback, loads the seed's sample workloads,
# backs them up into the embedded default storage (a local directory) and shows what was saved, deletes the
# namespace, previews the restore, restores it in place and into a mapped namespace, and shows what came back.
# Everything but the backup goes away at the end; with --keep the cluster stays up too.
set -euo pipefail
cd "$(dirname "$0")/.."
keep=false
[ "${1:-}" = "--keep" ] && keep=true

bash tests/env/build-deps.sh
echo "== building cairn"
cargo build --quiet -p backup-cli -p cairn-tests --bin cairn --bin cairn-testenv
testenv=target/debug/cairn-testenv
cairn=target/debug/cairn
state=$(mktemp -d -t cairn-demo.XXXXXX)
if [ "$keep" = false ]; then
  trap '"$testenv" --state "$state" down' EXIT
fi

echo "== starting a local cluster and an S3 server on loopback"
"$testenv" --state "$state" up >/dev/null
eval "$("$testenv" --state "$state" env)"
# The demo uses the embedded default storage, not the environment's S3 bucket.
unset CAIRN_STORAGE
"$testenv" --state "$state" status

echo "== loading the sample workloads into namespace shop"
"$testenv" --state "$state" apply -f tests/fixtures/sample-workloads.yaml --namespace shop

name="demo-$(date -u +%Y%m%d%H%M%S)"
echo "== cairn backup create $name --include-namespaces shop"
"$cairn" backup create "$name" --include-namespaces shop
echo "== cairn backup describe $name --details"
"$cairn" backup describe "$name" --details
echo "== cairn backup verify $name"
"$cairn" backup verify "$name"
echo "== cairn backup get"
"$cairn" backup get

echo "== disaster: deleting namespace shop"
"$testenv" --state "$state" delete-namespace shop
echo "== cairn restore create --from-backup $name --dry-run   (a preview: nothing changes)"
"$cairn" restore create "$name-preview" --from-backup "$name" --dry-run
echo "== cairn restore create shop-back --from-backup $name   (in place)"
"$cairn" restore create "$name-in-place" --from-backup "$name"
echo "== cairn restore create --from-backup $name --namespace-mappings shop:shop-copy"
"$cairn" restore create "$name-copy" --from-backup "$name" --namespace-mappings shop:shop-copy
echo "== cairn restore get"
"$cairn" restore get
"$testenv" --state "$state" status
echo "== the backup is stored in the embedded default storage: ${CAIRN_STORAGE_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/cairn/storage}"
if [ "$keep" = true ]; then
  echo "== the environment stays up; to use it: eval \"\$($testenv --state $state env)\""
  echo "   to stop it: $testenv --state $state down"
fi
