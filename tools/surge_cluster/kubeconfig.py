"""Kubeconfig files: one per identity, each with a static bearer token."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import yaml

CONTEXT = "surge-local"


def kubeconfig_dict(server: str, ca_pem: bytes, token: str, user: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": CONTEXT,
                "cluster": {
                    "server": server,
                    "certificate-authority-data": base64.b64encode(ca_pem).decode(),
                },
            }
        ],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": CONTEXT, "context": {"cluster": CONTEXT, "user": user}}],
        "current-context": CONTEXT,
        "preferences": {},
    }


def write_kubeconfig(path: Path, server: str, ca_pem: bytes, token: str, user: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(kubeconfig_dict(server, ca_pem, token, user), sort_keys=False))
    path.chmod(0o600)
    return path


def write_cert_kubeconfig(
    path: Path, server: str, ca_file: Path, cert: Path, key: Path, user: str
) -> Path:
    """A kubeconfig authenticating with a client certificate (node components)."""
    data = kubeconfig_dict(server, b"", "", user)
    data["clusters"][0]["cluster"] = {"server": server, "certificate-authority": str(ca_file)}
    data["users"][0]["user"] = {"client-certificate": str(cert), "client-key": str(key)}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    path.chmod(0o600)
    return path
