"""The data plane as the product runs it, on loopback: real `surge-worker` and
`surge-gateway` processes (this environment's console scripts, configured by environment
variables exactly as their Deployments configure them) against a NATS given by its URLs.

A process can be killed (-9), stopped and continued, and started again like a Deployment
replaces a pod; its resident memory and open file descriptors are read from /proc.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from surge_workers.lifetime import die_with_parent
from surge_workers.natsserver import free_port
from surge_workers.pipeline import PipelineConfig

#: The handler the chaos workers run: the default one, plus 1 % poison (see handler.py).
CHAOS_HANDLER = "surge_operator.chaos.handler:store_or_poison"
TENANT = "chaos"
TOKEN = "chaos-token"


def script(name: str) -> list[str]:
    """The console script next to the running interpreter (the venv), else the module."""
    beside = Path(sys.executable).with_name(name)
    if beside.exists():
        return [str(beside)]
    main = {"surge-worker": "worker_main", "surge-gateway": "gateway_main"}[name]
    return [sys.executable, "-c", f"from surge_workers.cli import {main}; {main}()"]


@dataclass
class Proc:
    role: str  # "worker" | "gateway"
    port: int  # health (worker) or HTTP (gateway) port
    popen: subprocess.Popen[bytes]
    log: Path
    started_at: float = field(default_factory=time.monotonic)
    #: Seen ready once: a Service would route to it (until it dies).
    in_service: bool = False

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal(self, sig: signal.Signals) -> None:
        if self.alive():
            self.popen.send_signal(sig)

    def kill(self) -> None:
        """kill -9, and reap it."""
        if self.alive():
            self.popen.kill()
        self.popen.wait()

    def footprint(self) -> tuple[int, int]:
        """(resident memory in KiB, open file descriptors) from /proc."""
        rss = 0
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
        fds = len(os.listdir(f"/proc/{self.pid}/fd"))
        return rss, fds

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=0.5) as r:
                return int(r.status) == 200
        except OSError:
            return False

    def metric(self, name: str, labels: Mapping[str, str] | None = None) -> float:
        """Sum of a Prometheus sample family from /metrics (0 when absent or unreachable)."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=1) as r:
                text = r.read().decode()
        except OSError:
            return 0.0
        want = [f'{k}="{v}"' for k, v in (labels or {}).items()]
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name) and all(w in line for w in want):
                head, _, value = line.rpartition(" ")
                if head.split("{")[0] == name:
                    total += float(value)
        return total


@dataclass
class Stage:
    """Workers and gateways of one pipeline. `nats_env` carries the NATS URL(s) and, for
    a managed NATS with per-role users, a `{role: env}` mapping of credentials."""

    pipeline: PipelineConfig
    urls: Sequence[str]
    root: Path
    role_env: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    worker_env: Mapping[str, str] = field(default_factory=dict)
    procs: list[Proc] = field(default_factory=list)
    _serial: int = 0

    def _env(self, role: str, port: int) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            SURGE_NATS_URL=",".join(self.urls),
            SURGE_STREAM=self.pipeline.stream,
            SURGE_SUBJECT_PREFIX=self.pipeline.subject_prefix,
            SURGE_PARTITIONS=str(self.pipeline.partitions),
            SURGE_CLUSTER="chaos",
            SURGE_LOG_LEVEL="warning",
        )
        env.update(self.role_env.get(role, {}))
        if role == "worker":
            env.update(
                SURGE_METRICS_PORT=str(port),
                SURGE_METRICS_HOST="127.0.0.1",
                SURGE_HANDLER=CHAOS_HANDLER,
                SURGE_COMPOSER="none",
                SURGE_CONCURRENCY="8",
                SURGE_WORK_MS="50",
                SURGE_PULL_EXPIRES="0.5",
                SURGE_DRAIN_TIMEOUT="5",
            )
            env.update(self.worker_env)
        else:
            tokens = self.root / "tokens.json"
            if not tokens.exists():
                tokens.write_text(json.dumps({TENANT: [TOKEN]}))
            env.update(
                SURGE_HTTP_HOST="127.0.0.1",
                SURGE_HTTP_PORT=str(port),
                SURGE_TOKENS_FILE=str(tokens),
                SURGE_RATE_LIMIT="0",
                SURGE_MAX_MSG_SIZE=str(self.pipeline.max_msg_size),
            )
        return env

    def start(self, role: str, port: int | None = None) -> Proc:
        """One more process of `role`; `port` reuses a dead one's (a pod's stable port)."""
        port = port or free_port()
        self._serial += 1
        self.root.mkdir(parents=True, exist_ok=True)
        log = self.root / f"{role}-{self._serial}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(
                script(f"surge-{role}"),
                env=self._env(role, port),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent(),
            )
        proc = Proc(role, port, popen, log)
        self.procs.append(proc)
        return proc

    def live(self, role: str) -> list[Proc]:
        return [p for p in self.procs if p.role == role and p.alive()]

    def gateway_urls(self) -> list[str]:
        """The gateways a Service would route to: alive and seen ready."""
        return [f"http://127.0.0.1:{p.port}" for p in self.live("gateway") if p.in_service]

    async def wait_ready(self, procs: Sequence[Proc], within: float = 60.0) -> None:
        deadline = time.monotonic() + within
        pending = list(procs)
        while pending and time.monotonic() < deadline:
            for proc in pending:
                proc.in_service = proc.in_service or await asyncio.to_thread(proc.ready)
            pending = [p for p in pending if not p.in_service]
            if any(not p.alive() for p in pending):
                dead = next(p for p in pending if not p.alive())
                raise RuntimeError(
                    f"{dead.role} exited ({dead.popen.returncode}) at start; see {dead.log}"
                )
            await asyncio.sleep(0.1)
        if pending:
            raise TimeoutError(f"{pending[0].role} not ready in {within}s; see {pending[0].log}")

    def close(self, grace: float = 8.0) -> None:
        """SIGTERM (and SIGCONT, for a stopped one) to all, then SIGKILL what lingers."""
        for proc in self.procs:
            proc.signal(signal.SIGCONT)
            proc.signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(max(0.0, deadline - time.monotonic()))
            proc.kill()
