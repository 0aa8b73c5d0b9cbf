"""`surge bench nats`: what durability costs, and how close Surge gets to the broker.

Runs the operator's generated configuration for a managed region (3 servers, R3, the
per-role accounts) with LocalNatsCluster. With no kubeconfig support yet, it always
starts its own servers on loopback, and says so in the output.

nats_bench (msg/s, `nats bench js pub async` from natscli, the NATS project's own
benchmark, built from its Go module; same message count and size for every row; the
aggregate rate over all its clients)
    fsync_always   R3 on servers with `sync_interval: always` (Surge's managed default):
                   the best median over the client sweep (1, 4, 16 clients; 1 is the
                   tool's default, 4 matches Surge's 4 HTTP connections)
    fsync_lazy     the same on servers with nats-server's default (`sync_interval: 2m`)
    r3             = fsync_always (the durable default)
    r1             R1 on the fsync-always servers, 4 clients
fsync_cost_ratio       fsync_always ÷ fsync_lazy
r1_vs_r3_ratio         r3 ÷ r1 (0 when every R1 run failed: nats bench gives up on its own
                       ack timeout when R1 fsyncs every message on an overloaded disk)
surge_msgs_per_s       end to end on the fsync-always R3 servers: `surge-gateway` (own
                       process, HTTP batches of 500 over 4 connections: the same 4 x 500
                       messages in flight as `nats bench`'s 4 clients; every message acked
                       by JetStream before the 202) -> stream -> `surge-worker` (own
                       process, noop handler) acking each; from the first POST until
                       JetStream's ack floor of the consumer covers the last message
surge_vs_nats_bench    surge_msgs_per_s ÷ nats_bench.fsync_always (goal >= 0.5)
nats_bench.end_to_end  the broker's own end to end on the same R3 fsync-always servers, which
                       `nats bench js pub` alone is not: `nats bench js consume` (durable,
                       explicit acks, 4 clients) receiving while `nats bench js pub async`
                       (4 clients) publishes; the consumer's aggregate rate
surge_vs_nats_end_to_end  surge_msgs_per_s ÷ nats_bench.end_to_end (context: the goal stays
                       on surge_vs_nats_bench)

Every figure is the median of `rounds` runs; all runs are printed. In each round the R3
rows and Surge run back to back and the slow R1 row last, and every `nats bench` stream is
deleted after its run, so no row runs beside another's leftovers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import nats

from surge_operator.api import parse_spec
from surge_operator.natscluster import LocalNatsCluster
from surge_operator.ownserver import start_own_server, stop
from surge_operator.resources import BuildContext
from surge_operator.resources.jetstream import pipeline_config
from surge_operator.resources.nats.accounts import Role
from surge_operator.resources.nats.config import Passwords, server_config
from surge_workers.contract import Priority as WirePriority
from surge_workers.contract import consumer_name
from surge_workers.pipeline import PipelineConfig
from surge_workers.provision import provision_pipeline

GOAL = 0.5
#: publishers in `nats bench` (asynchronous publish, batches of 500): 4 matches the four
#: HTTP connections that feed the gateway in the end-to-end run; the R3 rows are swept
#: over these and the best is the broker's figure
CLIENTS = 4
CLIENT_SWEEP = (1, 4, 16)
HTTP_CONNECTIONS = 4
NATS_BENCH_ATTEMPTS = 3
HTTP_BATCH = 500
WORKER_CONCURRENCY = 64
WORKER_PREFETCH = 1024
TENANT = "bench"
TOKEN = "bench-token"
GO_TOOL = Path(__file__).resolve().parents[2] / "tools" / "go-tool.sh"
NATSCLI_VERSION = "v0.5.0"  # keep in step with the Makefile's NATSCLI_VERSION


@dataclass
class NatsBenchResult:
    messages: int
    size: int
    rounds: int
    where: str
    nats_bench: dict[str, float] = field(default_factory=dict)
    #: the client count of the sweep that gave each R3 row's figure
    nats_bench_clients: dict[str, int] = field(default_factory=dict)
    fsync_cost_ratio: float = 0.0
    r1_vs_r3_ratio: float = 0.0
    surge_msgs_per_s: float = 0.0
    surge_vs_nats_bench: float = 0.0
    surge_vs_nats_end_to_end: float = 0.0
    runs: dict[str, list[float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def natscli() -> str:
    """The pinned natscli binary (built once from its Go module, cached)."""
    args = ["bash", str(GO_TOOL), "nats", "github.com/nats-io/natscli", NATSCLI_VERSION, "./nats"]
    out = subprocess.run(args, check=True, capture_output=True, text=True)
    return out.stdout.strip().splitlines()[-1]


def _ctx(sync_interval: str) -> BuildContext:
    spec = {
        "regions": [
            {
                "name": "bench",
                "role": "primary",
                "nats": {"managed": {"syncInterval": sync_interval}},
            }
        ],
        "stream": {"name": "SURGEBENCH", "subjectPrefix": "surgebench", "partitions": 16},
        "gateway": {"rateLimitPerTenant": 1e9},
    }
    return BuildContext(name="bench", namespace="bench", uid="bench", spec=parse_spec(spec))


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


def run_nats_bench(
    binary: str,
    url: str,
    password: str,
    *,
    replicas: int,
    messages: int,
    size: int,
    clients: int = CLIENTS,
) -> float:
    tag = time.time_ns()
    auth = [binary, "--server", url, "--user", Role.OPERATOR.value, "--password", password]
    args = [
        *auth,
        "bench", "js", "pub", "async", f"natsbench.{tag}",
        "--stream", f"natsbench{tag}",
        "--clients", str(clients),
        "--msgs", str(messages),
        "--size", f"{size}B",
        "--replicas", str(replicas),
        "--storage", "file",
        "--create",
        "--purge",
        "--no-progress",
    ]  # fmt: skip
    try:
        out = subprocess.run(args, check=False, capture_output=True, text=True, timeout=600)
    finally:  # its replicated stream would otherwise stay beside every later row
        subprocess.run(
            [*auth, "stream", "rm", "--force", f"natsbench{tag}"],
            check=False,
            capture_output=True,
            timeout=60,
        )
    if out.returncode != 0:  # never echo the command line: it holds a password
        raise RuntimeError(f"nats bench (R{replicas}) failed: {(out.stdout + out.stderr)[-800:]}")
    return parse_nats_bench(out.stdout + out.stderr)


def run_nats_bench_end_to_end(
    binary: str,
    url: str,
    password: str,
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
    auth = [binary, "--server", url, "--user", Role.OPERATOR.value, "--password", password]
    common = ["--stream", stream, "--clients", str(clients), "--no-progress"]
    pub = [*auth, "bench", "js", "pub", "async", subject, *common, "--size", f"{size}B"]

    def run(args: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(args, check=False, capture_output=True, text=True, timeout=600)

    try:
        # The stream as run_nats_bench makes it, then empty, so the consumer starts first.
        made = run(
            [*pub, "--msgs", "1", "--replicas", str(replicas), "--storage", "file", "--create"]
        )
        if made.returncode != 0 or run([*auth, "stream", "purge", "--force", stream]).returncode:
            raise RuntimeError(f"nats bench end to end: no stream: {made.stderr[-400:]}")
        consume = subprocess.Popen(
            [
                *auth,
                "bench",
                "js",
                "consume",
                *common,
                "--msgs",
                str(messages),
                "--acks",
                "explicit",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            deadline = time.monotonic() + 30.0
            while run([*auth, "consumer", "info", stream, "nats-bench", "--json"]).returncode:
                if time.monotonic() > deadline or consume.poll() is not None:
                    raise RuntimeError("nats bench js consume made no consumer within 30 s")
            published = run([*pub, "--msgs", str(messages)])
            if published.returncode != 0:
                raise RuntimeError(
                    f"nats bench end to end: publish failed: {published.stderr[-400:]}"
                )
            out, _ = consume.communicate(timeout=600)
        finally:
            if consume.poll() is None:
                consume.kill()
                consume.wait()
        if consume.returncode != 0:
            raise RuntimeError(f"nats bench js consume failed: {out[-800:]}")
        return parse_nats_bench(out)
    finally:
        run([*auth, "stream", "rm", "--force", stream])


@contextlib.contextmanager
def cluster(sync_interval: str, passwords: Passwords, root: Path) -> Any:
    ctx = _ctx(sync_interval)
    config = server_config(ctx, ctx.spec.regions[0], passwords)
    overrides = {"max_payload": 8 * 1024 * 1024, "lame_duck_grace_period": "1s"}
    with LocalNatsCluster(
        config, 3, name=f"bench-{sync_interval}", root=root, overrides=overrides
    ) as c:
        yield ctx, c


def _process(main: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", f"from surge_workers.cli import {main}; {main}()"], env=env
    )


#: bounds of the wait between two looks at the ack floor
POLL_MIN, POLL_MAX = 0.05, 1.0


def poll_delay(remaining: int, rate: float) -> float:
    """Half the time the consumer still needs at its observed ack rate, within bounds.

    Each `consumer info` on an R3 consumer cost the servers about 1.2 ms of CPU (measured
    idle: 110 ms more over 5 s at one look per 50 ms), about 10 µs a message over a
    3-6 s drain at a fixed 50 ms, CPU `nats bench` is not charged. Halving the estimate
    each time looks a handful of times per run and still ends within POLL_MIN of the
    last ack."""
    if rate <= 0:
        return POLL_MIN * 4
    return min(POLL_MAX, max(POLL_MIN, remaining / rate / 2))


async def _acked_through(js: Any, stream: str, consumer: str, last_seq: int, within: float) -> None:
    """Until JetStream's ack floor of ``consumer`` reaches ``last_seq``: every message
    acknowledged as the server sees it (not as a worker's counter says)."""
    deadline = time.monotonic() + within
    seen: tuple[float, int] | None = None
    while True:
        info = await js.consumer_info(stream, consumer)
        floor = info.ack_floor.stream_seq if info.ack_floor is not None else 0
        if floor >= last_seq:
            return
        now = time.monotonic()
        if now > deadline:
            raise TimeoutError(f"{consumer}: ack floor {info.ack_floor} short of {last_seq}")
        rate = (floor - seen[1]) / (now - seen[0]) if seen is not None and now > seen[0] else 0.0
        seen = (now, floor)
        await asyncio.sleep(poll_delay(last_seq - floor, rate))


async def surge_end_to_end(
    ctx: BuildContext, urls: list[str], passwords: Passwords, messages: int, size: int
) -> float:
    """`surge-gateway` and `surge-worker` (each its own process, as in a pod) on the R3
    stream; from the first POST until JetStream's ack floor covers the last message."""
    from surge_workers.loadclient import batch_bodies, post_bodies

    config: PipelineConfig = pipeline_config(ctx.stream, ctx.spec)
    op = await nats.connect(servers=urls, user="operator", password=passwords[Role.OPERATOR])
    js = op.jetstream(timeout=10)
    await provision_pipeline(js, config)
    await js.purge_stream(config.stream)
    consumer = consumer_name(WirePriority.NORMAL)
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="surge-bench-nats-") as tmp:
        tokens = Path(tmp) / "tokens.json"
        tokens.write_text(json.dumps({TENANT: [TOKEN]}))
        common = dict(os.environ)
        common.update(
            SURGE_NATS_URL=",".join(urls),
            SURGE_STREAM=config.stream,
            SURGE_SUBJECT_PREFIX=config.subject_prefix,
            SURGE_PARTITIONS=str(config.partitions),
            SURGE_LOG_LEVEL="error",
        )
        gateway = dict(common)
        gateway.update(
            SURGE_NATS_USER=Role.GATEWAY.value,
            SURGE_NATS_PASSWORD=passwords[Role.GATEWAY],
            SURGE_HTTP_HOST="127.0.0.1",
            SURGE_METRICS_PORT="0",
            SURGE_TOKENS_FILE=str(tokens),
            SURGE_RATE_LIMIT="0",
        )
        worker = dict(common)
        worker.update(
            SURGE_NATS_USER=Role.WORKER.value,
            SURGE_NATS_PASSWORD=passwords[Role.WORKER],
            SURGE_HANDLER="surge_workers.handlers:noop",
            SURGE_COMPOSER="none",
            SURGE_PRIORITIES="normal",
            SURGE_CONCURRENCY=str(WORKER_CONCURRENCY),
            SURGE_PREFETCH=str(WORKER_PREFETCH),
            SURGE_METRICS_HOST="127.0.0.1",
        )
        try:
            # Fresh ports, and the answer must come from our own child (ownserver).
            proc, port = await start_own_server(
                lambda p: _process("gateway_main", {**gateway, "SURGE_HTTP_PORT": str(p)}),
                "/readyz",
            )
            procs.append(proc)
            proc, _ = await start_own_server(
                lambda p: _process("worker_main", {**worker, "SURGE_METRICS_PORT": str(p)}),
                "/readyz",
            )
            procs.append(proc)
            # Encoded before the clock starts, as nats bench makes its payload before it.
            bodies = batch_bodies(TENANT, messages, size, batch=HTTP_BATCH)
            started = time.perf_counter()
            await post_bodies(
                f"http://127.0.0.1:{port}", TOKEN, bodies, messages, parallel=HTTP_CONNECTIONS
            )
            last = (await js.stream_info(config.stream)).state.last_seq
            await _acked_through(js, config.stream, consumer, last, within=300.0)
            return messages / (time.perf_counter() - started)
        finally:
            for proc in procs:
                stop(proc)
            await op.close()


