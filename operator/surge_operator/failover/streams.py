"""Which streams a region holds for one pipeline and what each listens on when writable."""

from __future__ import annotations

from surge_workers import provision
from surge_workers.contract import dead_letter_stream, stream_subjects
from surge_workers.pipeline import PipelineConfig
from surge_workers.replies import replies_stream, replies_subjects


def kv_stream(bucket: str) -> str:
    return f"KV_{bucket}"


def pipeline_streams(pipeline: PipelineConfig) -> tuple[str, ...]:
    """Every stream a region holds for one pipeline, the message stream first: the
    dead letters, the replies and the KV buckets (routing, transcripts, degradation) are
    mirrored too, so the transcripts and first-message records that make processing and
    replying idempotent, and the replies customers resume from, survive a failover."""
    names = [pipeline.stream]
    if pipeline.dead_letter:
        names.append(dead_letter_stream(pipeline.stream))
    if pipeline.composer:
        names.append(replies_stream(pipeline.stream))
    names += [kv_stream(kv.bucket) for kv in provision.desired_kv_configs(pipeline)]
    return tuple(names)


def writable_subjects(pipeline: PipelineConfig, stream: str) -> list[str]:
    """The subjects a pipeline stream listens on when it is the writable copy."""
    if stream == pipeline.stream:
        return stream_subjects(pipeline.subject_prefix)
    if stream == dead_letter_stream(pipeline.stream):
        return list(provision.desired_dead_letter_config(pipeline).subjects or [])
    if stream == replies_stream(pipeline.stream):
        return replies_subjects(pipeline.subject_prefix)
    if stream.startswith("KV_"):
        return [f"$KV.{stream.removeprefix('KV_')}.>"]
    raise ValueError(f"{stream} is not a stream of pipeline {pipeline.stream}")
