"""Reading natscli's output: the aggregate rate, never one client's, and never a zero."""

from __future__ import annotations

import pytest

from surge_operator.natsbench.natscli import loopback_command, parse_nats_bench, pub_args

# natscli v0.5.0's output (trimmed): each client's rate comes before the aggregate.
V05_OUTPUT = """
  [1] 5,905 msgs/sec ~ 5.8 MiB/sec ~ min: 29,804.08us ~ avg: 84,603.22us (2,500 msgs)
  [2] 3,812 msgs/sec ~ 3.7 MiB/sec ~ min: 73,426.41us ~ avg: 129,665.70us (2,500 msgs)

 NATS JetStream asynchronous publisher aggregated stats: 13,527 msgs/sec ~ 13 MiB/sec
 message rates min 3,382 | avg 4,247 | max 5,905 | stddev 976 msgs
"""


def test_the_aggregate_rate_is_read_not_the_first_clients() -> None:
    assert parse_nats_bench(V05_OUTPUT) == 13527.0


def test_one_clients_run_has_its_own_stats_line() -> None:
    out = "NATS JetStream asynchronous publisher stats: 8,247 msgs/sec ~ 8.1 MiB/sec ~ min:"
    assert parse_nats_bench(out) == 8247.0


def test_the_older_pub_stats_line_is_the_aggregate_too() -> None:
    out = " [1] 3,000 msgs/sec ~ 3 MB/sec\nPub stats: 12,345 msgs/sec ~ 12.06 MB/sec"
    assert parse_nats_bench(out) == 12345.0


def test_per_client_rates_alone_are_an_error_not_the_aggregate() -> None:
    with pytest.raises(RuntimeError, match="no aggregate"):
        parse_nats_bench("  [1] 5,905 msgs/sec ~ 5.8 MiB/sec")


def test_output_without_a_rate_is_an_error_not_a_zero() -> None:
    with pytest.raises(RuntimeError, match="no aggregate msgs/sec"):
        parse_nats_bench("nats: error: connection refused")


def test_the_publish_row_makes_its_own_file_stream_of_the_asked_replicas() -> None:
    args = pub_args("s.1", "S1", clients=4, messages=1000, size=512, replicas=3)
    assert args[:5] == ["bench", "js", "pub", "async", "s.1"]
    assert args[args.index("--stream") + 1] == "S1"
    assert args[args.index("--replicas") + 1] == "3"
    assert args[args.index("--storage") + 1] == "file"
    assert args[args.index("--size") + 1] == "512B"
    assert args[args.index("--clients") + 1] == "4"
    assert args[args.index("--msgs") + 1] == "1000"
    assert "--create" in args
    assert "--purge" in args


def test_the_loopback_command_names_server_and_identity() -> None:
    assert loopback_command("/bin/nats", "nats://a:1,nats://b:2", "operator", "pw") == [
        "/bin/nats", "--server", "nats://a:1,nats://b:2", "--user", "operator", "--password", "pw"
    ]  # fmt: skip
