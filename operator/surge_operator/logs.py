"""structlog configuration (once, in the entrypoint) and helpers to bind cluster context.

JSON lines when stderr is not a TTY (containers, CI), coloured console otherwise. Every
line about a MessagingCluster carries `cr` and `namespace`; autoscaling lines add `tick`.
kopf's own stdlib logging is routed through the same renderer so one process writes one
format.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import structlog

from surge_operator.settings import LogSettings

_configured = False


def configure(settings: LogSettings | None = None) -> None:
    """Configure structlog and stdlib logging. Idempotent: the first call wins."""
    global _configured
    if _configured:
        return
    _configured = True
    settings = settings or LogSettings()
    level = logging.getLevelNamesMapping().get(settings.level.upper(), logging.INFO)
    json_output = settings.format == "json" or (
        settings.format == "auto" and not sys.stderr.isatty()
    )
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if json_output
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    # kopf and aiohttp log through stdlib: render them with the same processors.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # kopf is chatty at INFO about every handler it runs; keep its warnings and errors.
    logging.getLogger("kopf").setLevel(max(level, logging.WARNING))
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


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
