#!/usr/bin/env bash
# Install Debian's Prometheus for the integration tests. The package would normally run as a
# service; the tests start their own instance on loopback, so nothing is started here.
set -euo pipefail
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
# Some images start services from postinst; the tests want the port space to themselves.
$SUDO pkill -x prometheus 2>/dev/null || true
prometheus --version 2>&1 | head -1
