"""Readiness probes (httpGet, tcpSocket, exec) run against a local pod process."""

from __future__ import annotations

import socket
import subprocess
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

MAX_PROBE_TIMEOUT = 2.0


def resolve_port(port: Any, container: Mapping[str, Any]) -> int:
    """A probe port is a number or the name of one of the container's ports."""
    if isinstance(port, int) or (isinstance(port, str) and port.isdigit()):
        return int(port)
    for item in container.get("ports") or []:
        if item.get("name") == port:
            return int(item["containerPort"])
    raise ValueError(f"unknown port name {port!r}")


def run_probe(
    probe: Mapping[str, Any], container: Mapping[str, Any], pod_ip: str, env: Mapping[str, str]
) -> bool:
    """One probe attempt; any error counts as failure (as for the kubelet)."""
    timeout = min(float(probe.get("timeoutSeconds") or 1), MAX_PROBE_TIMEOUT)
    try:
        if http := probe.get("httpGet"):
            host = http.get("host") or pod_ip
            scheme = str(http.get("scheme") or "HTTP").lower()
            port = resolve_port(http.get("port"), container)
            path = http.get("path") or "/"
            request = urllib.request.Request(f"{scheme}://{host}:{port}{path}")
            for header in http.get("httpHeaders") or []:
                request.add_header(header["name"], header["value"])
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return 200 <= int(response.status) < 400
        if tcp := probe.get("tcpSocket"):
            port = resolve_port(tcp.get("port"), container)
            with socket.create_connection((tcp.get("host") or pod_ip, port), timeout=timeout):
                return True
        if exec_ := probe.get("exec"):
            result = subprocess.run(
                [str(c) for c in exec_.get("command") or []],
                env=dict(env),
                timeout=timeout,
                capture_output=True,
                check=False,
            )
            return result.returncode == 0
    except (OSError, ValueError, urllib.error.URLError, subprocess.TimeoutExpired):
        return False
    return True
