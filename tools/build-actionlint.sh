#!/usr/bin/env bash
# actionlint, built from its Go module at the pinned version, for the test that validates
# .github/workflows/*.yaml (they cannot run here: no GitHub runner, no container engine).
#
#   tools/build-actionlint.sh                 build when missing (idempotent, version-stamped)
#   tools/build-actionlint.sh --print-path    where the binary is
#
# Conventions as tools/build-k8s.sh: GOTOOLCHAIN=local, GOFLAGS=-mod=mod, CGO_ENABLED=0,
# cache under ${XDG_CACHE_HOME:-~/.cache}/surge, flock, version stamp.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=tools/versions.env
source "$here/versions.env"
root="${XDG_CACHE_HOME:-$HOME/.cache}/surge/tools/actionlint"
bin="$root/$ACTIONLINT_VERSION/actionlint"

if [[ "${1:-}" == "--print-path" ]]; then
  echo "$bin"
  exit 0
fi
if [[ -x "$bin" && "$(cat "$bin.version" 2>/dev/null)" == "$ACTIONLINT_VERSION" ]]; then
  exit 0
fi
command -v go >/dev/null || { echo "build-actionlint: Go is required" >&2; exit 1; }
mkdir -p "$root/$ACTIONLINT_VERSION"
exec 9>"$root/.lock"
flock 9
export GOTOOLCHAIN=local GOFLAGS="-mod=mod -buildvcs=false" CGO_ENABLED=0
mod="$root/$ACTIONLINT_VERSION/mod"
rm -rf "$mod"; mkdir -p "$mod"
printf 'module surge.local/actionlintbuild\n\ngo 1.24\n\nrequire github.com/rhysd/actionlint %s\n' \
  "$ACTIONLINT_VERSION" > "$mod/go.mod"
printf '//go:build tools\n\npackage tools\n\nimport _ "github.com/rhysd/actionlint/cmd/actionlint"\n' \
  > "$mod/tools.go"
start=$(date +%s)
(cd "$mod" && go mod tidy -e >&2 && go build -trimpath \
  -ldflags "-s -w -X github.com/rhysd/actionlint.version=$ACTIONLINT_VERSION" \
  -o "$bin.tmp" github.com/rhysd/actionlint/cmd/actionlint)
mv "$bin.tmp" "$bin"
echo "$ACTIONLINT_VERSION" > "$bin.version"
echo "build-actionlint: actionlint $ACTIONLINT_VERSION built in $(( $(date +%s) - start )) s: $bin" >&2
