#!/usr/bin/env bash
# CI / `make k8s` entry point for the local Kubernetes control plane used by the e2e tier.
#
#   bash tools/ci-setup.sh          build (or reuse) the pinned binaries, check they run
#
# Needs Go (see tools/versions.env for what the pinned modules ask for) and the Go module
# proxy; nothing else. Idempotent: a warm cache makes it a no-op of well under a second.
# Afterwards run the e2e tests with SURGE_REQUIRE_E2E=1 so missing binaries fail, not skip.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

if ! command -v go >/dev/null; then
  echo "ci-setup: Go is required to build the local control plane (tools/build-k8s.sh)" >&2
  exit 1
fi
start=$(date +%s)
bash "$here/install-node-deps.sh"
bash "$here/build-k8s.sh"
bin="$(bash "$here/build-k8s.sh" --print-bin-dir)"
check() { "$bin/$1" "${@:2}" >/dev/null 2>&1 || { echo "ci-setup: $bin/$1 does not run" >&2; exit 1; }; }
for b in etcd kube-apiserver kube-controller-manager kube-scheduler kwok kubelet kube-proxy; do
  check "$b" --version
done
check coredns -version
check kube-router --version
check kubectl version --client
check helm version
echo "ci-setup: local control plane ready in $bin ($(( $(date +%s) - start )) s)" >&2
