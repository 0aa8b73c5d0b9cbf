"""Run the chaos scenarios and render them (JSON list, or a table)."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Sequence

import structlog

from surge_operator.chaos.result import Result
from surge_operator.chaos.suite import run_all


def chaos(*, short: bool, as_json: bool, only: Sequence[str] = ()) -> tuple[str, bool]:
    """Returns (output, every scenario passed: lost nothing and doubled nothing, or, for a
    control that expects a loss, showed one)."""
    # The controller logs every probe, promotion and (expected) failed mirror attempt while
    # regions are down; here the report is the output: only critical lines, on stderr.
    saved = structlog.get_config()
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )
    try:
        results: list[Result] = asyncio.run(run_all(short=short, only=only))
    finally:
        structlog.configure(**saved)  # a caller's (or a test session's) logging is theirs
    ok = all(r.passed for r in results)
    if as_json:
        return json.dumps([r.as_json() for r in results], indent=2), ok
    lines = [
        f"{'scenario':<26} {'accepted':>8} {'lost':>5} {'double':>6} {'absorbed':>8} "
        f"{'order':>5} {'recovery_s':>10} {'rpo':>5}"
    ]
    for r in results:
        row = r.as_json()
        lines.append(
            f"{r.name:<26} {row['accepted']:>8} {row['lost']:>5} {row['double_effects']:>6} "
            f"{row['duplicates_absorbed']:>8} {row['order_violations']:>5} "
            f"{row['recovery_s']!s:>10} {row['rpo']!s:>5}"
        )
    return "\n".join(lines), ok
