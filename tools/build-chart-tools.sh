#!/usr/bin/env bash
# Build the chart's validation tools from their Go modules (pinned, cached), next to the
# local control plane's binaries (tools/build-k8s.sh conventions: GOTOOLCHAIN=local,
# CGO_ENABLED=0, one build at a time, a .<name>.version stamp per binary).
#
#   kubeconform   validates every rendered template against the cluster's OpenAPI schemas
#   helm-docs     generates charts/surge/README.md from the commented values.yaml
#
#   tools/build-chart-tools.sh          build whatever is missing (idempotent)
set -euo pipefail

KUBECONFORM_VERSION=v0.7.0
HELM_DOCS_VERSION=v1.14.2

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bin="$("$here/build-k8s.sh" --print-bin-dir)"
src="$(dirname "$bin")/src"
mkdir -p "$bin" "$src"

exec 9>"$(dirname "$bin")/.chart-tools.lock"
command -v flock >/dev/null && flock 9

export GOTOOLCHAIN=local
export GOFLAGS="-mod=mod -buildvcs=false"
export CGO_ENABLED=0

log() { printf '[build-chart-tools %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

build() { # build NAME MODULE VERSION PKG [LDFLAGS]
  local name="$1" module="$2" version="$3" pkg="$4" ldflags="${5:-}" dir="$src/$1"
  if [[ -x "$bin/$name" && "$(cat "$bin/.$name.version" 2>/dev/null)" == "$version" ]]; then
    log "$name $version: cached"
    return 0
  fi
  local start gomod go_line
  start=$(date +%s)
  rm -rf "$dir"; mkdir -p "$dir"
  gomod="$(go mod download -json "$module@$version" \
    | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')"
  go_line="$(grep -E '^go [0-9]' "$gomod" | head -1)"
  printf 'module surge.local/%sbuild\n\n%s\n\nrequire %s %s\n' \
    "$name" "$go_line" "$module" "$version" > "$dir/go.mod"
  printf '//go:build tools\n\npackage tools\n\nimport _ "%s"\n' "$pkg" > "$dir/tools.go"
  log "$name $version: resolving module graph"
  (cd "$dir" && go mod tidy -e >&2)
  log "$name $version: building $pkg"
  (cd "$dir" && go build -trimpath -ldflags "-s -w $ldflags" -o "$bin/$name.tmp" "$pkg")
  mv "$bin/$name.tmp" "$bin/$name"
  echo "$version" > "$bin/.$name.version"
  log "$name $version: built in $(( $(date +%s) - start )) s"
}

build kubeconform github.com/yannh/kubeconform "$KUBECONFORM_VERSION" \
  github.com/yannh/kubeconform/cmd/kubeconform
build helm-docs github.com/norwoodj/helm-docs "$HELM_DOCS_VERSION" \
  github.com/norwoodj/helm-docs/cmd/helm-docs \
  "-X main.version=$HELM_DOCS_VERSION"
