"""The functions and types other packages build on (operator, autoscaler, demo) exist with
the documented shape; a rename here is a breaking change for them."""

from __future__ import annotations

import inspect

from surge_workers import contract, pipeline, provision, queue_state


def test_provisioning_api() -> None:
    assert list(inspect.signature(provision.provision_pipeline).parameters) == ["js", "config"]
    assert list(inspect.signature(provision.delete_pipeline).parameters) == ["js", "config"]
    for name in ("desired_stream_config", "desired_consumer_config", "ProvisionResult", "Action"):
        assert hasattr(provision, name)


def test_queue_state_api() -> None:
    params = inspect.signature(queue_state.read_queue_state).parameters
    assert list(params) == ["js", "config", "now", "with_oldest_age"]
    fields = set(queue_state.PriorityQueueState.__dataclass_fields__)
    assert {
        "num_pending",
        "num_ack_pending",
        "delivered_stream_seq",
        "ack_floor_stream_seq",
        "oldest_unacked_age",
    } <= fields


def test_pipeline_config_fields() -> None:
    assert {
        "stream",
        "subject_prefix",
        "partitions",
        "replicas",
        "storage",
        "max_age",
        "duplicate_window",
        "max_msg_size",
        "policies",
        "dead_letter",
    } <= set(pipeline.PipelineConfig.__dataclass_fields__)


def test_contract_functions() -> None:
    for name in (
        "admission",
        "worker_share",
        "retry_after_seconds",
        "features",
        "partition_for",
        "subject_for",
        "message_subject",
        "consumer_name",
        "degradation_bucket",
        "encode_degradation",
        "decode_degradation",
    ):
        assert callable(getattr(contract, name))
