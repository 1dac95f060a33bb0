#!/usr/bin/env bash
# Builds Velero and its AWS object-store plugin once, for `tests/bench.sh velero` (Velero measured beside
# Cairn on the local test environment), and caches them by version:
#   velero                    (github.com/vmware-tanzu/velero/cmd/velero)
#                             -> ${CAIRN_CACHE:-~/.cache/cairn}/velero-<version>/bin/velero
#   velero-plugin-for-aws     (github.com/vmware-tanzu/velero-plugin-for-aws/velero-plugin-for-aws)
#                             -> ${CAIRN_CACHE:-~/.cache/cairn}/velero-plugin-for-aws-<version>/plugins/
#                                (the directory Velero's --plugin-dir names: it runs every program in it)
# Each is built from a temporary module that requires it, with its own go.mod's replace directives copied
# (a dependent module ignores them) plus REFUSED below; the module is kept beside the binary as a record.
# A cached component is not rebuilt. Prints the velero binary's path and the plugin directory on stdout, one
# a line. Failures print one line naming the cause and the log, and exit 1.
set -euo pipefail
VELERO_VERSION=${VELERO_VERSION:-v1.18.3}
VELERO_AWS_PLUGIN_VERSION=${VELERO_AWS_PLUGIN_VERSION:-v1.14.3}
# Module versions the Go module proxy refuses, each with a published neighbour that builds: "old new".
REFUSED=("k8s.io/cli-runtime v0.33.12 v0.33.10")

cache=${CAIRN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cairn}
logs="$cache/logs"
mkdir -p "$logs"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod

die() { echo "cairn velero build: $*" >&2; exit 1; }
say() { echo "cairn velero build: $*" >&2; }

command -v go >/dev/null || die "Go is not installed; it builds Velero. Install Go 1.26 or later and run again."

# explain_failure LOG WHAT: one line naming the cause of a failed download or build.
explain_failure() {
  local log=$1 what=$2
  if grep -qE 'dial tcp|no such host|i/o timeout|connection refused|TLS handshake timeout|proxyconnect' "$log"; then
    die "the Go module proxy ($(go env GOPROXY)) is unreachable while fetching $what; check the network or GOPROXY. Log: $log"
  elif grep -qE '(404|410) Not Found|not found: |unknown revision' "$log"; then
    die "the Go module proxy refuses a module $what needs ($(grep -m1 -E 'Not Found|not found: |unknown revision' "$log" | cut -c1-160)); add it to REFUSED in $0 with a published version. Log: $log"
  elif grep -qE 'requires go >= |toolchain not available' "$log"; then
    die "$what needs a newer Go than $(go env GOVERSION); install it and run again. Log: $log"
  else
    die "building $what failed ($(grep -m1 -iE 'error|cannot|fatal' "$log" | cut -c1-160)). Log: $log"
  fi
}

# module_replaces GOMOD: the replace directives of GOMOD as `old=new` arguments for `go mod edit -replace`,
# one a line; replacements by a local directory (which only exists in the module's own repository) are
# left out.
module_replaces() {
  awk '
    /^replace[ \t]*\($/ { block = 1; next }
    block && /^\)/ { block = 0; next }
    /^replace[ \t]/ { sub(/^replace[ \t]+/, ""); print; next }
    block { print }
  ' "$1" | sed 's|//.*||' | awk -F '=>' 'NF == 2 {
      split($1, old, " "); split($2, new, " ")
      if (new[1] ~ /^\.\.?\//) next
      printf "%s%s=%s%s\n", old[1], (old[2] ? "@" old[2] : ""), new[1], (new[2] ? "@" new[2] : "")
    }'
}

# build_from_module NAME MODULE VERSION PACKAGE OUT LDFLAGS: builds PACKAGE of MODULE@VERSION into the
# cache as $cache/NAME-VERSION/OUT, from a temporary module kept in $cache/NAME-VERSION/module.
build_from_module() {
  local name=$1 module=$2 version=$3 package=$4 out=$5 ldflags=$6
  local dest="$cache/$name-$version" log="$logs/$name-$version.log"
  [ -x "$dest/$out" ] && return 0
  say "building $name $version (first run only; log: $log)"
  local start=$SECONDS dir="$dest.partial/module"
  rm -rf "$dest.partial"
  mkdir -p "$dir" "$dest.partial/$(dirname "$out")"
  : >"$log"
  # in_module COMMAND...: runs COMMAND in the temporary module, its output in the log; stops on a failure.
  in_module() { (cd "$dir" && "$@") >>"$log" 2>&1 || explain_failure "$log" "$name $version"; }
  local gomod
  gomod=$(go mod download -json "$module@$version" 2>>"$log" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  [ -f "$gomod" ] || explain_failure "$log" "$name $version"
  in_module go mod init "cairn.test/build/$name"
  in_module go mod edit -go="$(go env GOVERSION | sed 's/^go//')" -require="$module@$version" -tool="$package"
  local replace refused path old new
  while read -r replace; do in_module go mod edit -replace="$replace"; done < <(module_replaces "$gomod")
  for refused in "${REFUSED[@]}"; do
    read -r path old new <<<"$refused"
    in_module go mod edit -replace="$path@$old=$path@$new"
  done
  in_module go mod tidy
  in_module go build -trimpath -ldflags "$ldflags" -o "$dest.partial/$out" "$package"
  rm -rf "$dest" && mv "$dest.partial" "$dest"
  say "built $name $version in $((SECONDS - start)) s"
}

velero_pkg=github.com/vmware-tanzu/velero
build_from_module velero "$velero_pkg" "$VELERO_VERSION" "$velero_pkg/cmd/velero" bin/velero \
  "-s -w -X $velero_pkg/pkg/buildinfo.Version=$VELERO_VERSION -X $velero_pkg/pkg/buildinfo.GitTreeState=clean"
aws=github.com/vmware-tanzu/velero-plugin-for-aws
build_from_module velero-plugin-for-aws "$aws" "$VELERO_AWS_PLUGIN_VERSION" "$aws/velero-plugin-for-aws" \
  plugins/velero-plugin-for-aws "-s -w"
echo "$cache/velero-$VELERO_VERSION/bin/velero"
echo "$cache/velero-plugin-for-aws-$VELERO_AWS_PLUGIN_VERSION/plugins"
