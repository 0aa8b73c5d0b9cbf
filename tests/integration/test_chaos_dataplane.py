"""`surge chaos --short --json` on the real data plane: worker and gateway processes killed
(-9), a worker frozen (SIGSTOP) past its ack wait, 1 % poison messages, the stream
leader's nats-server killed (-9) in a three-server R3 cluster, the store's disk full,
a partition between regions (a network namespace) and its heal, a compressed soak. The contract's
invariants are read from the printed objects: nothing accepted lost, nothing doubled."""

from __future__ import annotations

import pytest
from tests.integration.chaos_support import chaos_json

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]


def run_chaos(*names: str) -> list[dict[str, object]]:
    scenarios, exit_code = chaos_json(*names)
    for s in scenarios:
        assert s["accepted"] == s["sent"]  # every message was eventually accepted
        assert (s["lost"], s["double_effects"]) == (0, 0), s
        assert s["transcript_order_violations"] == 0, s  # the order customers read
    assert exit_code == 0
    return scenarios


def test_process_faults_and_poison_lose_and_double_nothing() -> None:
    by_name = {
        s["name"]: s for s in run_chaos("worker-surge-kill-stop", "gateway-kill-9", "poison-1pct")
    }
    poison = by_name["poison-1pct"]
    assert poison["dead_lettered"] == poison["poison_accepted"] > 0  # each poison parked once


def test_a_frozen_gateway_loses_and_doubles_nothing() -> None:
    (frozen,) = run_chaos("gateway-sigstop")
    refused = frozen["refused_answers"]
    assert isinstance(refused, dict)
    assert refused.get("0", 0) > 0  # requests it held timed out and were sent again


def test_stream_leader_kill_in_an_r3_cluster_loses_and_doubles_nothing() -> None:
    (r3,) = run_chaos("nats-r3-server-kill-9")
    assert "stream leader" in str(r3["killed"])


def test_stream_leader_frozen_in_an_r3_cluster_loses_and_doubles_nothing() -> None:
    (r3,) = run_chaos("nats-r3-server-sigstop")
    assert "stream leader" in str(r3["frozen"])
    # The other two elected a leader while it slept; it woke up as a follower.
    assert r3["leader_after"] != str(r3["frozen"]).split()[0]


def test_a_full_disk_refuses_with_503_and_loses_nothing_acknowledged() -> None:
    (disk,) = run_chaos("disk-full")
    refused = disk["refused_answers"]
    assert isinstance(refused, dict)
    assert refused.get("503", 0) > 0  # the clients saw the refusal while it was full


def test_soak_prints_memory_and_descriptor_slopes_of_workers_and_gateways() -> None:
    (soak,) = run_chaos("soak")
    for role in ("worker", "gateway"):
        assert soak[f"{role}_rss_kib"] > 0  # sampled from /proc of the real processes
        assert isinstance(soak[f"{role}_rss_slope_kib_per_min"], float)
        assert isinstance(soak[f"{role}_fds_slope_per_min"], float)


def test_partition_between_regions_heals_without_split_brain_or_loss() -> None:
    (cut,) = run_chaos("partition-heal")
    assert cut["split_brain"] is False  # east stayed the only writer
    assert cut["west_caught_up"] is True  # the mirror holds everything east stored
    assert cut["rpo"] > 0  # the partition really left west behind
