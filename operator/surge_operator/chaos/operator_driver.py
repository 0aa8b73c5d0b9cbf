"""Start, arm, kill and read the failover loop as a process (`operator_process`): the
parent side, shared by `surge chaos` (operator-kill-9-mid-failover) and the crash tests.

The process's status file is what the operator's MessagingCluster status would be; its
stdout (one JSON line per start, tick and crash) is the log the recovery is read from.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from surge_operator.chaos.operator_process import FAILBACK_ANNOTATION, read_json
from surge_operator.failover import RegionEndpoint
from surge_operator.policy.failover import FailoverConfig
from surge_workers.pipeline import PipelineConfig


class OperatorProcessError(RuntimeError):
    """The failover process did not do what it was started for (crash, exit, move)."""


@dataclass(frozen=True)
class Moved:
    """The tick of one start that moved traffic: its number (1 = the first tick), how
    long after that start it was done, and its line."""

    tick: int
    after_start_s: float
    line: dict[str, Any]


def parse_log(text: str) -> list[dict[str, Any]]:
    """The process's JSON lines (anything else it printed, e.g. a traceback, skipped)."""
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def moved_in_last_start(lines: Sequence[dict[str, Any]]) -> Moved | None:
    """How the last start went: the first tick after it that moved traffic. Pure."""
    starts = [i for i, line in enumerate(lines) if line["event"] == "started"]
    if not starts:
        return None
    ticks = [line for line in lines[starts[-1] :] if line["event"] == "tick"]
    for n, tick in enumerate(ticks, 1):
        if tick["moved"]:
            return Moved(n, tick["done"] - lines[starts[-1]]["at"], tick)
    return None


def decided_rpo(lines: Sequence[dict[str, Any]]) -> int | None:
    """The last estimated RPO a start printed as it began a move (before acting, so a
    process killed inside the move has said it; a successor resuming that move has no
    estimate of its own). Pure."""
    estimates = [line["rpo"] for line in lines if line["event"] == "acting"]
    return next((rpo for rpo in reversed(estimates) if isinstance(rpo, int)), None)


def history(status: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(kind, from, to) of every move the status recorded."""
    return [(h["kind"], h["from"], h["to"]) for h in status.get("history", [])]


class FailoverProcess:
    """The failover loop as a process: start (optionally armed to crash), wait for its
    crash, stop it, read its status and log. One process at a time."""

    def __init__(
        self,
        endpoints: Sequence[RegionEndpoint],
        pipeline: PipelineConfig,
        config: FailoverConfig,
        workdir: Path,
    ) -> None:
        self.status_path = workdir / "status.json"
        self.annotations = workdir / "annotations.json"
        self.log_path = workdir / "failover-operator.log"
        regions = [{"name": e.name, "url": e.url, "domain": e.domain} for e in endpoints]
        pipe = {
            "stream": pipeline.stream,
            "subject_prefix": pipeline.subject_prefix,
            "partitions": pipeline.partitions,
            "duplicate_window": pipeline.duplicate_window,
        }
        probe = {
            k: v for k, v in asdict(config).items() if k in ("probe_interval", "failure_threshold")
        }
        self.env = {
            **os.environ,
            "SURGE_CHAOS_REGIONS": json.dumps(regions),
            "SURGE_CHAOS_PIPELINE": json.dumps(pipe),
            "SURGE_CHAOS_PROBE": json.dumps(probe),
            "SURGE_CHAOS_STATUS": str(self.status_path),
            "SURGE_CHAOS_ANNOTATIONS": str(self.annotations),
        }
        self.proc: subprocess.Popen[bytes] | None = None
        #: time.monotonic() of the last start
        self.started_at: float | None = None

    def start(self, crash: str = "") -> FailoverProcess:
        self.stop()
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "surge_operator.chaos.operator_process"],
                env={**self.env, "SURGE_CHAOS_CRASH": crash},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.started_at = time.monotonic()
        return self

    async def wait_crash(self, within: float = 60.0) -> float:
        """Until the armed process has killed itself (SIGKILL); returns time.monotonic()
        of its death as seen here. Raises if it exits otherwise or lives on."""
        if self.proc is None:
            raise OperatorProcessError("no failover process was started")
        deadline = time.monotonic() + within
        while (code := self.proc.poll()) is None:
            if time.monotonic() > deadline:
                raise OperatorProcessError(
                    f"the armed failover process did not crash within {within:.0f}s:\n{self.log()}"
                )
            await asyncio.sleep(0.05)
        if code != -signal.SIGKILL:
            raise OperatorProcessError(f"the failover process exited with {code}:\n{self.log()}")
        return time.monotonic()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def status(self) -> dict[str, Any]:
        return read_json(self.status_path)

    def active(self) -> str | None:
        """The active region the status names (None before the first tick wrote it)."""
        active = self.status().get("activeRegion")
        return active if isinstance(active, str) else None

    def request_failback(self) -> None:
        self.annotations.write_text(json.dumps({FAILBACK_ANNOTATION: "requested"}))

    async def failback_cleared(self) -> bool:
        return not self.annotations.exists()

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def moved(self) -> Moved | None:
        return moved_in_last_start(parse_log(self.log()))

    def rpo(self) -> int | None:
        return decided_rpo(parse_log(self.log()))

    def recovery(self) -> str:
        """How the last start went, from the process's own lines: seconds from its start
        (Python up, status read) to the tick that moved traffic, and that tick's number."""
        moved = self.moved()
        if moved is None:
            return "no move since its start"
        return (
            f"{moved.after_start_s:.2f}s after its start, in tick {moved.tick} "
            f"({moved.line['reason']})"
        )
