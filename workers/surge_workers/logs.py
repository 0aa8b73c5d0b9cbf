"""structlog configuration for the worker and gateway processes (configure once).

JSON lines when stderr is not a TTY (pods, CI), console rendering on a TTY. Context
(stream, consumer, priority, seq, tenant) is bound per logger or per message; event names
are the messages and values are fields. Secrets are never passed to a logger.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

_configured = False


def configure(level: str = "info", fmt: str = "auto") -> None:
    """Idempotent: the first call in a process wins (tests may call it repeatedly)."""
    global _configured
    if _configured:
        return
    _configured = True
    apply_logging(level, fmt)


def apply_logging(level: str, fmt: str) -> int:
    """Route structlog and stdlib logging (aiohttp, kopf, nats) through one renderer.

    Shared by every Surge process so one deployment writes one format; returns the
    numeric level for callers that tune third-party loggers.
    """
    numeric = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    as_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if as_json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    return numeric


def get_logger(component: str, **context: Any) -> Any:
    """A bound logger; typed Any because structlog's bound-logger type depends on config."""
    return structlog.get_logger(f"surge_workers.{component}").bind(**context)
