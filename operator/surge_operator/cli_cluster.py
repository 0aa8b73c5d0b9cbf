"""`surge status | failback | drain-region | check-install`: the commands that talk to a
cluster. Parse, call `cluster_commands`, render; nothing else.

Exit codes, the same for every `surge` command: 0 done, 1 failed (the cluster said no, the
object is missing, a wait timed out, the API server is unreachable), 2 usage (unknown
option, bad value, a region the cluster does not have). Long waits show a rich spinner on
stderr, so stdout stays clean for `--output json|yaml`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
import yaml
from rich.console import Console

from surge_operator.cluster_view import DEFAULT_DECISIONS, ClusterView

if TYPE_CHECKING:
    from surge_operator.kube import HttpKubeApi

T = TypeVar("T")
EXIT_FAILURE = 1
EXIT_USAGE = 2


class Output(StrEnum):
    TABLE = "table"
    JSON = "json"
    YAML = "yaml"


NamespaceOption = Annotated[
    str | None,
    typer.Option(
        "--namespace", "-n", help="Namespace; defaults to the kubeconfig context's namespace."
    ),
]
OutputOption = Annotated[Output, typer.Option("--output", "-o", help="table, json or yaml.")]
WaitOption = Annotated[
    bool, typer.Option("--wait/--no-wait", help="Wait until the operator has carried it out.")
]
TimeoutOption = Annotated[float, typer.Option("--timeout", min=1, help="Seconds to wait.")]

_err = Console(stderr=True)


def run_against_cluster(
    work: Callable[[HttpKubeApi, str], Awaitable[T]], namespace: str | None
) -> T:
    """Connect with the kubeconfig (or in-cluster account), run `work(kube, namespace)`,
    close; Surge and API errors become exit code 1 with the message on stderr."""
    from surge_operator.cluster_commands import UsageError
    from surge_operator.errors import SurgeError
    from surge_operator.kube import HttpKubeApi

    async def main() -> T:
        kube = await HttpKubeApi.connect(component="surge-cli")
        try:
            return await work(kube, namespace or kube.default_namespace or "default")
        finally:
            await kube.close()

    try:
        return asyncio.run(main())
    except UsageError as exc:
        _err.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(EXIT_USAGE) from None
    except SurgeError as exc:
        _err.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(EXIT_FAILURE) from None
    except Exception as exc:  # kubeconfig missing or broken, connection refused...
        _err.print(f"[red]error:[/red] {type(exc).__name__}: {exc}")
        raise typer.Exit(EXIT_FAILURE) from None


@contextmanager
def spinner(title: str, quiet: bool) -> Iterator[Callable[[str], None]]:
    """A progress callback: a live spinner line on stderr (nothing when quiet)."""
    if quiet:
        yield lambda _words: None
        return
    with _err.status(title) as status:
        yield lambda words: status.update(f"{title}: {words}")


def render(view: ClusterView, output: Output) -> None:
    if output is Output.JSON:
        typer.echo(json.dumps(view.as_dict(), indent=2))
    elif output is Output.YAML:
        typer.echo(yaml.safe_dump(view.as_dict(), sort_keys=False), nl=False)
    else:
        Console().print(view.table())


def status(
    name: Annotated[str, typer.Argument(help="MessagingCluster name.")],
    namespace: NamespaceOption = None,
    output: OutputOption = Output.TABLE,
    decisions: Annotated[
        int, typer.Option("--decisions", min=0, help="How many recent decisions to show.")
    ] = DEFAULT_DECISIONS,
) -> None:
    """Phase, replicas, level, active region, mirror lag and the last decisions with reasons."""
    from surge_operator import cluster_commands

    view = run_against_cluster(
        lambda kube, ns: cluster_commands.status(kube, ns, name, decisions),
        namespace,
    )
    render(view, output)


def failback(
    name: Annotated[str, typer.Argument(help="MessagingCluster name.")],
    namespace: NamespaceOption = None,
    wait: WaitOption = True,
    timeout: TimeoutOption = 300.0,
    output: OutputOption = Output.TABLE,
) -> None:
    """Move traffic back to the original primary region (once its NATS answers again)."""
    from surge_operator import cluster_commands

    with spinner(f"failback {name}", quiet=False) as progress:
        view = run_against_cluster(
            lambda kube, ns: cluster_commands.failback(
                kube, ns, name, wait=wait, deadline_s=timeout, progress=progress
            ),
            namespace,
        )
    render(view, output)


def drain_region(
    name: Annotated[str, typer.Argument(help="MessagingCluster name.")],
    region: Annotated[str, typer.Argument(help="Region to take out of service.")],
    namespace: NamespaceOption = None,
    undo: Annotated[bool, typer.Option("--undo", help="Put the region back in service.")] = False,
    wait: WaitOption = True,
    timeout: TimeoutOption = 300.0,
    output: OutputOption = Output.TABLE,
) -> None:
    """Take a region out of service: no pods scheduled there, active role moved away."""
    from surge_operator import cluster_commands

    with spinner(f"drain-region {name} {region}", quiet=False) as progress:
        view = run_against_cluster(
            lambda kube, ns: cluster_commands.drain_region(
                kube, ns, name, region, undo=undo, wait=wait, deadline_s=timeout, progress=progress
            ),
            namespace,
        )
    render(view, output)


def check_install(
    operator_namespace: Annotated[str, typer.Option(help="Namespace of the operator.")],
    operator_deployment: Annotated[str, typer.Option(help="Operator Deployment name.")],
    namespace: Annotated[
        str, typer.Option("--namespace", "-n", help="Where to create the throwaway cluster.")
    ],
    nats_url: Annotated[str, typer.Option(help="NATS URL for the throwaway cluster.")] = (
        "nats://nats:4222"
    ),
    timeout: TimeoutOption = 120.0,
) -> None:
    """What `helm test` runs: the operator is Ready and a throwaway MessagingCluster reconciles."""
    from surge_operator import cluster_commands

    check = cluster_commands.InstallCheck(
        operator_namespace=operator_namespace,
        operator_deployment=operator_deployment,
        namespace=namespace,
        nats_url=nats_url,
        timeout=timeout,
    )
    # helm test shows the pod's log: plain lines, not a live spinner.
    proven = run_against_cluster(
        lambda kube, _ns: cluster_commands.check_install(kube, check, _err.print),
        namespace,
    )
    for line in proven:
        typer.echo(f"ok: {line}")


def register(app: typer.Typer) -> None:
    """Add the cluster commands to the root `surge` app."""
    app.command()(status)
    app.command()(failback)
    app.command("drain-region")(drain_region)
    app.command("check-install")(check_install)
