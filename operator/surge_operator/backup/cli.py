"""Typer commands for backups: `surge backup run|list`, `surge restore`, `surge bench backup`.

Registered by surge_operator.cli; the work is imported lazily so `surge --help` stays fast.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

backup_app = typer.Typer(help="Back up a MessagingCluster's streams and KV buckets, list backups.")

Output = Annotated[str, typer.Option("--output", "-o", help="json, yaml or table.")]


def _logging(default_level: str) -> None:
    """Logs go to stderr, so `--output json` on stdout stays one clean document."""
    from surge_workers.logs import apply_logging

    apply_logging(
        os.environ.get("SURGE_LOG_LEVEL", default_level), os.environ.get("SURGE_LOG_FORMAT", "auto")
    )


def _fail(exc: Exception) -> NoReturn:
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(1)


def _terminate(exc: Exception, code: int) -> NoReturn:
    """Fail with `code`; in a pod, the message also becomes the container's termination
    message, which the operator puts into the Restored condition."""
    from surge_operator.backup.contract import TERMINATION_LOG

    log = Path(TERMINATION_LOG)
    if log.exists():  # the kubelet's file; never create one outside a pod
        with contextlib.suppress(OSError):
            log.write_text(f"{exc}"[:4000])
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(code)


def _check_output(output: str) -> None:
    if output not in ("json", "yaml", "table"):
        raise typer.BadParameter("must be json, yaml or table", param_hint="--output")


def _emit(payload: Any, output: str) -> None:
    from surge_operator.backup.command import render

    typer.echo(render(payload, output))


@backup_app.command("run")
def backup_run(
    cluster: Annotated[str, typer.Option(help="<namespace>/<name> of the MessagingCluster.")],
    stream: Annotated[str, typer.Option(help="The cluster's JetStream stream.")],
    target: Annotated[str, typer.Option(help="s3://BUCKET[/PREFIX] or dir:/PATH.")],
    subject_prefix: Annotated[str, typer.Option(help="The stream's subject prefix.")] = "support",
    keep: Annotated[int, typer.Option(min=1, help="Complete backups to keep.")] = 7,
    nats_url: Annotated[str | None, typer.Option(help="Overrides SURGE_NATS_URL.")] = None,
    api_prefix: Annotated[str, typer.Option(help="JetStream API prefix.")] = "$JS.API",
    record: Annotated[
        bool, typer.Option(help="Record the outcome in NATS for the operator.")
    ] = True,
    output: Output = "table",
) -> None:
    """Snapshot the stream, dead-letter stream and KV buckets, then prune old backups."""
    from surge_operator.backup.command import run, run_backup
    from surge_operator.errors import SurgeError

    _check_output(output)
    _logging("info")
    if "/" not in cluster:
        raise typer.BadParameter("must be <namespace>/<name>", param_hint="--cluster")
    try:
        result = run(
            run_backup(
                cluster=cluster,
                stream=stream,
                subject_prefix=subject_prefix,
                target=target,
                keep=keep,
                api_prefix=api_prefix,
                nats_url=nats_url,
                record=record,
            )
        )
    except SurgeError as exc:
        _fail(exc)
    _emit(result, output)


@backup_app.command("list")
def backup_list(
    cluster: Annotated[str, typer.Option(help="<namespace>/<name> of the MessagingCluster.")],
    target: Annotated[str, typer.Option(help="s3://BUCKET[/PREFIX] or dir:/PATH.")],
    output: Output = "table",
) -> None:
    """List a cluster's backups, oldest first; incomplete ones are marked."""
    from surge_operator.backup.command import run, run_list
    from surge_operator.errors import SurgeError

    _check_output(output)
    _logging("warning")
    try:
        _emit(run(run_list(target=target, cluster=cluster)), output)
    except SurgeError as exc:
        _fail(exc)


def restore(
    source: Annotated[
        str,
        typer.Option(
            "--from", help="<store>/<namespace>/<name>/<id|latest>, e.g. s3://b/prod/ns/mc/latest."
        ),
    ],
    into: Annotated[
        Path | None,
        typer.Option(help="Manifest of the NEW MessagingCluster to create with spec.restoreFrom."),
    ] = None,
    nats_url: Annotated[
        str | None, typer.Option(help="Restore straight into this NATS instead (no Kubernetes).")
    ] = None,
    stream: Annotated[
        str | None,
        typer.Option(help="With --nats-url: the stream to restore as (default: the backup's)."),
    ] = None,
    subject_prefix: Annotated[
        str | None,
        typer.Option(help="With --nats-url: must equal the backup's subject prefix if given."),
    ] = None,
    namespace: Annotated[str | None, typer.Option("--namespace", "-n")] = None,
    timeout: Annotated[
        float, typer.Option(help="Seconds to wait for the Restored condition.")
    ] = 600,
    output: Output = "table",
) -> None:
    """Restore a backup: into a new MessagingCluster (--into FILE) or into a NATS (--nats-url)."""
    from surge_operator.errors import RestoreConflictError, SurgeError

    _check_output(output)
    _logging("info")
    if (into is None) == (nats_url is None):
        raise typer.BadParameter("give exactly one of --into FILE or --nats-url URL")
    try:
        if nats_url is not None:
            from surge_operator.backup.command import run, run_restore

            payload = run(
                run_restore(
                    source=source,
                    nats_url=nats_url,
                    stream=stream,
                    subject_prefix=subject_prefix,
                    api_prefix="$JS.API",
                )
            )
        else:
            from surge_operator.backup.kube_restore import restore_into_new_cluster

            assert into is not None
            payload = restore_into_new_cluster(source, into, namespace, timeout)
    except RestoreConflictError as exc:
        # Retrying cannot help: a distinct exit code lets the restore Job fail at once
        # (podFailurePolicy) and its termination message name the field to change.
        from surge_operator.backup.contract import CONFLICT_EXIT_CODE

        _terminate(exc, CONFLICT_EXIT_CODE)
    except SurgeError as exc:
        _fail(exc)
    _emit(payload, output)


def bench_backup(
    messages: Annotated[
        int, typer.Option(min=1, help="Messages to publish before the backup.")
    ] = 20_000,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Back up and restore through a real nats-server and S3-compatible server on loopback."""
    from surge_operator.backup.bench import render_bench, run_bench
    from surge_operator.errors import SurgeError

    _logging("warning")
    try:
        result = run_bench(messages)
    except SurgeError as exc:
        _fail(exc)
    typer.echo(render_bench(result, as_json))
    if result["lost"]:
        sys.exit(1)
