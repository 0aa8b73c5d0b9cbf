"""`surge load --gateway-url` needs no NATS connection (a client of a cluster usually has
none) and sends only as tenants it holds a token for."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from surge_workers import commands
from surge_workers import load as load_module
from surge_workers.errors import ConfigError
from surge_workers.load import LoadReport, LoadSpec, Target, arrivals, run_load


@pytest.fixture
async def fake_gateway() -> AsyncIterator[tuple[str, list[tuple[str, dict[str, Any]]]]]:
    """A stand-in for the gateway's POST /v1/messages: 202 for acme's token, else 401."""
    received: list[tuple[str, dict[str, Any]]] = []

    async def post(request: web.Request) -> web.Response:
        body = await request.json()
        auth = request.headers.get("Authorization", "")
        received.append((auth, body))
        status = 202 if auth == "Bearer acme-token" else 401
        return web.json_response({"id": body["id"]}, status=status)

    app = web.Application()
    app.router.add_post("/v1/messages", post)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}", received
    finally:
        await runner.cleanup()


async def test_load_through_a_gateway_without_nats_counts_accepted_and_measures_no_latency(
    fake_gateway: tuple[str, list[tuple[str, dict[str, Any]]]],
) -> None:
    url, received = fake_gateway
    schedule = list(arrivals(LoadSpec(rate=50, duration=0.4, tenants=("acme",))))
    target = Target("S", "s", 4, gateway_url=url, tokens={"acme": "acme-token"})

    report = await run_load(None, target, schedule)

    assert len(received) == len(schedule) > 0
    assert sum(p.accepted for p in report.priorities.values()) == len(schedule)
    assert report.errors == 0
    assert not report.completions
    assert "not measured" in report.render()
    assert report.as_dict()["completions_measured"] is False


async def test_a_gateway_that_drops_connections_counts_as_errors() -> None:
    """Under load, a port-forward or a starved gateway closes connections without a
    response: every such message is an error in the report, none is lost to the loop."""

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    schedule = list(arrivals(LoadSpec(rate=50, duration=0.2, tenants=("acme",))))
    target = Target("S", "s", 4, gateway_url=f"http://127.0.0.1:{port}", tokens={"acme": "t"})
    unretrieved: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: unretrieved.append(ctx))
    try:
        report = await run_load(None, target, schedule)
    finally:
        server.close()
        await server.wait_closed()

    assert len(schedule) > 0
    assert report.errors == len(schedule)
    assert sum(p.accepted + p.refused for p in report.priorities.values()) == 0
    assert unretrieved == []


async def test_load_straight_to_nats_needs_a_nats_url() -> None:
    with pytest.raises(ConfigError):
        await run_load(None, Target("S", "s", 4), [])


def test_surge_load_through_a_gateway_sends_only_as_tenants_with_a_token_and_skips_nats(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: dict[str, Any] = {}

    async def fake_run_load(nats_url: str | None, target: Target, schedule: Any) -> LoadReport:
        seen.update(nats_url=nats_url, target=target, tenants={a.tenant for a in schedule})
        return LoadReport(completions=nats_url is not None)

    monkeypatch.setattr(load_module, "run_load", fake_run_load)
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps({"acme": ["acme-token"], "globex": ["sha256:" + "0" * 64]}))

    code = commands.load(
        nats_url=None,
        stream="S",
        prefix="s",
        partitions=4,
        profile="steady",
        rate=200,
        duration=1,
        surge_factor=1,
        mix=None,
        size=64,
        seed=1,
        trace=None,
        gateway_url="http://gateway:8080",
        tokens_file=tokens,
        as_json=True,
    )

    assert code == 0
    assert seen["nats_url"] is None
    assert seen["tenants"] == {"acme"}  # globex's token is hashed: it cannot be sent
    assert seen["target"].tokens == {"acme": "acme-token"}
    assert json.loads(capsys.readouterr().out)["completions_measured"] is False
