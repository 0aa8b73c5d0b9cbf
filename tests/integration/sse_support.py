"""A minimal Server-Sent Events client for the tests (aiohttp) and a real `surge-gateway`
process that can be stopped and started again on the same port."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from tests.integration.dataplane_support import ROOT

from surge_workers.pipeline import PipelineConfig


@dataclass(frozen=True)
class Event:
    id: int
    event: str
    data: dict[str, Any]


async def events(response: aiohttp.ClientResponse) -> AsyncIterator[Event]:
    """Parse a text/event-stream body into events (comments and retry lines skipped)."""
    fields: dict[str, str] = {}
    async for raw in response.content:
        line = raw.decode().rstrip("\n").rstrip("\r")
        if not line:
            if "data" in fields:
                yield Event(
                    int(fields["id"]), fields.get("event", "message"), json.loads(fields["data"])
                )
            fields = {}
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        fields[name] = value.removeprefix(" ")


async def collect(
    base: str,
    conversation: str,
    token: str,
    *,
    count: int,
    last_event_id: int | None = None,
    within: float = 20.0,
) -> list[Event]:
    """The first ``count`` events of a followed stream (fails after ``within`` seconds)."""
    headers = {"Authorization": f"Bearer {token}"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = str(last_event_id)
    got: list[Event] = []
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{base}/v1/conversations/{conversation}/events", headers=headers) as response,
    ):
        assert response.status == 200, await response.text()
        assert response.headers["Content-Type"].startswith("text/event-stream")

        async def read() -> None:
            async for event in events(response):
                got.append(event)
                if len(got) >= count:
                    return

        await asyncio.wait_for(read(), within)
    return got


async def stored(base: str, conversation: str, token: str, after: int | None = None) -> list[Event]:
    """Everything stored now (follow=false)."""
    headers = {"Authorization": f"Bearer {token}"}
    if after is not None:
        headers["Last-Event-ID"] = str(after)
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"{base}/v1/conversations/{conversation}/events",
            params={"follow": "false"},
            headers=headers,
        ) as response,
    ):
        assert response.status == 200, await response.text()
        return [e async for e in events(response)]


class GatewayProcess:
    """`surge-gateway` as a child process on a fixed port (restartable)."""

    def __init__(self, url: str, config: PipelineConfig, tmp_path: Path, port: int) -> None:
        tokens = tmp_path / "tokens.json"
        tokens.write_text(json.dumps({"acme": ["acme-token"], "globex": ["globex-token"]}))
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.env = dict(os.environ)
        self.env.update(
            SURGE_NATS_URL=url,
            SURGE_STREAM=config.stream,
            SURGE_SUBJECT_PREFIX=config.subject_prefix,
            SURGE_PARTITIONS=str(config.partitions),
            SURGE_HTTP_HOST="127.0.0.1",
            SURGE_HTTP_PORT=str(port),
            SURGE_TOKENS_FILE=str(tokens),
            SURGE_RATE_LIMIT="0",
            SURGE_LOG_LEVEL="warning",
            PYTHONPATH=str(ROOT),
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from surge_workers.cli import gateway_main; gateway_main()"],
            env=self.env,
            cwd=ROOT,
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"{self.base}/readyz", timeout=1) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise
                time.sleep(0.1)

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        code = self.proc.returncode
        self.proc = None
        return code
