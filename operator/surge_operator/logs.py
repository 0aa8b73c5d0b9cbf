"""structlog configuration (once, in the entrypoint) and helpers to bind cluster context.

JSON lines when stderr is not a TTY (containers, CI), coloured console otherwise. Every
line about a MessagingCluster carries `cr` and `namespace`; autoscaling lines add `tick`.
kopf's own stdlib logging is routed through the same renderer so one process writes one
format.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import structlog

from surge_operator.settings import LogSettings
from surge_workers.logs import apply_logging

_configured = False


def configure(settings: LogSettings | None = None) -> None:
    """Configure structlog and stdlib logging. Idempotent: the first call wins."""
    global _configured
    if _configured:
        return
    _configured = True
    settings = settings or LogSettings()
    level = apply_logging(settings.level, settings.format)
    # kopf is chatty at INFO about every handler it runs; keep its warnings and errors.
    logging.getLogger("kopf").setLevel(max(level, logging.WARNING))


def get_logger(**context: Any) -> Any:
    """A lazy logger: safe at import time, it picks up `configure()` on first use.
    (Binding eagerly here would freeze the default console config into module loggers.)"""
    logger = structlog.get_logger("surge_operator")
    return logger.bind(**context) if context else logger


@contextmanager
def bound_cluster(namespace: str, name: str, **extra: Any) -> Iterator[None]:
    """Bind `cr` and `namespace` (and extras) to every log line inside the block."""
    with structlog.contextvars.bound_contextvars(cr=name, namespace=namespace, **extra):
        yield
