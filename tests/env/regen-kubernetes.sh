#!/usr/bin/env bash
# Regenerates go/kubernetes/go.mod for KUBERNETES_VERSION in versions.env.
# k8s.io/kubernetes pins its staging modules at v0.0.0 with local replaces that a dependent module
# ignores, so each one is replaced here by its published v0.Y.Z. The list comes from the module's own go.mod.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/versions.env"
export GOTOOLCHAIN=local
v=$KUBERNETES_VERSION
staging="v0.${v#v1.}"
modfile=$(go mod download -json "k8s.io/kubernetes@$v" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
cd "$here/go/kubernetes"
{
  echo "// Pins the Kubernetes binaries the tests run (kube-apiserver, kube-controller-manager,"
  echo "// kube-scheduler, and the kubelet of the real node). Regenerate with ../../regen-kubernetes.sh."
  echo "module cairn.dev/testenv/kubernetes"
  echo
  grep -E '^go ' "$modfile"
  echo
  echo "require k8s.io/kubernetes $v"
  echo
  echo "tool ("
  echo "	k8s.io/kubernetes/cmd/kube-apiserver"
  echo "	k8s.io/kubernetes/cmd/kube-controller-manager"
  echo "	k8s.io/kubernetes/cmd/kube-scheduler"
  echo "	k8s.io/kubernetes/cmd/kubelet"
  echo ")"
  echo
  echo "replace ("
  grep -E '=> ./staging' "$modfile" | awk -v s="$staging" '{print "\t" $1 " => " $1 " " s}'
  echo ")"
} > go.mod
rm -f go.sum
go mod tidy
echo "go/kubernetes/go.mod now pins k8s.io/kubernetes $v"
