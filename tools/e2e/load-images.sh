#!/usr/bin/env bash
# Put the images tools/image/build.sh wrote into the cluster the e2e tier runs against:
#   KIND_CLUSTER=NAME     kind load image-archive (the kind workflow, users' CI)
#   otherwise             surge-cluster load-image: every real node's containerd
#                         (--dir $SURGE_CLUSTER_DIR, default ./.surge/cluster)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="${SURGE_VENV:-$repo/.venv}"
dir="$(SURGE_VENV="$venv" "$repo/tools/image/build.sh" --print-dir)"
mapfile -t archives < <(ls "$dir"/*.tar)
((${#archives[@]})) || { echo "load-images: no archives in $dir: run make images" >&2; exit 1; }
if [[ -n "${KIND_CLUSTER:-}" ]]; then
  for a in "${archives[@]}"; do
    kind load image-archive "$a" --name "$KIND_CLUSTER"
  done
else
  "$venv/bin/surge-cluster" --dir "${SURGE_CLUSTER_DIR:-.surge/cluster}" load-image "${archives[@]}"
fi
echo "load-images: loaded ${archives[*]##*/}" >&2
