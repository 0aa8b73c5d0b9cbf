"""`surge dlq list | replay`: dead letters of a pipeline, read from and replayed into NATS.
Parse, call `surge_workers.dlq`, render; nothing else.

NATS connection and pipeline come from the same SURGE_* variables as the workers
(SURGE_NATS_URL, SURGE_NATS_CREDS_FILE, ..., SURGE_STREAM, SURGE_SUBJECT_PREFIX), or from
the options. Exit codes as for every `surge` command: 0 done, 1 failed (NATS unreachable,
a dead letter missing or not replayable), 2 usage.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import replace
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from nats.js import JetStreamContext

T = TypeVar("T")
EXIT_FAILURE = 1
EXIT_USAGE = 2

dlq_app = typer.Typer(help="Dead letters: list them, replay them into the pipeline.")
_err = Console(stderr=True)


class DlqOutput(StrEnum):
    TABLE = "table"
    JSON = "json"


OutputOption = Annotated[DlqOutput, typer.Option("--output", "-o", help="table or json.")]
NatsUrlOption = Annotated[
    str | None, typer.Option("--nats-url", help="NATS URL; default SURGE_NATS_URL.")
]
StreamOption = Annotated[
    str | None, typer.Option("--stream", help="Pipeline stream; default SURGE_STREAM.")
]
PrefixOption = Annotated[
    str | None,
    typer.Option("--subject-prefix", help="Subject prefix; default SURGE_SUBJECT_PREFIX."),
]


def _run(
    work: Callable[[JetStreamContext, str, str], Awaitable[T]],
    nats_url: str | None,
    stream: str | None,
    prefix: str | None,
) -> T:
    import nats

    from surge_workers.dlq import DeadLetterError, NatsFailure
    from surge_workers.errors import ConfigError
    from surge_workers.settings import NatsSettings, PipelineSettings

    try:
        settings = NatsSettings.from_env(os.environ)
        pipeline = PipelineSettings.from_env(os.environ)
    except ConfigError as exc:
        _err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(EXIT_USAGE) from None
    if nats_url:
        settings = replace(settings, servers=(nats_url,))

    # Connection errors are reported once, below, not as nats-py's logged tracebacks.
    logging.getLogger("nats.aio.client").setLevel(logging.CRITICAL)

    async def main() -> T:
        nc = await asyncio.wait_for(
            nats.connect(
                **settings.connect_options(),
                name="surge-dlq",
                # One attempt per server; nats-py 2.16 hangs on a failed first connect
                # with allow_reconnect=False or max_reconnect_attempts=0.
                max_reconnect_attempts=1,
                reconnect_time_wait=0.1,
                connect_timeout=5,
            ),
            timeout=15,
        )
        try:
            return await work(
                nc.jetstream(), stream or pipeline.stream, prefix or pipeline.subject_prefix
            )
        finally:
            await nc.close()

    try:
        return asyncio.run(main())
    except DeadLetterError as exc:
        _err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(EXIT_FAILURE) from None
    except NatsFailure as exc:
        _err.print(f"[red]error:[/red] NATS: {type(exc).__name__}: {exc}")
        raise typer.Exit(EXIT_FAILURE) from None


def _render(rows: list[dict[str, Any]], columns: tuple[str, ...], output: DlqOutput) -> None:
    if output is DlqOutput.JSON:
        typer.echo(json.dumps(rows, indent=2, sort_keys=True))
        return
    table = Table(*columns)
    for row in rows:
        table.add_row(*(str(row[c]) if row[c] is not None else "" for c in columns))
    Console().print(table)


@dlq_app.command("list")
def list_command(
    output: OutputOption = DlqOutput.TABLE,
    tenant: Annotated[str | None, typer.Option("--tenant", help="Only this tenant's.")] = None,
    after: Annotated[int, typer.Option("--after", min=0, help="After this DLQ sequence.")] = 0,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000)] = 100,
    nats_url: NatsUrlOption = None,
    stream: StreamOption = None,
    subject_prefix: PrefixOption = None,
) -> None:
    """List dead letters, oldest first: where they came from and why they died."""
    from surge_workers.dlq import list_dead_letters

    letters = _run(
        lambda js, s, p: list_dead_letters(js, s, p, tenant=tenant, after=after, limit=limit),
        nats_url,
        stream,
        subject_prefix,
    )
    _render(
        [letter.as_dict() for letter in letters],
        ("seq", "priority", "tenant", "conversation_id", "msg_id", "deliveries", "reason"),
        output,
    )


@dlq_app.command("replay")
def replay_command(
    seqs: Annotated[list[int], typer.Argument(help="Dead-letter sequences (from `list`).")],
    output: OutputOption = DlqOutput.TABLE,
    keep: Annotated[
        bool, typer.Option("--keep", help="Leave the dead letters in place after replaying.")
    ] = False,
    nats_url: NatsUrlOption = None,
    stream: StreamOption = None,
    subject_prefix: PrefixOption = None,
) -> None:
    """Re-publish dead letters to their original subjects under fresh tenant-scoped ids,
    with provenance; each is removed only once the stream confirmed its copy."""
    from surge_workers.dlq import replay_dead_letters

    if any(seq < 1 for seq in seqs):
        _err.print("[red]error:[/red] sequences start at 1")
        raise typer.Exit(EXIT_USAGE)
    done = _run(
        lambda js, s, p: replay_dead_letters(js, s, p, seqs, keep=keep),
        nats_url,
        stream,
        subject_prefix,
    )
    _render(
        [item.as_dict() for item in done],
        ("dead_letter_seq", "subject", "msg_id", "stream_seq", "duplicate", "removed"),
        output,
    )
