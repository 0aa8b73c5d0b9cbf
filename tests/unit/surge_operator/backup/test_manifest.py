from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from surge_operator.backup.manifest import (
    Manifest,
    PartRole,
    StreamPart,
    backup_id,
    is_backup_id,
    kv_bucket,
    restored_names,
    retention_plan,
)
from surge_operator.backup.rename import renamed_config


def _id(minute: int) -> str:
    return backup_id(datetime(2026, 12, 6, 3, minute, tzinfo=UTC), "abcdef")


def test_backup_ids_sort_by_time_and_are_recognised() -> None:
    ids = [_id(m) for m in (30, 5, 17)]
    assert sorted(ids) == [_id(5), _id(17), _id(30)]
    assert all(is_backup_id(i) for i in ids)
    assert not is_backup_id("latest")
    assert not is_backup_id("../etc")


def test_backup_id_is_utc_whatever_the_clock_zone() -> None:
    local = datetime(2026, 12, 6, 5, 0, tzinfo=timezone(timedelta(hours=2)))
    assert backup_id(local, "0123456789").startswith("20261206T030000Z-012345")


def test_backup_id_refuses_a_nonce_that_is_not_hex() -> None:
    with pytest.raises(ValueError, match="hex"):
        backup_id(datetime(2026, 1, 1, tzinfo=UTC), "zzzzzz")


def test_retention_keeps_the_newest_complete_backups() -> None:
    complete = [_id(m) for m in range(5)]
    assert retention_plan(complete, [], keep=3) == [_id(0), _id(1)]
    assert retention_plan(complete, [], keep=10) == []


def test_an_incomplete_backup_younger_than_the_newest_complete_one_may_still_be_running() -> None:
    complete = [_id(1), _id(2)]
    incomplete = [_id(0), _id(3)]
    assert retention_plan(complete, incomplete, keep=5) == [_id(0)]


def test_without_any_complete_backup_nothing_is_deleted() -> None:
    assert retention_plan([], [_id(0), _id(1)], keep=1) == []


def test_retention_must_keep_at_least_one() -> None:
    with pytest.raises(ValueError, match="keep"):
        retention_plan([_id(0)], [], keep=0)


def test_manifest_round_trips_and_sums_its_parts() -> None:
    part = StreamPart(
        stream="S",
        role=PartRole.MESSAGES,
        object="S.snapshot",
        last_seq=10,
        messages=10,
        bytes=1234,
        sha256="00" * 32,
        config={"name": "S"},
        state={"last_seq": 10},
    )
    kv = part.model_copy(update={"stream": "KV_S-transcripts", "role": PartRole.KV, "bytes": 66})
    manifest = Manifest(
        id=_id(0),
        cluster="ns/mc",
        stream="S",
        subject_prefix="support",
        started_at="2026-12-06T03:00:00Z",
        finished_at="2026-12-06T03:00:01Z",
        duration_seconds=1.0,
        parts=(part, kv),
    )
    again = Manifest.from_json(manifest.to_json())
    assert again == manifest
    assert again.total_bytes == 1300
    assert again.part(PartRole.KV) == kv
    assert again.part(PartRole.DEAD_LETTER) is None


def test_a_restore_under_another_stream_name_renames_every_part_by_role() -> None:
    names = restored_names("SUPPORT", "SUPPORT_EU")
    assert names == {
        "SUPPORT": "SUPPORT_EU",
        "SUPPORT-dlq": "SUPPORT_EU-dlq",
        "SUPPORT-replies": "SUPPORT_EU-replies",
        "KV_SUPPORT-routing": "KV_SUPPORT_EU-routing",
        "KV_SUPPORT-transcripts": "KV_SUPPORT_EU-transcripts",
    }
    assert restored_names("SUPPORT", "SUPPORT") == {k: k for k in names}


def test_only_kv_streams_name_a_bucket() -> None:
    assert kv_bucket("KV_SUPPORT-routing") == "SUPPORT-routing"
    assert kv_bucket("SUPPORT-dlq") is None


def test_a_renamed_config_carries_the_clusters_new_stream_name_into_its_description() -> None:
    old = {"name": "A-dlq", "description": "dead letters of A", "max_age": 1}
    assert renamed_config(old, "B-dlq", old="A", new="B") == {
        "name": "B-dlq",
        "description": "dead letters of B",
        "max_age": 1,
    }
    assert renamed_config({"name": "A"}, "B", old="A", new="B") == {"name": "B"}
