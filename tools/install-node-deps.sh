#!/usr/bin/env bash
# Debian packages the real nodes of `surge-cluster up` run on: containerd + runc (the
# container runtime), containernetworking-plugins (bridge, host-local, loopback, portmap),
# iptables + ipset (kube-proxy and kube-router), nftables (the cluster's egress guard),
# conntrack, busybox-static (the tiny test image) and libc6-dev (static pause binary).
#
#   tools/install-node-deps.sh      no-op when everything is installed (idempotent)
#
# Needs root and Debian's package archive. Runs `apt-get update` once before installing.
set -euo pipefail

packages=(containerd runc containernetworking-plugins iptables ipset nftables conntrack
  busybox-static libc6-dev gcc iproute2 util-linux)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if (( ${#missing[@]} == 0 )); then
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "install-node-deps: root is needed to install: ${missing[*]}" >&2
  exit 1
fi
echo "install-node-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# Never start a system-wide containerd: every node runs its own (see surge_cluster/nodes).
policy=/usr/sbin/policy-rc.d
cleanup_policy=0
if [[ ! -e $policy ]]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"; cleanup_policy=1
fi
trap '(( cleanup_policy )) && rm -f "$policy"' EXIT
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
