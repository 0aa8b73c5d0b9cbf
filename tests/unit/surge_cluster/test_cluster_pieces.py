from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from surge_cluster import kwokconfig, pki, procs
from surge_cluster.cluster import ClusterError, LocalCluster
from surge_cluster.layout import State, load_state, save_state
from surge_cluster.topology import DEFAULT_NODES, REGION_LABEL, node_manifest
from surge_cluster.versions import VERSIONS_FILE, load_versions, parse_versions


def test_versions_file_pins_every_component() -> None:
    versions = load_versions(VERSIONS_FILE)

    assert versions.kubernetes.startswith("v1.")
    assert all(v.startswith("v") for v in (versions.etcd, versions.kwok, versions.helm))


def test_versions_parser_ignores_comments_and_quotes() -> None:
    text = '# c\nKUBERNETES_VERSION="v1.2.3"\nETCD_VERSION=v3\nKWOK_VERSION=v0\nHELM_VERSION=v4\n'
    text += "COREDNS_VERSION=v1\nKUBE_ROUTER_VERSION=v2\n"

    assert parse_versions(text).kubernetes == "v1.2.3"


def test_fake_nodes_cover_two_regions_and_are_managed_by_kwok() -> None:
    manifests = [node_manifest(n) for n in DEFAULT_NODES]

    assert {m["metadata"]["labels"][REGION_LABEL] for m in manifests} == {"east", "west"}
    assert all(m["metadata"]["annotations"]["kwok.x-k8s.io/node"] == "fake" for m in manifests)


def test_kwok_stages_make_pods_running_and_finish_their_deletion() -> None:
    stages = {s["metadata"]["name"]: s for s in yaml.safe_load_all(kwokconfig.render())}

    assert list(stages) == ["pod-ready", "pod-delete"]
    ready = stages["pod-ready"]["spec"]
    assert {e["key"] for e in ready["selector"]["matchExpressions"]} == {
        ".metadata.deletionTimestamp",
        ".status.podIP",
    }
    assert "phase: Running" in ready["next"]["statusTemplate"]
    assert stages["pod-delete"]["spec"]["next"]["delete"] is True


def test_pki_is_generated_once_and_tokens_read_back(tmp_path: Path) -> None:
    first = pki.ensure_pki(tmp_path)
    ca = first.ca_cert.read_bytes()
    again = pki.ensure_pki(tmp_path)

    assert again.ca_cert.read_bytes() == ca
    assert set(pki.read_tokens(again)) == {i.name for i in pki.IDENTITIES}
    out = subprocess.run(
        ["openssl", "verify", "-CAfile", str(first.ca_cert), str(first.serving_cert)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0 or "not found" in out.stderr


def test_stop_terminates_a_process_group_and_never_a_recycled_pid(tmp_path: Path) -> None:
    code = "import subprocess,time; subprocess.Popen(['sleep','60']); time.sleep(60)"
    _, record = procs.spawn("sleeper", [sys.executable, "-c", code], tmp_path / "log")
    recycled = procs.ProcessRecord("x", record.pid, record.start_time + 1, (), "")

    assert procs.record_alive(record)
    assert not procs.record_alive(recycled)
    procs.stop(record, grace=5.0)
    assert not procs.record_alive(record)
    assert not procs._any_member_alive(record.pid)


def test_one_process_is_stopped_and_started_again_with_the_same_command(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path)
    _, record = procs.spawn("sleeper", ["sleep", "60"], cluster.layout.log("sleeper"))
    save_state(cluster.layout, State(processes=[record]))

    stopped = cluster.stop_process("sleeper")
    assert not procs.record_alive(stopped)
    assert load_state(cluster.layout).processes == []
    again = cluster.start_process(stopped)
    try:
        assert (again.argv, again.name) == (record.argv, "sleeper")
        assert again.pid != record.pid
        assert procs.record_alive(again)
        assert load_state(cluster.layout).processes == [again]
    finally:
        procs.stop(again, grace=5.0)
    with pytest.raises(ClusterError, match="no running kube-apiserver"):
        cluster.stop_process("kube-apiserver")


def _state_becomes(pid: int, wanted: str, within: float = 10.0) -> bool:
    """A signal is delivered when the process is next scheduled: wait (bounded) for it."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        fields = procs._stat_fields(pid)
        if fields is not None and fields[0] == wanted:
            return True
        time.sleep(0.02)
    return False


def test_one_recorded_process_is_frozen_and_continued_and_stays_recorded(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path)
    _, record = procs.spawn("sleeper", ["sleep", "60"], cluster.layout.log("sleeper"))
    save_state(cluster.layout, State(processes=[record]))
    try:
        assert cluster.signal_process("sleeper", signal.SIGSTOP) == record
        assert _state_becomes(record.pid, "T")  # stopped
        assert load_state(cluster.layout).processes == [record]
        cluster.signal_process("sleeper", signal.SIGCONT)
        assert _state_becomes(record.pid, "S")  # sleeping again
    finally:
        procs.stop(record, grace=5.0)
    with pytest.raises(ClusterError, match="no running sleeper"):
        cluster.signal_process("sleeper", signal.SIGCONT)  # gone: nothing is signalled


def test_a_signal_never_reaches_a_recycled_pid(tmp_path: Path) -> None:
    _, record = procs.spawn("sleeper", ["sleep", "60"], tmp_path / "log")
    try:
        recycled = procs.ProcessRecord("x", record.pid, record.start_time + 1, (), "")
        assert not procs.send(recycled, signal.SIGSTOP)
        assert procs.send(record, signal.SIGCONT)  # the live record itself is reached
    finally:
        procs.stop(record, grace=5.0)
