#!/usr/bin/env bash
# Builds the binaries of the local test environment once and caches them by version:
#   kube-apiserver, kube-controller-manager, kube-scheduler  (k8s.io/kubernetes, go/kubernetes/go.mod)
#   kubelet                                                  (k8s.io/kubernetes, go/kubernetes/go.mod: the real node)
#   etcd                                                     (go.etcd.io/etcd/server/v3, go/etcd/go.mod)
#   kwok, and its stages                                     (sigs.k8s.io/kwok, go/kwok/go.mod: simulated nodes)
#   helm                                                     (helm.sh/helm/v3, go/helm/go.mod: installs the chart)
#   kubectl, with CAIRN_BUILD_KUBECTL=1                      (k8s.io/kubernetes: the drain benchmark's baseline)
#   cairn-s3                                                 (tests/env/s3: s3s-fs from crates.io, an S3 server that checks SigV4)
# into ${CAIRN_CACHE:-~/.cache/cairn}/<component>-<version>/bin. A cached component is not rebuilt.
# Every failure prints one line that names what is missing or where the build log is, and exits 1.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/versions.env"
cache=${CAIRN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cairn}
logs="$cache/logs"
mkdir -p "$logs"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod

die() { echo "cairn test environment: $*" >&2; exit 1; }
say() { echo "cairn test environment: $*" >&2; }

command -v go >/dev/null || die "Go is not installed; it builds the test control plane. Install Go 1.26 or later (apt-get install golang-go, or go.dev/dl) and run again."
command -v cargo >/dev/null || die "cargo is not installed; it builds the S3 test server. Install Rust with rustup and run again."

# explain_failure LOG WHAT: one line naming the cause of a failed download or build.
explain_failure() {
  local log=$1 what=$2
  if grep -qE 'dial tcp|no such host|i/o timeout|connection refused|TLS handshake timeout|proxyconnect' "$log"; then
    die "the Go module proxy ($(go env GOPROXY)) is unreachable while fetching $what; check the network or GOPROXY. Log: $log"
  elif grep -qE 'failed to get .* from the registry|Couldn.t resolve host|spurious network error|failed to download' "$log"; then
    die "crates.io is unreachable while fetching $what; check the network or cargo's registry settings. Log: $log"
  elif grep -qE 'requires go >= |toolchain not available' "$log"; then
    die "$what needs a newer Go than $(go env GOVERSION); install it and run again. Log: $log"
  else
    die "building $what failed ($(grep -m1 -iE 'error|cannot|fatal' "$log" | cut -c1-160)). Log: $log"
  fi
}

# go_build DIR NAME VERSION LDFLAGS OUT PACKAGE...: builds packages of the module in DIR into the
# cache; OUT is a file name under bin/ for one package, or bin/ itself for several.
go_build() {
  local dir=$1 name=$2 version=$3 ldflags=$4 out=$5; shift 5
  local dest="$cache/$name-$version" log="$logs/$name-$version.log"
  [ -d "$dest/bin" ] && return 0
  say "building $name $version (first run only; log: $log)"
  rm -rf "$dest.partial"; mkdir -p "$dest.partial/bin"
  local start=$SECONDS
  ( cd "$here/go/$dir" && go mod download ) >"$log" 2>&1 || explain_failure "$log" "$name $version"
  ( cd "$here/go/$dir" && go build -trimpath -ldflags "$ldflags" -o "$dest.partial/bin/$out" "$@" ) >>"$log" 2>&1 \
    || explain_failure "$log" "$name $version"
  # The component's directory may exist already (KWOK's stages live beside its binary).
  mkdir -p "$dest" && mv "$dest.partial/bin" "$dest/bin" && rm -rf "$dest.partial"
  say "built $name $version in $((SECONDS - start)) s"
}

