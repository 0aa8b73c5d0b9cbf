"""A full data-plane run (real nats-server with a password, `surge-gateway` and
`surge-worker` processes at debug log level, accepted, refused and dead-lettered messages,
`surge dlq list`, /metrics) never prints a secret: the NATS password, any tenant token
(plain or its stored hash), or a token a client guessed. Every byte of output is scanned."""

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

import nats
import pytest
from tests.integration.dataplane_support import ROOT, unique_pipeline

from surge_workers.contract import Header, Priority, message_subject
from surge_workers.gateway import hash_token
from surge_workers.natsserver import NatsServer, free_port
from surge_workers.provision import provision_pipeline

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NATS_PASSWORD = "nats-pw-6f1d2c9e8b7a"
TOKEN_PLAIN = "tok-acme-0b5e7c1d9a"
TOKEN_HASHED = "tok-globex-4c8f2a6e1b"
GUESSED = "tok-guess-93d7e2f1c0"


def _call(url: str, token: str | None = None, body: dict[str, object] | None = None) -> str:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return str(resp.read().decode())
    except urllib.error.HTTPError as err:
        return str(err.read().decode())


def _wait(url: str, within: float = 30) -> None:
    deadline = time.monotonic() + within
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except (OSError, urllib.error.HTTPError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_no_secret_appears_in_logs_metrics_or_cli_output(tmp_path: Path) -> None:
    config = unique_pipeline()
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps({"acme": [TOKEN_PLAIN], "globex": [hash_token(TOKEN_HASHED)]}))
    outputs: list[str] = []
    server = NatsServer(
        store_dir=tmp_path / "js", extra_args=("--user", "surge", "--pass", NATS_PASSWORD)
    )
    with server:
        env = dict(os.environ)
        env.update(
            SURGE_NATS_URL=server.url,
            SURGE_NATS_USER="surge",
            SURGE_NATS_PASSWORD=NATS_PASSWORD,
            SURGE_STREAM=config.stream,
            SURGE_SUBJECT_PREFIX=config.subject_prefix,
            SURGE_PARTITIONS=str(config.partitions),
            SURGE_LOG_LEVEL="debug",
            SURGE_LOG_FORMAT="json",
            PYTHONPATH=str(ROOT),
        )
        asyncio.run(_provision(server.url, config))
        http, metrics = free_port(), free_port()
        gateway = subprocess.Popen(
            [sys.executable, "-c", "from surge_workers.cli import gateway_main; gateway_main()"],
            env={
                **env,
                "SURGE_HTTP_HOST": "127.0.0.1",
                "SURGE_HTTP_PORT": str(http),
                "SURGE_TOKENS_FILE": str(tokens),
            },
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        worker = subprocess.Popen(
            [sys.executable, "-c", "from surge_workers.cli import worker_main; worker_main()"],
            env={
                **env,
                "SURGE_METRICS_HOST": "127.0.0.1",
                "SURGE_METRICS_PORT": str(metrics),
                "SURGE_PULL_EXPIRES": "0.5",
            },
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        base = f"http://127.0.0.1:{http}"
        try:
            _wait(f"{base}/readyz")
            _wait(f"http://127.0.0.1:{metrics}/readyz")
            message = {"id": "m1", "conversation_id": "c1", "text": "my password is hunter2"}
            outputs.append(_call(f"{base}/v1/messages", TOKEN_PLAIN, message))
            outputs.append(_call(f"{base}/v1/messages", TOKEN_HASHED, message))
            outputs.append(_call(f"{base}/v1/messages", GUESSED, message))
            outputs.append(_call(f"{base}/v1/messages", hash_token(TOKEN_HASHED), message))
            outputs.append(_call(f"{base}/v1/messages", TOKEN_PLAIN, {"id": "bad id"}))
            asyncio.run(_publish_poison(server.url, config))
            time.sleep(2.0)  # processed and dead-lettered meanwhile
            outputs.append(_call(f"{base}/v1/conversations/c1/transcript", TOKEN_PLAIN))
            outputs.append(_call(f"{base}/metrics"))
            outputs.append(_call(f"http://127.0.0.1:{metrics}/metrics"))
            listed = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    "from surge_operator.cli import main; main()",
                    "dlq",
                    "list",
                    "-o",
                    "json",
                ],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            outputs += [listed.stdout, listed.stderr]
        finally:
            for proc in (gateway, worker):
                proc.terminate()
            for proc in (gateway, worker):
                out, _ = proc.communicate(timeout=30)
                outputs.append(out)
        outputs.append(server.log_path.read_text())

    text = "\n".join(outputs)
    assert '"seq"' in listed.stdout  # the run did reach the dead letters
    assert "transcript" in text or "m1" in text
    assert "message_dead_lettered" in text  # debug logs were really captured
    for secret in (
        NATS_PASSWORD,
        TOKEN_PLAIN,
        TOKEN_HASHED,
        GUESSED,
        hash_token(TOKEN_PLAIN).split(":")[1],
    ):
        assert secret not in text, f"a secret leaked into the output: {secret[:6]}..."


async def _provision(url: str, config: object) -> None:
    nc = await nats.connect(url, user="surge", password=NATS_PASSWORD)
    await provision_pipeline(nc.jetstream(), config)  # type: ignore[arg-type]
    await nc.close()


async def _publish_poison(url: str, config: object) -> None:
    nc = await nats.connect(url, user="surge", password=NATS_PASSWORD)
    subject = message_subject(
        config.subject_prefix,
        Priority.NORMAL,
        "c2",
        config.partitions,
        tenant="acme",  # type: ignore[attr-defined]
    )
    await nc.jetstream().publish(
        subject,
        b"{not json",
        headers={Header.MSG_ID: "acme.p1", Header.TENANT: "acme", Header.CONVERSATION: "c2"},
    )
    await nc.close()