def run_bench(messages: int = 20_000, size: int = 1024, rounds: int = 3) -> NatsBenchResult:
    binary = natscli()
    passwords = Passwords({role: os.urandom(12).hex() for role in Role})
    result = NatsBenchResult(
        messages=messages,
        size=size,
        rounds=rounds,
        where="3 nats-servers on loopback (no kubeconfig support yet), generated config",
    )
    runs: dict[str, list[float]] = {
        **{f"{row}@{c}": [] for c in CLIENT_SWEEP for row in ("fsync_always", "fsync_lazy")},
        "end_to_end": [],
        "r1": [],
        "surge": [],
    }

    def pub(url: str, *, replicas: int, clients: int = CLIENTS) -> float:
        password = passwords[Role.OPERATOR]
        # nats bench gives up on its own ack timeout when the machine is overloaded (seen
        # with R1 + fsync always): run it again, at most twice, and say so.
        for attempt in range(1, NATS_BENCH_ATTEMPTS + 1):
            try:
                return run_nats_bench(
                    binary,
                    url,
                    password,
                    replicas=replicas,
                    messages=messages,
                    size=size,
                    clients=clients,
                )
            except RuntimeError as err:
                if attempt == NATS_BENCH_ATTEMPTS:
                    raise
                last = str(err).strip().splitlines()[-1]
                result.notes.append(
                    f"nats bench R{replicas} x{clients} attempt {attempt} failed: {last}"
                )
        raise AssertionError("unreachable")

    # Both clusters run at once and every round measures each row back to back, so load
    # from elsewhere on the machine hits all rows alike (paired, like surge bench dataplane).
    with (
        tempfile.TemporaryDirectory(prefix="surge-bench-nats-") as tmp,
        cluster("always", passwords, Path(tmp) / "always") as (ctx, durable),
        cluster("2m", passwords, Path(tmp) / "lazy") as (_, lazy),
    ):
        for _ in range(rounds):
            for clients in CLIENT_SWEEP:
                runs[f"fsync_always@{clients}"].append(
                    pub(",".join(durable.urls), replicas=3, clients=clients)
                )
                runs[f"fsync_lazy@{clients}"].append(
                    pub(",".join(lazy.urls), replicas=3, clients=clients)
                )
            try:  # context only: a failed row is reported
                runs["end_to_end"].append(
                    run_nats_bench_end_to_end(
                        binary,
                        ",".join(durable.urls),
                        passwords[Role.OPERATOR],
                        messages=messages,
                        size=size,
                    )
                )
            except RuntimeError as err:
                result.notes.append(f"nats bench end to end failed: {str(err)[-200:]}")
            runs["surge"].append(
                asyncio.run(surge_end_to_end(ctx, durable.urls, passwords, messages, size))
            )
            try:  # context only (not in surge_vs_nats_bench): a failed row is reported
                runs["r1"].append(pub(",".join(durable.urls), replicas=1))
            except RuntimeError:
                result.notes.append(f"nats bench R1 failed {NATS_BENCH_ATTEMPTS} times this round")
    med = {k: round(statistics.median(v), 1) if v else 0.0 for k, v in runs.items()}
    result.runs = {k: [round(x, 1) for x in v] for k, v in runs.items()}
    best: dict[str, int] = {}
    for row in ("fsync_always", "fsync_lazy"):
        best[row] = max(CLIENT_SWEEP, key=lambda c: med[f"{row}@{c}"])
    for row, clients in best.items():
        med[row] = med[f"{row}@{clients}"]
    result.nats_bench_clients = {**best, "r1": CLIENTS}
    result.nats_bench = {
        "fsync_always": med["fsync_always"],
        "fsync_lazy": med["fsync_lazy"],
        "r3": med["fsync_always"],
        "r1": med["r1"],
        "end_to_end": med["end_to_end"],
    }
    result.fsync_cost_ratio = round(med["fsync_always"] / med["fsync_lazy"], 3)
    result.r1_vs_r3_ratio = round(med["fsync_always"] / med["r1"], 3) if med["r1"] else 0.0
    result.surge_msgs_per_s = med["surge"]
    result.surge_vs_nats_bench = round(med["surge"] / med["fsync_always"], 3)
    if med["end_to_end"]:
        result.surge_vs_nats_end_to_end = round(med["surge"] / med["end_to_end"], 3)
    result.notes.append(
        f"nats bench: asynchronous publish (batches of 500), file storage, R3 rows swept over "
        f"{', '.join(map(str, CLIENT_SWEEP))} clients (the best median shown), R1 {CLIENTS}; "
        f"surge: {HTTP_CONNECTIONS} HTTP connections, batches of {HTTP_BATCH}, one "
        "surge-gateway and one surge-worker process"
    )
    return result


