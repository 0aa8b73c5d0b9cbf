"""The `surge` command line: parse arguments, call library code, render output. No logic here.

Each command imports its implementation lazily so `surge --help` stays fast and the
commands that need no cluster never import kopf or kubernetes.
"""

from __future__ import annotations

import typer

from surge_operator import __version__

app = typer.Typer(
    name="surge",
    help="Surge: keep customer-support messaging alive through traffic surges.",
    no_args_is_help=True,
    add_completion=False,
)
bench_app = typer.Typer(
    help="Benchmarks that print ratios against a baseline measured in the same run."
)
app.add_typer(bench_app, name="bench")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"surge {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Surge: keep customer-support messaging alive through traffic surges."""


@app.command()
def crds(
    markdown: bool = typer.Option(False, "--markdown", help="Print the field reference instead."),
) -> None:
    """Print the MessagingCluster CustomResourceDefinition generated from the models."""
    from surge_operator.crdgen import render_crd_yaml, render_reference_markdown

    typer.echo(render_reference_markdown() if markdown else render_crd_yaml(), nl=False)


def main() -> None:
    app()