k8s_minor=${KUBERNETES_VERSION#v1.}; k8s_minor=${k8s_minor%%.*}
k8s_ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  k8s_ldflags="$k8s_ldflags -X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$k8s_minor -X $pkg.gitTreeState=clean"
done
grep -q "k8s.io/kubernetes $KUBERNETES_VERSION" "$here/go/kubernetes/go.mod" \
  || die "go/kubernetes/go.mod does not pin k8s.io/kubernetes $KUBERNETES_VERSION from versions.env; run tests/env/regen-kubernetes.sh."
go_build kubernetes kubernetes "$KUBERNETES_VERSION" "$k8s_ldflags" "" \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler

# kubectl only for the drain benchmark (tests/bench.sh drain sets CAIRN_BUILD_KUBECTL=1): tests never run it.
if [ "${CAIRN_BUILD_KUBECTL:-}" = 1 ]; then
  go_build kubernetes kubectl "$KUBERNETES_VERSION" "$k8s_ldflags" kubectl k8s.io/kubernetes/cmd/kubectl
fi

# The kubelet is cached apart, so that an environment without nodes never waits for it.
go_build kubernetes kubelet "$KUBERNETES_VERSION" "$k8s_ldflags" kubelet k8s.io/kubernetes/cmd/kubelet

grep -q "go.etcd.io/etcd/server/v3 $ETCD_VERSION" "$here/go/etcd/go.mod" \
  || die "go/etcd/go.mod does not pin go.etcd.io/etcd/server/v3 $ETCD_VERSION from versions.env; update it."
go_build etcd etcd "$ETCD_VERSION" "-s -w" etcd go.etcd.io/etcd/server/v3

grep -q "sigs.k8s.io/kwok $KWOK_VERSION" "$here/go/kwok/go.mod" \
  || die "go/kwok/go.mod does not pin sigs.k8s.io/kwok $KWOK_VERSION from versions.env; update it."
go_build kwok kwok "$KWOK_VERSION" "-s -w" kwok sigs.k8s.io/kwok/cmd/kwok
# KWOK's stages (node initialize and heartbeat, pod ready, complete and delete) come from its own module.
stages="$cache/kwok-$KWOK_VERSION/stages"
if [ ! -d "$stages" ]; then
  source=$(cd "$here/go/kwok" && go mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
  [ -d "$source/kustomize/stage" ] || die "the module sigs.k8s.io/kwok@$KWOK_VERSION has no kustomize/stage in the Go module cache"
  mkdir -p "$stages.partial"
  for stage in node/fast/node-initialize node/heartbeat-with-lease/node-heartbeat-with-lease \
      pod/fast/pod-ready pod/fast/pod-complete pod/fast/pod-delete; do
    cp "$source/kustomize/stage/$stage.yaml" "$stages.partial/"
  done
  mv "$stages.partial" "$stages"
fi

grep -q "helm.sh/helm/v3 $HELM_VERSION" "$here/go/helm/go.mod" \
  || die "go/helm/go.mod does not pin helm.sh/helm/v3 $HELM_VERSION from versions.env; update it."
go_build helm helm "$HELM_VERSION" "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" helm \
  helm.sh/helm/v3/cmd/helm

# The real node's runtime, from Debian's packages (the machine is root): containerd, runc, the CNI plugins,
# a static busybox for the test images, and the CA certificates the server's image carries; and protoc, which
# building the CRI client (crate k8s-cri) needs.
missing=""
for pair in containerd:containerd runc:runc /usr/lib/cni/bridge:containernetworking-plugins busybox:busybox-static \
    /etc/ssl/certs/ca-certificates.crt:ca-certificates protoc:protobuf-compiler; do
  tool=${pair%%:*} package=${pair#*:}
  if [ "${tool#/}" != "$tool" ]; then [ -e "$tool" ] || missing="$missing $package"
  else command -v "$tool" >/dev/null || missing="$missing $package"; fi
done
if [ -n "$missing" ]; then
  say "installing the node runtime from Debian's packages:$missing"
  log="$logs/node-packages.log"
  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing; } >"$log" 2>&1 \
    || die "installing$missing failed (is this Debian, as root, with its package mirrors reachable?). Log: $log"
fi

s3="$cache/cairn-s3-$S3S_FS_VERSION-r$CAIRN_S3_REVISION"
if [ ! -d "$s3/bin" ]; then
  log="$logs/cairn-s3-$S3S_FS_VERSION-r$CAIRN_S3_REVISION.log"
  say "building cairn-s3 (s3s-fs $S3S_FS_VERSION) (first run only; log: $log)"
  start=$SECONDS
  rm -rf "$s3.partial"
  cargo install --path "$here/s3" --locked --root "$s3.partial" >"$log" 2>&1 \
    || explain_failure "$log" "cairn-s3 (s3s-fs $S3S_FS_VERSION)"
  rm -f "$s3.partial/.crates.toml" "$s3.partial/.crates2.json"
  mv "$s3.partial" "$s3"
  say "built cairn-s3 (s3s-fs $S3S_FS_VERSION) in $((SECONDS - start)) s"
fi
