"""Bearer-token authentication: the tokens file (tenant -> tokens) and the token lookup."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from surge_workers.errors import ConfigError
from surge_workers.gateway.refusals import Refused


def load_tokens(path: str | Path) -> dict[str, str]:
    """``{"tenant": ["token", ...]}`` (or a single token string) -> {token: tenant}."""
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise ConfigError(f"SURGE_TOKENS_FILE {path}: {err}") from err
    if not isinstance(doc, dict):
        raise ConfigError(f"SURGE_TOKENS_FILE {path}: expected a JSON object of tenants")
    tokens: dict[str, str] = {}
    for tenant, value in doc.items():
        values = [value] if isinstance(value, str) else value
        if not isinstance(values, list) or not all(isinstance(v, str) and v for v in values):
            raise ConfigError(f"SURGE_TOKENS_FILE {path}: tenant {tenant!r} needs token strings")
        for token in values:
            tokens[token] = tenant
    return tokens


class TokenFile:
    """The tokens file, re-read when it changes (a rotated Secret is picked up without a
    restart); checked at most every ``interval`` seconds. A broken new version keeps the
    previous tokens and is logged, rather than locking every tenant out."""

    def __init__(self, path: str | Path, log: Any, interval: float = 5.0) -> None:
        self.path = Path(path)
        self.log = log
        self.interval = interval
        # Load first: a missing or broken file is a ConfigError naming the path.
        self.tokens = load_tokens(self.path)
        self._mtime = self.path.stat().st_mtime
        self._checked = time.monotonic()

    def current(self) -> dict[str, str]:
        now = time.monotonic()
        if now - self._checked < self.interval:
            return self.tokens
        self._checked = now
        try:
            mtime = self.path.stat().st_mtime
            if mtime != self._mtime:
                self.tokens = load_tokens(self.path)
                self._mtime = mtime
                self.log.info("tokens_reloaded", tenants=len(set(self.tokens.values())))
        except (OSError, ConfigError) as err:
            self.log.error("tokens_reload_failed", error=str(err))
        return self.tokens


def authenticate(headers: Mapping[str, str], tokens: Mapping[str, str]) -> str:
    """The tenant of the request's bearer token; 401 when it is missing or unknown."""
    auth = headers.get("Authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Refused(401, "unauthorized", "bearer token required", {"WWW-Authenticate": "Bearer"})
    tenant = tokens.get(token.strip())
    if tenant is None:
        raise Refused(401, "unauthorized", "unknown token", {"WWW-Authenticate": "Bearer"})
    return tenant
