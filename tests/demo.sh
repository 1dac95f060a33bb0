#!/usr/bin/env bash
# Cairn's main job, end to end, on a throwaway local cluster: brings up a real control plane (etcd,
# kube-apiserver, kube-controller-manager, kube-scheduler) on loopback, loads the seed's sample workloads,
# backs them up into the embedded default storage (a local directory) and shows what was saved (with a pod's
# backup hook), deletes the namespace, previews the restore, restores it in place (the pod's restore hooks: an
# init container first, a command once it runs) and into a mapped namespace, and shows what came back.
# Then the same with the server: Cairn's CRDs, a storage location on the same directory, backup-server run
# outside the cluster with the kubeconfig; the backups already stored appear as objects (bucket sync), a
# backup and a schedule run as objects, and the server's metrics show them.
# Everything but the backups goes away at the end; with --keep the cluster (and the server) stay up too.
set -euo pipefail
cd "$(dirname "$0")/.."
keep=false
[ "${1:-}" = "--keep" ] && keep=true

bash tests/env/build-deps.sh
echo "== building cairn"
cargo build --quiet -p backup-cli -p backup-server -p cairn-tests --bin cairn --bin backup-server --bin cairn-testenv
testenv=target/debug/cairn-testenv
cairn=target/debug/cairn
server=target/debug/backup-server
state=$(mktemp -d -t cairn-demo.XXXXXX)
server_pid=
if [ "$keep" = false ]; then
  trap '[ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; "$testenv" --state "$state" down' EXIT
fi

echo "== starting a local cluster (with one real node: containerd and a kubelet) and an S3 server on loopback"
"$testenv" --state "$state" up --node >/dev/null
eval "$("$testenv" --state "$state" env)"
# The demo uses the embedded default storage, not the environment's S3 bucket.
unset CAIRN_STORAGE
"$testenv" --state "$state" status

echo "== loading the sample workloads into namespace shop"
"$testenv" --state "$state" apply -f tests/fixtures/sample-workloads.yaml --namespace shop
"$testenv" --state "$state" apply -f tests/fixtures/node-workload.yaml --namespace shop
"$testenv" --state "$state" apply -f tests/fixtures/hooked-pod.yaml --namespace shop
echo "== the shop-worker Deployment's pods and the shop-db pod (with backup and restore hooks) run on the real node"
"$testenv" --state "$state" wait-running shop --count 3
echo "== cairn node list"
"$cairn" node list

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
echo "== the restored pods run on the real node again, in shop and in shop-copy"
"$testenv" --state "$state" wait-running shop --count 3
"$testenv" --state "$state" wait-running shop-copy --count 3
echo "== shop-db's restore hooks: the init container the hook added ran before the database (its log) ..."
"$testenv" --state "$state" logs shop shop-db --container restore-data
echo "== ... and the command ran in the database once it ran (cairn restore describe $name-in-place --details)"
"$cairn" restore describe "$name-in-place" --details | sed -n '/^Hooks:/,/^ACTION/{/^ACTION/!p}'

"$testenv" --state "$state" status
storage=${CAIRN_STORAGE_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/cairn/storage}
echo "== the backups are stored in the embedded default storage: $storage"

echo "== with a server: Cairn's CRDs and namespace cairn (what \`cairn install\` also applies)"
{
  printf 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: cairn\n---\n'
  for crd in deploy/crds/*.yaml; do cat "$crd"; echo ---; done
} | "$testenv" --state "$state" apply -f - | sed 's/^/   /'
echo "== cairn backup-location create default --provider local --bucket $storage --default"
"$cairn" backup-location create default --provider local --bucket "$storage" --default
port=$((20000 + RANDOM % 20000))
echo "== backup-server --namespace cairn --metrics-address 127.0.0.1:$port   (outside the cluster, log in $state/backup-server.log)"
"$server" --namespace cairn --metrics-address "127.0.0.1:$port" --backup-sync-period 2s >"$state/backup-server.log" 2>&1 &
server_pid=$!
sleep 3
echo "== cairn version"
"$cairn" version
echo "== cairn backup get   (the bucket is the source of truth: stored backups appear as objects)"
"$cairn" backup get
echo "== cairn backup create $name-server --include-namespaces shop --wait   (a Backup object the server runs)"
"$cairn" backup create "$name-server" --include-namespaces shop --wait
echo "== cairn schedule create shop-often --schedule '@every 10s' --include-namespaces shop --ttl 1h"
"$cairn" schedule create shop-often --schedule '@every 10s' --include-namespaces shop --ttl 1h
sleep 12
"$cairn" schedule pause shop-often
"$cairn" schedule get
echo "== cairn backup get   (with the schedule's backups, named shop-often-<time>)"
"$cairn" backup get
echo "== the server's metrics (http://127.0.0.1:$port/metrics)"
curl -fsS "http://127.0.0.1:$port/metrics" | grep -E '^cairn_(backup_(attempt|success)_total|backup_total)' | sed 's/^/   /' || true
if [ "$keep" = true ]; then
  echo "== the environment and the server (pid $server_pid) stay up; to use them: eval \"\$($testenv --state $state env)\""
  echo "   to stop them: kill $server_pid; $testenv --state $state down"
fi
