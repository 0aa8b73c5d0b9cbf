#!/usr/bin/env bash
# Figures of the local real-node cluster, as quoted in the README's testing section:
#   tools/measure-cluster.sh [RUNS]     (default 3; needs root, make k8s done, .venv built)
# Per run: `surge-cluster up` wall time, a busybox pod created -> Running, the resident
# memory of the whole cluster (`surge-cluster status`), `down` wall time and `leftovers`.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
sc="$repo/.venv/bin/surge-cluster"
kubectl="$(bash "$here/build-k8s.sh" --print-bin-dir)/kubectl"
runs="${1:-3}"
for i in $(seq 1 "$runs"); do
  dir="$(mktemp -d /tmp/surge-measure.XXXXXX)"
  echo "run $i (load average $(cut -d' ' -f1 /proc/loadavg))"
  /usr/bin/time -f "  up wall %e s" "$sc" --dir "$dir" up 2>&1 | grep -E "wall|ready in" | sed 's/^/  /'
  start=$(date +%s.%N)
  KUBECONFIG="$dir/kubeconfig" "$kubectl" run first --image=surge.local/busybox:e2e \
    --image-pull-policy=Never --command -- sleep 3600 >/dev/null
  until [[ "$(KUBECONFIG="$dir/kubeconfig" "$kubectl" get pod first -o 'jsonpath={.status.phase}')" == Running ]]; do
    sleep 0.05
  done
  awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "  pod created -> Running %.2f s\n", b - a }'
  "$sc" --dir "$dir" status | tail -1
  /usr/bin/time -f "  down wall %e s" "$sc" --dir "$dir" down 2>&1 | grep wall
  "$sc" --dir "$dir" leftovers | sed 's/^/  leftovers: /'
  rm -rf "$dir"
done
