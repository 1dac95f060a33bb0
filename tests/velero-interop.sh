#!/usr/bin/env bash
# Velero restores a backup Cairn wrote with --format velero: a checked script (not part of the test suite,
# which does not build Velero). On a throwaway local cluster with the S3 server: loads the sample workloads
# into namespace shop, backs them up with `cairn backup create --format velero` into a bucket prefix, starts
# the real Velero server (built by tests/env/build-velero.sh, run outside the cluster) on a
# BackupStorageLocation over the same prefix, waits until Velero's sync shows the backup, restores it with
# `velero restore create --namespace-mappings shop:shop-velero --wait`, and compares what came back with
# what Cairn archived. Then the other way: Velero backs shop up, and its backup is restored in place once by
# Cairn and once by Velero (the namespace deleted between), each result dumped and compared field by field
# (spec, data, labels and annotations of Velero's and Cairn's own aside, node ports, field managers).
# Exit 0 only when Velero restored every object Cairn's resource list names and both restores agree.
# Velero's server always listens on :8080: run one of this script or `bench.sh velero` at a time.
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

echo "== the other way: a Service with an explicit node port, applied server-side by manager team-deploy"
port=$((30000 + RANDOM % 2700))
printf 'apiVersion: v1\nkind: Service\nmetadata: {name: shop-fixed-port, namespace: shop}\nspec:\n  type: NodePort\n  selector: {app: shop}\n  ports: [{name: http, port: 8081, targetPort: 80, nodePort: %s}]\n' "$port" \
  | "$kubectl" apply --server-side --field-manager team-deploy -f - >/dev/null
echo "== velero backup create vshop --include-namespaces shop --wait"
"$velero" -n velero backup create vshop --include-namespaces shop --snapshot-volumes=false --wait >/dev/null
"$velero" -n velero backup get vshop
kinds=configmaps,secrets,serviceaccounts,services,deployments,statefulsets,daemonsets,persistentvolumeclaims,roles,rolebindings,widgets
dump() { "$kubectl" -n shop get "$kinds" -o json >"$1"; }
echo "== Cairn restores Velero's backup in place"
"$testenv" --state "$state" delete-namespace shop >/dev/null
"$cairn" restore create cairn-from-velero --from-backup vshop >/dev/null
dump "$state/by-cairn.json"
echo "== Velero restores its backup in place"
"$testenv" --state "$state" delete-namespace shop >/dev/null
"$velero" -n velero restore create velero-from-velero --from-backup vshop --wait >/dev/null
dump "$state/by-velero.json"
echo "== the two restores, field by field"
python3 - "$state/by-cairn.json" "$state/by-velero.json" <<'PY'
import json, sys

def own(key):
    return key.startswith(("velero.io/", "cairn.dev/")) or key in ("deployment.kubernetes.io/revision",)

def normal(item):
    meta = item.get("metadata", {})
    managers = sorted({(m.get("manager"), m.get("operation")) for m in meta.get("managedFields", [])
                       if m.get("manager") not in ("kube-controller-manager", "kube-apiserver", "velero-server", "cairn", "unknown")})
    spec = item.get("spec", {})
    if item["kind"] == "Service":
        spec = {k: v for k, v in spec.items() if k not in ("clusterIP", "clusterIPs")}
        if meta["name"] != "shop-fixed-port":
            # Allocated node ports are allocated again by either restore: only that they exist compares.
            spec["ports"] = [dict(p, nodePort="allocated" if p.get("nodePort") else None) for p in spec.get("ports", [])]
    if item["kind"] == "PersistentVolumeClaim":
        spec = {k: v for k, v in spec.items() if k != "volumeName"}
    return {
        "labels": {k: v for k, v in (meta.get("labels") or {}).items() if not own(k)},
        "annotations": {k: v for k, v in (meta.get("annotations") or {}).items() if not own(k) and not k.startswith("pv.kubernetes.io/")},
        "spec": spec, "data": item.get("data"), "rules": item.get("rules"), "subjects": item.get("subjects"),
        "managers": managers,
    }

def load(path):
    return {(i["kind"], i["metadata"]["name"]): normal(i) for i in json.load(open(path))["items"]}

cairn, velero = load(sys.argv[1]), load(sys.argv[2])
differ = 0
for key in sorted(set(cairn) | set(velero)):
    a, b = cairn.get(key), velero.get(key)
    if a is None or b is None:
        print(f"   ONLY BY {'VELERO' if a is None else 'CAIRN'}  {key[0]}/{key[1]}")
        differ += 1
        continue
    fields = [f for f in a if a[f] != b[f]]
    if fields:
        differ += 1
        print(f"   DIFFERS  {key[0]}/{key[1]}: {', '.join(fields)}")
        for f in fields:
            print(f"      cairn:  {json.dumps(a[f], sort_keys=True)[:300]}")
            print(f"      velero: {json.dumps(b[f], sort_keys=True)[:300]}")
    else:
        print(f"   same     {key[0]}/{key[1]}")
print(f"{len(set(cairn) | set(velero))} objects compared, {differ} differ")
sys.exit(1 if differ else 0)
PY
