#!/usr/bin/env bash
# Velero restores a backup Cairn wrote with --format velero: a checked script (not part of the test suite,
# which does not build Velero). On a throwaway local cluster with the S3 server: loads the sample workloads
# into namespace shop, backs them up with `cairn backup create --format velero` into a bucket prefix, starts
# the real Velero server (built by tests/env/build-velero.sh, run outside the cluster) on a
# BackupStorageLocation over the same prefix, waits until Velero's sync shows the backup, restores it with
# `velero restore create --namespace-mappings shop:shop-velero --wait`, and compares what came back with
# what Cairn archived. Exit 0 only when Velero restored every object Cairn's resource list names.
set -euo pipefail
cd "$(dirname "$0")/.."
export CAIRN_BUILD_KUBECTL=1
bash tests/env/build-deps.sh
mapfile -t velero_paths < <(bash tests/env/build-velero.sh)
velero=${velero_paths[0]}
plugins=${velero_paths[1]}
cache=${CAIRN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cairn}
kubectl=$(ls "$cache"/kubectl-*/bin/kubectl | head -1)
cargo build --quiet -p backup-cli -p cairn-tests --bin cairn --bin cairn-testenv
testenv=target/debug/cairn-testenv
cairn=target/debug/cairn
state=$(mktemp -d -t cairn-velero-interop.XXXXXX)
velero_pid=
trap '[ -n "$velero_pid" ] && kill "$velero_pid" 2>/dev/null; "$testenv" --state "$state" down >/dev/null' EXIT

echo "== a local cluster and S3 server"
"$testenv" --state "$state" up >/dev/null
eval "$("$testenv" --state "$state" env)"
prefix=interop
export CAIRN_STORAGE="s3://$CAIRN_S3_BUCKET/$prefix?endpoint=$CAIRN_S3_ENDPOINT&region=$AWS_REGION"

echo "== the sample workloads in namespace shop, backed up by Cairn in Velero's layout too"
"$testenv" --state "$state" apply -f tests/fixtures/sample-workloads.yaml --namespace shop >/dev/null
sleep 3
"$cairn" backup create interop --format velero --include-namespaces shop

echo "== Velero $("$velero" version --client-only | awk '/Version/ {print $2}') outside the cluster, on the same bucket prefix"
"$velero" install --crds-only --dry-run -o yaml | "$kubectl" apply -f - >/dev/null
"$kubectl" create namespace velero >/dev/null
# Velero's restore actions read the image of its own Deployment (for pod volume restores); here it runs
# outside the cluster, so a Deployment with no replicas stands for it.
"$kubectl" -n velero create deployment velero --image="velero/velero:$("$velero" version --client-only | awk '/Version/ {print $2}')" --replicas=0 >/dev/null
printf '[default]\naws_access_key_id=%s\naws_secret_access_key=%s\n' "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" >"$state/cloud"
"$kubectl" -n velero create secret generic cloud-credentials --from-file=cloud="$state/cloud" >/dev/null
"$velero" -n velero backup-location create default --provider aws --bucket "$CAIRN_S3_BUCKET" --prefix "$prefix" \
  --default --credential cloud-credentials=cloud \
  --config "region=$AWS_REGION,s3Url=$CAIRN_S3_ENDPOINT,s3ForcePathStyle=true,checksumAlgorithm=" >/dev/null
mkdir -p "$state/velero-home"
TMPDIR="$state/velero-home" HOME="$state/velero-home" "$velero" server --kubeconfig "$KUBECONFIG" --namespace velero \
  --plugin-dir "$plugins" --features= --metrics-address 127.0.0.1:0 --profiler-address= \
  --backup-sync-period 5s --log-level info >"$state/velero.log" 2>&1 &
velero_pid=$!

echo "== waiting for Velero's sync to show backup interop"
for _ in $(seq 1 60); do
  phase=$("$kubectl" -n velero get backups.velero.io interop -o jsonpath='{.status.phase}' 2>/dev/null || true)
  [ "$phase" = Completed ] && break
  sleep 2
done
[ "$phase" = Completed ] || { echo "Velero did not sync backup interop (phase: ${phase:-none}); its log: $state/velero.log"; tail -20 "$state/velero.log"; exit 1; }
"$velero" -n velero backup get interop

echo "== velero restore create interop-back --from-backup interop --namespace-mappings shop:shop-velero --wait"
"$velero" -n velero restore create interop-back --from-backup interop --namespace-mappings shop:shop-velero --wait
"$velero" -n velero restore describe interop-back | sed -n '/^Phase/p;/^Total items/p;/^Items restored/p;/^Warnings/,/^$/p;/^Errors/,/^$/p'
restore_phase=$("$kubectl" -n velero get restores.velero.io interop-back -o jsonpath='{.status.phase}')

echo "== every object Cairn archived in shop, as Velero restored it into shop-velero"
missing=0
while read -r kind name; do
  if "$kubectl" -n shop-velero get "$kind" "$name" >/dev/null 2>&1; then
    echo "   restored  $kind/$name"
  else
    echo "   MISSING   $kind/$name"
    missing=$((missing + 1))
  fi
done < <("$cairn" backup describe interop --details -o json | python3 -c '
import json, sys
listed = json.load(sys.stdin)["resourceList"]
skip = {"Event", "Pod", "ReplicaSet", "EndpointSlice", "Endpoints", "ControllerRevision"}
for kind, names in listed.items():
    k = kind.rsplit("/", 1)[1]
    if k in skip:
        continue
    for n in names:
        ns, _, name = n.rpartition("/")
        if ns == "shop":
            print(k.lower(), name)
')
echo "Velero's restore: $restore_phase; objects missing: $missing"
[ "$restore_phase" = Completed ] || [ "$restore_phase" = PartiallyFailed ]
[ "$missing" = 0 ]
