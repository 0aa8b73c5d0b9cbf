"""Real `surge-gateway` and `surge-worker` processes started while NATS is down: health
answers at once, readiness stays false, nothing exits; when nats-server comes up on the
configured port they connect, turn ready, and a write goes through end to end."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from tests.integration.dataplane_support import ROOT, provisioned, unique_pipeline

from surge_workers.natsserver import NatsServer, free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as err:
        return err.code
    except OSError:
        return 0


def _wait_status(url: str, status: int, within: float) -> None:
    deadline = time.monotonic() + within
    while _status(url) != status:
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} did not answer {status} within {within}s")
        time.sleep(0.1)


def _spawn(entry: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    child = dict(os.environ)
    child.update(env, PYTHONPATH=str(ROOT), SURGE_LOG_LEVEL="warning")
    return subprocess.Popen(
        [sys.executable, "-c", f"from surge_workers.cli import {entry}; {entry}()"], env=child
    )


def test_gateway_and_worker_wait_for_nats_alive_and_not_ready(tmp_path: Path) -> None:
    nats_port = free_port()
    config = unique_pipeline()
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps({"acme": ["acme-token"]}))
    http_port, metrics_port = free_port(), free_port()
    common = {
        "SURGE_NATS_URL": f"nats://127.0.0.1:{nats_port}",
        "SURGE_STREAM": config.stream,
        "SURGE_SUBJECT_PREFIX": config.subject_prefix,
        "SURGE_PARTITIONS": str(config.partitions),
    }
    gateway = _spawn(
        "gateway_main",
        {
            **common,
            "SURGE_HTTP_HOST": "127.0.0.1",
            "SURGE_HTTP_PORT": str(http_port),
            "SURGE_TOKENS_FILE": str(tokens),
        },
    )
    worker = _spawn(
        "worker_main",
        {
            **common,
            "SURGE_METRICS_HOST": "127.0.0.1",
            "SURGE_METRICS_PORT": str(metrics_port),
            "SURGE_PULL_EXPIRES": "0.5",
        },
    )
    gw, wk = f"http://127.0.0.1:{http_port}", f"http://127.0.0.1:{metrics_port}"
    server = NatsServer(store_dir=tmp_path / "js", port=nats_port)
    try:
        for base in (gw, wk):
            _wait_status(f"{base}/healthz", 200, within=20)
        time.sleep(2.0)  # several connect attempts fail meanwhile
        down = {base: _status(f"{base}/readyz") for base in (gw, wk)}
        refused = _post(gw)
        alive = gateway.poll() is None and worker.poll() is None

        server.start()
        nc_config = asyncio.run(_provision(server.url, config))
        for base in (gw, wk):
            _wait_status(f"{base}/readyz", 200, within=30)
        accepted = _post(gw)
    finally:
        for proc in (gateway, worker):
            proc.terminate()
        codes = [proc.wait(15) for proc in (gateway, worker)]
        server.stop()
        server.cleanup()

    assert down == {gw: 503, wk: 503}
    assert alive, "neither process may exit while NATS is down"
    assert refused == 503
    assert nc_config
    assert accepted == 202
    assert codes == [0, 0]


def _post(base: str) -> int:
    body = json.dumps({"id": "m1", "conversation_id": "c1", "text": "hello"}).encode()
    request = urllib.request.Request(
        f"{base}/v1/messages",
        data=body,
        headers={"Authorization": "Bearer acme-token", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as err:
        return err.code


async def _provision(url: str, config: object) -> bool:
    nc, _ = await provisioned(url, config)  # type: ignore[arg-type]
    await nc.close()
    return True
