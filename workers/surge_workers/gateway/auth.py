"""Bearer-token authentication: the tokens file (tenant -> tokens) and the token lookup.

Tokens are kept only as SHA-256 digests (:class:`TokenTable`); the file may hold them that
way too (``"sha256:<64 hex>"``), so a Secret need not carry usable tokens. A presented
token is hashed and compared with every digest by :func:`hmac.compare_digest`, without
stopping at a match: the time taken says nothing about which token, or how much of one,
was right.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from surge_workers.errors import ConfigError
from surge_workers.gateway.refusals import Refused

_HASHED = "sha256:"


class TokenTable:
    """Who a token belongs to, from the tokens' SHA-256 digests only."""

    __slots__ = ("_entries",)

    def __init__(self, entries: list[tuple[bytes, str]]) -> None:
        self._entries = entries

    @classmethod
    def from_tokens(cls, tokens: Mapping[str, str]) -> TokenTable:
        """{token or "sha256:<hex>": tenant} -> the table (plain tokens are hashed here)."""
        entries: list[tuple[bytes, str]] = []
        for token, tenant in tokens.items():
            if token.startswith(_HASHED):
                try:
                    digest = bytes.fromhex(token[len(_HASHED) :])
                except ValueError:
                    digest = b""
                if len(digest) != hashlib.sha256().digest_size:
                    raise ConfigError(f"tenant {tenant!r}: {_HASHED}<64 hex digits> expected")
            else:
                digest = hashlib.sha256(token.encode()).digest()
            entries.append((digest, tenant))
        return cls(entries)

    def tenant_for(self, token: str) -> str | None:
        digest = hashlib.sha256(token.encode()).digest()
        found = None
        for candidate, tenant in self._entries:
            if hmac.compare_digest(candidate, digest):  # every entry compared: constant time
                found = tenant
        return found

    @property
    def tenants(self) -> frozenset[str]:
        return frozenset(tenant for _, tenant in self._entries)

    def __len__(self) -> int:
        return len(self._entries)


def hash_token(token: str) -> str:
    """The form of ``token`` to store in a tokens file instead of the token itself."""
    return _HASHED + hashlib.sha256(token.encode()).hexdigest()


def load_tokens(path: str | Path) -> dict[str, str]:
    """``{"tenant": ["token", ...]}`` (or a single token string) -> {token: tenant}. A
    token may be given as ``"sha256:<hex digest>"``; see :class:`TokenTable`."""
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
        self.tokens = self._load()
        self._mtime = self.path.stat().st_mtime
        self._checked = time.monotonic()

    def _load(self) -> TokenTable:
        try:
            return TokenTable.from_tokens(load_tokens(self.path))
        except ConfigError as err:
            raise ConfigError(f"SURGE_TOKENS_FILE {self.path}: {err}") from err

    def current(self) -> TokenTable:
        now = time.monotonic()
        if now - self._checked < self.interval:
            return self.tokens
        self._checked = now
        try:
            mtime = self.path.stat().st_mtime
            if mtime != self._mtime:
                self.tokens = self._load()
                self._mtime = mtime
                self.log.info("tokens_reloaded", tenants=len(self.tokens.tenants))
        except (OSError, ConfigError) as err:
            self.log.error("tokens_reload_failed", error=str(err))
        return self.tokens


def authenticate(headers: Mapping[str, str], tokens: TokenTable) -> str:
    """The tenant of the request's bearer token; 401 when it is missing or unknown."""
    auth = headers.get("Authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Refused(401, "unauthorized", "bearer token required", {"WWW-Authenticate": "Bearer"})
    tenant = tokens.tenant_for(token.strip())
    if tenant is None:
        raise Refused(401, "unauthorized", "unknown token", {"WWW-Authenticate": "Bearer"})
    return tenant
