"""`surge dlq list|replay` as a user runs it (the real CLI in a subprocess) against a real
nats-server: dead letters listed per tenant, replayed under fresh scoped ids with
provenance, removed only after the copy is confirmed, and exit codes 0/1/2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest
from tests.integration.dataplane_support import (
    ROOT,
    Recorder,
    dead_letters,
    drained,
    provisioned,
    publish,
    running_worker,
    unique_pipeline,
    worker_settings,
)
from tests.integration.waits import wait_until

from surge_workers.delivery import Delivery, HandlerContext
from surge_workers.errors import PoisonError
from surge_workers.pipeline import PipelineConfig

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def surge(config: PipelineConfig, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.update(
        SURGE_NATS_URL=url,
        SURGE_STREAM=config.stream,
        SURGE_SUBJECT_PREFIX=config.subject_prefix,
        PYTHONPATH=str(ROOT),
        COLUMNS="250",  # the table on one line per row
    )
    return subprocess.run(
        [sys.executable, "-c", "from surge_operator.cli import main; main()", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


class Flaky:
    """Poison while ``broken``; then fine (the bug was fixed and the dead letters replayed)."""

    def __init__(self) -> None:
        self.broken = True

    async def __call__(self, delivery: Delivery, ctx: HandlerContext) -> None:
        if self.broken:
            raise PoisonError("downstream rejected the payload")


async def test_dead_letters_are_listed_and_replayed_with_provenance(nats_url: str) -> None:
    config = unique_pipeline()
    nc, js = await provisioned(nats_url, config)
    for tenant in ("acme", "globex"):
        await publish(js, config, msg_id="m1", conversation="c1", tenant=tenant)
    handler = Flaky()
    recorder = Recorder(handler)
    async with running_worker(nats_url, worker_settings(config), recorder):
        await wait_until(lambda: _count(js, config, 2), within=10)

        listed = surge(config, nats_url, "dlq", "list", "-o", "json")
        only_acme = surge(config, nats_url, "dlq", "list", "--tenant", "acme", "-o", "json")
        table = surge(config, nats_url, "dlq", "list")
        letters = json.loads(listed.stdout)
        acme_seq = next(letter["seq"] for letter in letters if letter["tenant"] == "acme")

        handler.broken = False
        replayed = surge(config, nats_url, "dlq", "replay", str(acme_seq), "-o", "json")
        await wait_until(lambda: drained(js, config), within=10)
        again = surge(config, nats_url, "dlq", "replay", str(acme_seq))
        usage = surge(config, nats_url, "dlq", "replay", "0")
        not_a_number = surge(config, nats_url, "dlq", "replay", "x")
        left = json.loads(surge(config, nats_url, "dlq", "list", "-o", "json").stdout)
    stored = await dead_letters(js, config)
    replay_seq = json.loads(replayed.stdout)[0]["stream_seq"]
    copy = await js.get_msg(config.stream, replay_seq)
    await nc.close()
    unreachable = surge(config, "nats://127.0.0.1:1", "dlq", "list")

    assert listed.returncode == only_acme.returncode == table.returncode == 0
    assert {(x["tenant"], x["msg_id"], x["conversation_id"]) for x in letters} == {
        ("acme", "m1", "c1"),
        ("globex", "m1", "c1"),
    }
    assert all("downstream rejected" in x["reason"] for x in letters)
    assert [x["tenant"] for x in json.loads(only_acme.stdout)] == ["acme"]
    assert "downstream rejected" in table.stdout

    assert replayed.returncode == 0, replayed.stderr
    (result,) = json.loads(replayed.stdout)
    assert result["msg_id"] == f"acme.m1.r{acme_seq}"  # fresh, tenant-scoped
    assert result["removed"] is True
    headers: dict[str, Any] = dict(copy.headers or {})
    assert headers["Surge-Replay-Of"] == f"{config.stream}-dlq/{acme_seq}"
    assert "downstream rejected" in headers["Surge-Replay-Reason"]
    assert headers["Surge-Msg-Id"] == "m1"
    assert headers["Surge-Tenant"] == "acme"
    assert not any(name.startswith("Surge-Dead-") for name in headers)
    # processed after the replay: poison twice (acme, globex), then acme once more
    assert recorder.calls[-1][:2] == ("c1", "m1")
    assert len(recorder.done) == 1

    assert again.returncode == 1  # it is gone from the dead letters
    assert "no dead letter" in again.stderr
    assert usage.returncode == 2
    assert not_a_number.returncode == 2
    assert [x["tenant"] for x in left] == ["globex"]
    assert len(stored) == 1
    assert unreachable.returncode == 1
    assert "NATS" in unreachable.stderr


async def _count(js: Any, config: PipelineConfig, expected: int) -> bool:
    info = await js.stream_info(f"{config.stream}-dlq")
    return int(info.state.messages) >= expected
