"""A real `surge-gateway` process survives schemathesis driving its own OpenAPI document:
no 5xx, every status and body as documented (bounded number of examples)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.request
import zlib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from tests.integration.dataplane_support import ROOT, provisioned, unique_pipeline

from surge_workers.natsserver import free_port
from surge_workers.openapi import committed_document

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TOKEN = "acme-token"


@pytest.fixture
def gateway_url(nats_url: str, tmp_path: Path) -> Iterator[str]:
    config = unique_pipeline()

    async def setup() -> None:
        nc, _ = await provisioned(nats_url, config)
        await nc.close()

    asyncio.run(setup())
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps({"acme": [TOKEN]}))
    port = free_port()
    env = dict(os.environ)
    env.update(
        SURGE_NATS_URL=nats_url,
        SURGE_STREAM=config.stream,
        SURGE_SUBJECT_PREFIX=config.subject_prefix,
        SURGE_PARTITIONS=str(config.partitions),
        SURGE_HTTP_HOST="127.0.0.1",
        SURGE_HTTP_PORT=str(port),
        SURGE_TOKENS_FILE=str(tokens),
        SURGE_MAX_BODY_BYTES="65536",
        SURGE_LOG_LEVEL="warning",
        PYTHONPATH=str(ROOT),
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", "from surge_workers.cli import gateway_main; gateway_main()"],
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                with urllib.request.urlopen(f"{base}/readyz", timeout=1) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        proc.wait(10)
    assert proc.returncode == 0, "the gateway must shut down cleanly on SIGTERM"


def test_gateway_survives_schemathesis_on_its_own_openapi(gateway_url: str) -> None:
    schema = schemathesis.openapi.from_dict(committed_document())
    strategy = schema.as_strategy(generation_mode=GenerationMode.POSITIVE) | schema.as_strategy(
        generation_mode=GenerationMode.NEGATIVE
    )
    auth = {"Authorization": f"Bearer {TOKEN}"}

    @settings(
        max_examples=150,
        deadline=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def run(case: schemathesis.Case[Any]) -> None:
        # Most cases are authenticated so they reach validation and publishing; the
        # unauthenticated ones exercise the 401 path the document promises.
        seed = repr((case.body, case.path_parameters, case.headers, case.query))
        headers = auth if zlib.crc32(seed.encode()) % 5 else {}
        if case.path.endswith("/events"):
            # A followed event stream never ends by design: ask for the stored events only
            # (the Last-Event-ID header and path stay generated).
            case.query = {**(case.query or {}), "follow": "false"}
        response = case.call_and_validate(base_url=gateway_url, headers=headers)
        statuses[response.status_code] += 1
        routes[(case.path, response.status_code)] += 1

    statuses: Counter[int] = Counter()
    routes: Counter[tuple[str, int]] = Counter()
    run()
    # The run must reach every layer: accepted writes, validation and auth refusals.
    assert statuses[202] > 0, statuses
    assert statuses[422] > 0, statuses
    assert statuses[401] > 0, statuses
    assert not [code for code in statuses if code >= 500], statuses
    # The reply path is exercised too: event streams opened, agents' replies stored.
    assert routes[("/v1/conversations/{conversation_id}/events", 200)] > 0, routes
    assert routes[("/v1/conversations/{conversation_id}/replies", 202)] > 0, routes
