"""Surge's end-to-end run: gateway -> stream -> worker, from the first POST until
JetStream's ack floor of the worker's consumer covers the last message.

`drive` is the measurement; on loopback the bench calls it beside the processes it
started, in a cluster `python3 -m surge_operator.natsbench.load` runs it in the bench pod
(the gateway's Service as the target, NATS from the pod's environment) and prints one
`RESULT {json}` line for the driver to read.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from typing import Any

import nats

from surge_operator.natsbench.ackfloor import acked_through

#: 4 HTTP connections with batches of 500: the same 4 x 500 messages in flight as
#: `nats bench`'s 4 clients with their default batch
HTTP_CONNECTIONS = 4
HTTP_BATCH = 500
#: how long the worker may take to acknowledge everything after the last 202
DRAIN_WITHIN_S = 300.0
RESULT_PREFIX = "RESULT "


async def drive(
    gateway: str,
    token: str,
    tenant: str,
    js: Any,
    *,
    stream: str,
    consumer: str,
    messages: int,
    size: int,
) -> float:
    """Messages/s through the gateway until the consumer has acknowledged every one."""
    from surge_workers.loadclient import batch_bodies, post_bodies

    # Encoded before the clock starts, as nats bench makes its payload before it.
    bodies = batch_bodies(tenant, messages, size, batch=HTTP_BATCH)
    started = time.perf_counter()
    await post_bodies(gateway, token, bodies, messages, parallel=HTTP_CONNECTIONS)
    last = (await js.stream_info(stream)).state.last_seq
    await acked_through(js, stream, consumer, last, within=DRAIN_WITHIN_S)
    return messages / (time.perf_counter() - started)


async def _in_pod(args: argparse.Namespace) -> float:
    nc = await nats.connect(
        servers=os.environ["NATS_URL"].split(","),
        user=os.environ["NATS_USER"],
        password=os.environ["NATS_PASSWORD"],
    )
    try:
        js = nc.jetstream(timeout=10)
        await js.purge_stream(args.stream)
        return await drive(
            args.gateway,
            os.environ["SURGE_BENCH_TOKEN"],
            args.tenant,
            js,
            stream=args.stream,
            consumer=args.consumer,
            messages=args.messages,
            size=args.size,
        )
    finally:
        await nc.close()


def parse_result(output: str) -> float:
    """The msg/s an in-pod run printed (its last RESULT line)."""
    for line in reversed(output.splitlines()):
        if line.startswith(RESULT_PREFIX):
            return float(json.loads(line[len(RESULT_PREFIX) :])["msgs_per_s"])
    raise RuntimeError(f"the in-pod Surge run printed no result:\n{output[-1500:]}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python3 -m surge_operator.natsbench.load")
    parser.add_argument("--gateway", required=True, help="The gateway's base URL.")
    parser.add_argument("--tenant", required=True)
    parser.add_argument("--stream", required=True)
    parser.add_argument("--consumer", required=True)
    parser.add_argument("--messages", type=int, required=True)
    parser.add_argument("--size", type=int, required=True)
    args = parser.parse_args(argv)
    rate = asyncio.run(_in_pod(args))
    sys.stdout.write(RESULT_PREFIX + json.dumps({"msgs_per_s": rate}) + "\n")


if __name__ == "__main__":
    main()
