#!/usr/bin/env bash
# Build one Go tool from its module at a pinned version, cached.
#
#   tools/go-tool.sh NAME MODULE VERSION PACKAGE     build if missing, print the binary's path
#   e.g. tools/go-tool.sh versitygw github.com/versity/versitygw v1.8.0 ./cmd/versitygw
#
# Binaries land in ${SURGE_TOOLS_CACHE:-~/.cache/surge/tools}/bin/NAME with a .NAME.version
# stamp, so bumping a version rebuilds only that tool. A throwaway module requires MODULE at
# VERSION, so the tool's own go.mod (and its replace directives) decide its dependencies.
set -euo pipefail
name="$1" module="$2" version="$3" pkg="$4"
root="${SURGE_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/surge/tools}"
bin="$root/bin"
src="$root/src/$name-$version"
mkdir -p "$bin" "$src"
if [[ -x "$bin/$name" && "$(cat "$bin/.$name.version" 2>/dev/null)" == "$module@$version" ]]; then
  echo "$bin/$name"; exit 0
fi
exec 9>"$root/.$name.lock"
flock 9
if [[ -x "$bin/$name" && "$(cat "$bin/.$name.version" 2>/dev/null)" == "$module@$version" ]]; then
  echo "$bin/$name"; exit 0
fi
export GOTOOLCHAIN=local GOFLAGS="-mod=mod -buildvcs=false" CGO_ENABLED=0
start=$(date +%s)
cd "$src"
[[ -f go.mod ]] || go mod init "surge.local/tools/$name" >/dev/null 2>&1
go get "$module@$version" >&2
full="$module/${pkg#./}"; full="${full%/}"; [[ "$pkg" == "." ]] && full="$module"
go build -trimpath -ldflags "-s -w" -o "$bin/$name.tmp" "$full" >&2
mv "$bin/$name.tmp" "$bin/$name"
echo "$module@$version" > "$bin/.$name.version"
echo "[go-tool] $name $version built in $(( $(date +%s) - start )) s" >&2
echo "$bin/$name"
