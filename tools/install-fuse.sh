#!/usr/bin/env bash
# Debian's fuse3 (libfuse3 and fusermount3) for the lazy filesystem under `surge chaos`'s
# power-loss scenarios and their tests (the Python side is mfusepy, in the dev extra).
set -euo pipefail
if command -v fusermount3 >/dev/null 2>&1 && ldconfig -p | grep -q 'libfuse3\.so\.3'; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends fuse3 >/dev/null
fusermount3 --version
