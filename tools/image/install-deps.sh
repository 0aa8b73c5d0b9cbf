#!/usr/bin/env bash
# Debian's buildah (image builds without a daemon) and debootstrap (the bookworm base),
# for tools/image/build.sh. Idempotent: nothing to do when both are on PATH.
set -euo pipefail
missing=()
command -v buildah >/dev/null || missing+=(buildah)
command -v debootstrap >/dev/null || missing+=(debootstrap)
((${#missing[@]})) || exit 0
echo "image: installing ${missing[*]} from Debian's packages" >&2
export DEBIAN_FRONTEND=noninteractive
# apt's lock is shared with other set-up steps: wait for it instead of failing.
apt-get -o DPkg::Lock::Timeout=600 update -qq
apt-get -o DPkg::Lock::Timeout=600 install -y -qq "${missing[@]}" >/dev/null
