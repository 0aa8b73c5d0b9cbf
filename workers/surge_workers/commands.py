"""Implementations behind `surge load` and `surge bench dataplane` (the typer commands in
surge_operator.cli only parse options and call these)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
from pathlib import Path

from surge_workers.contract import Priority
from surge_workers.errors import ConfigError
from surge_workers.logs import configure


def bench_dataplane(
    *,
    messages: int,
    size: int,
    rounds: int,
    nats_url: str | None,
    as_json: bool,
    gateway: bool,
) -> int:
    from surge_workers.bench import render, run_bench

    configure("warning")
    result = asyncio.run(
        run_bench(messages=messages, size=size, rounds=rounds, nats_url=nats_url, gateway=gateway)
    )
    if as_json:
        print(json.dumps(result.as_dict(), indent=2))
    else:
        print(render(result))
    return 0


LOCAL_NATS = "nats://127.0.0.1:4222"


def load(
    *,
    nats_url: str | None,
    stream: str,
    prefix: str,
    partitions: int,
    profile: str,
    rate: float,
    duration: float,
    surge_factor: float,
    mix: str | None,
    size: int,
    seed: int,
    trace: Path | None,
    gateway_url: str | None,
    tokens_file: Path | None,
    as_json: bool,
) -> int:
    from surge_workers.load import (
        DEFAULT_MIX,
        LoadSpec,
        Target,
        arrivals,
        load_trace,
        run_load,
    )

    configure("warning")
    if nats_url is None and not gateway_url:
        nats_url = LOCAL_NATS
    try:
        tokens = _tokens_by_tenant(tokens_file) if tokens_file else {}
        if gateway_url and tokens_file and not tokens:
            raise ConfigError(f"--tokens-file {tokens_file}: no plain (unhashed) token to send")
        spec = LoadSpec(
            profile=profile,  # type: ignore[arg-type]  # validated by LoadSpec
            rate=rate,
            duration=duration,
            surge_factor=surge_factor,
            size=size,
            seed=seed,
            mix=_parse_mix(mix) if mix else dict(DEFAULT_MIX),
        )
        if gateway_url and tokens:  # through a gateway only tenants with a token can send
            spec = dataclasses.replace(spec, tenants=tuple(sorted(tokens)))
        schedule = load_trace(trace, size) if trace else arrivals(spec)
    except ConfigError as err:
        print(f"surge load: {err}", file=sys.stderr)
        return 2
    target = Target(
        stream=stream,
        subject_prefix=prefix,
        partitions=partitions,
        gateway_url=gateway_url.rstrip("/") if gateway_url else None,
        tokens=tokens,
    )
    report = asyncio.run(run_load(nats_url, target, schedule))
    print(json.dumps(report.as_dict(), indent=2) if as_json else report.render())
    return 0


def _parse_mix(text: str) -> dict[Priority, float]:
    """``critical=1,normal=6,bulk=3``"""
    weights: dict[Priority, float] = {}
    for part in text.split(","):
        name, _, value = part.partition("=")
        try:
            weights[Priority(name.strip())] = float(value)
        except ValueError as err:
            raise ConfigError(f"--mix: {part!r} is not priority=weight") from err
    return weights


def _tokens_by_tenant(path: Path) -> dict[str, str]:
    from surge_workers.gateway import load_tokens

    # Hashed entries cannot be sent; the load client needs a usable token per tenant.
    return {tenant: token for token, tenant in load_tokens(path).items() if ":" not in token}