def render(result: NatsBenchResult) -> str:
    goal = "met" if result.surge_vs_nats_bench >= GOAL else "MISSED"
    nb, runs, clients = result.nats_bench, result.runs, result.nats_bench_clients
    rows = [
        *(
            (
                f"nats bench R3 fsync {label} x{c}",
                statistics.median(runs[f"{row}@{c}"]) if runs.get(f"{row}@{c}") else 0.0,
                runs.get(f"{row}@{c}", []),
            )
            for row, label in (("fsync_always", "always"), ("fsync_lazy", "lazy"))
            for c in CLIENT_SWEEP
        ),
        (f"nats bench R1 fsync always x{clients.get('r1', CLIENTS)}", nb["r1"], runs["r1"]),
        (
            f"nats bench pub+consume R3 x{CLIENTS}",
            nb.get("end_to_end", 0.0),
            runs.get("end_to_end", []),
        ),
        ("surge gateway->stream->worker", result.surge_msgs_per_s, runs["surge"]),
    ]
    lines = [
        f"surge bench nats: {result.messages} msgs x {result.size} B, {result.rounds} rounds "
        f"(median), {result.where}",
        *(
            f"  {name:<33}{rate:10,.0f} msg/s  runs {all_runs}"
            if all_runs
            else f"  {name:<33}    failed  (see notes)"
            for name, rate, all_runs in rows
        ),
        f"  nats bench R3 fsync always (best of the sweep, x{clients.get('fsync_always', 0)}) "
        f"{nb['fsync_always']:,.0f} msg/s; lazy x{clients.get('fsync_lazy', 0)} "
        f"{nb['fsync_lazy']:,.0f} msg/s",
        f"  fsync_cost_ratio (always/lazy) {result.fsync_cost_ratio:.3f}",
        f"  r1_vs_r3_ratio (R3/R1)         {result.r1_vs_r3_ratio:.3f}",
        f"  surge_vs_nats_bench            {result.surge_vs_nats_bench:.3f}"
        f"  (goal >= {GOAL}: {goal})",
        f"  surge_vs_nats_end_to_end       {result.surge_vs_nats_end_to_end:.3f}"
        "  (Surge ÷ nats bench publishing and consuming at once; context)",
    ]
    lines += [f"  note: {n}" for n in result.notes]
    return "\n".join(lines)
