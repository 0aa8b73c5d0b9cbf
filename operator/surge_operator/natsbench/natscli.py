"""`nats bench` (natscli, the NATS project's own benchmark) as the broker's baseline.

Every function takes `nats`: the command that runs natscli with its server and identity
already chosen. On loopback that is the binary with `--server/--user/--password`; in a
cluster it is `kubectl exec` into the bench pod, whose environment names the server and
the operator's credentials (NATS_URL, NATS_USER, NATS_PASSWORD), so no password ever sits
on a command line.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

GO_TOOL = Path(__file__).resolve().parents[3] / "tools" / "go-tool.sh"
NATSCLI_VERSION = "v0.5.0"  # keep in step with the Makefile's NATSCLI_VERSION
#: publishers in `nats bench` (asynchronous publish, batches of 500): 4 matches the four
#: HTTP connections that feed the gateway in Surge's end-to-end run
CLIENTS = 4
#: how long one `nats bench` run may take before it counts as failed
RUN_TIMEOUT_S = 600


def natscli() -> str:
    """The pinned natscli binary (built once from its Go module, cached)."""
    args = ["bash", str(GO_TOOL), "nats", "github.com/nats-io/natscli", NATSCLI_VERSION, "./nats"]
    out = subprocess.run(args, check=True, capture_output=True, text=True)
    return out.stdout.strip().splitlines()[-1]


def loopback_command(binary: str, url: str, user: str, password: str) -> list[str]:
    return [binary, "--server", url, "--user", user, "--password", password]


# natscli v0.5 prints each client's rate first ("[1] 5,905 msgs/sec") and then "...
# aggregated stats: 13,527 msgs/sec" ("... publisher stats: ..." for one client); older
# versions "Pub stats: ...". Only the aggregate is the broker's figure: one client's rate
# of several is about 1/clients of it.
_RATE = re.compile(
    r"(?:aggregated stats|publisher stats|Pub stats):\s*([\d,]+(?:\.\d+)?)\s*msgs/sec"
)


def parse_nats_bench(output: str) -> float:
    """The aggregate publish rate of all the clients `nats bench` ran."""
    match = _RATE.search(output)
    if match is None:
        raise RuntimeError(f"no aggregate msgs/sec in nats bench output:\n{output[-2000:]}")
    return float(match.group(1).replace(",", ""))


def _run(args: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(args), check=False, capture_output=True, text=True, timeout=RUN_TIMEOUT_S
    )


def pub_args(
    subject: str, stream: str, *, clients: int, messages: int, size: int, replicas: int
) -> list[str]:
    return [
        "bench", "js", "pub", "async", subject,
        "--stream", stream,
        "--clients", str(clients),
        "--msgs", str(messages),
        "--size", f"{size}B",
        "--replicas", str(replicas),
        "--storage", "file",
        "--create",
        "--purge",
        "--no-progress",
    ]  # fmt: skip


def run_nats_bench(
    nats: Sequence[str],
    *,
    replicas: int,
    messages: int,
    size: int,
    clients: int = CLIENTS,
) -> float:
    """`nats bench js pub async` into a fresh file-storage stream, deleted afterwards."""
    tag = time.time_ns()
    stream = f"natsbench{tag}"
    args = pub_args(
        f"natsbench.{tag}",
        stream,
        clients=clients,
        messages=messages,
        size=size,
        replicas=replicas,
    )
    try:
        out = _run([*nats, *args])
    finally:  # its replicated stream would otherwise stay beside every later row
        _run([*nats, "stream", "rm", "--force", stream])
    if out.returncode != 0:  # never echo the command line: it may hold a password
        raise RuntimeError(f"nats bench (R{replicas}) failed: {(out.stdout + out.stderr)[-800:]}")
    return parse_nats_bench(out.stdout + out.stderr)


def run_nats_bench_end_to_end(
    nats: Sequence[str],
    *,
    messages: int,
    size: int,
    clients: int = CLIENTS,
    replicas: int = 3,
) -> float:
    """`nats bench js consume` (its durable consumer, explicit acks) draining an R3 stream
    while `nats bench js pub async` fills it: the consumer's aggregate msg/s."""
    tag = time.time_ns()
    stream, subject = f"natsbench{tag}", f"natsbench.{tag}"
    common = ["--stream", stream, "--clients", str(clients), "--no-progress"]
    pub = [*nats, "bench", "js", "pub", "async", subject, *common, "--size", f"{size}B"]
    try:
        # The stream as run_nats_bench makes it, then empty, so the consumer starts first.
        made = _run(
            [*pub, "--msgs", "1", "--replicas", str(replicas), "--storage", "file", "--create"]
        )
        if made.returncode != 0 or _run([*nats, "stream", "purge", "--force", stream]).returncode:
            raise RuntimeError(f"nats bench end to end: no stream: {made.stderr[-400:]}")
        consume_args = [*common, "--msgs", str(messages), "--acks", "explicit"]
        consume = subprocess.Popen(
            [*nats, "bench", "js", "consume", *consume_args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            deadline = time.monotonic() + 30.0
            while _run([*nats, "consumer", "info", stream, "nats-bench", "--json"]).returncode:
                if time.monotonic() > deadline or consume.poll() is not None:
                    raise RuntimeError("nats bench js consume made no consumer within 30 s")
            published = _run([*pub, "--msgs", str(messages)])
            if published.returncode != 0:
                raise RuntimeError(
                    f"nats bench end to end: publish failed: {published.stderr[-400:]}"
                )
            out, _ = consume.communicate(timeout=RUN_TIMEOUT_S)
        finally:
            if consume.poll() is None:
                consume.kill()
                consume.wait()
        if consume.returncode != 0:
            raise RuntimeError(f"nats bench js consume failed: {out[-800:]}")
        return parse_nats_bench(out)
    finally:
        _run([*nats, "stream", "rm", "--force", stream])
