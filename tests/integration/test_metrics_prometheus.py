"""Prometheus p95 queue wait and error ratio, from a real Prometheus scraping a real worker."""

from __future__ import annotations

import asyncio
import os
import time
import uuid

import nats
import pytest
from tests.fixtures.prometheus import PrometheusServer

from surge_operator.api import Priority
from surge_operator.metrics_source import JetStreamMetricsSource, PrometheusError, PrometheusQueries
from surge_operator.scale_target import LocalProcessTarget
from surge_workers import contract
from surge_workers.natsserver import NatsServer, free_port
from surge_workers.pipeline import PipelineConfig
from surge_workers.provision import provision_pipeline

pytestmark = [pytest.mark.integration, pytest.mark.slow]

P95 = (
    "histogram_quantile(0.95, sum by (le, priority) "
    "(rate(surge_worker_queue_wait_seconds_bucket[15s])))"
)
ERRORS = (
    'sum(rate(surge_worker_processed_total{outcome!="ok"}[15s])) '
    "/ sum(rate(surge_worker_processed_total[15s]))"
)


async def test_p95_wait_per_priority_comes_from_a_real_prometheus(
    nats_server: NatsServer, prometheus: PrometheusServer
) -> None:
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    config = PipelineConfig(
        stream=f"PROM_{uuid.uuid4().hex[:6].upper()}", subject_prefix="pm", partitions=4
    )
    await provision_pipeline(js, config)
    env = dict(os.environ)
    env.update(
        SURGE_NATS_URL=nats_server.url,
        SURGE_STREAM=config.stream,
        SURGE_SUBJECT_PREFIX=config.subject_prefix,
        SURGE_PARTITIONS=str(config.partitions),
        SURGE_HANDLER="surge_workers.handlers:simulated",
        SURGE_WORK_MS="5",
        SURGE_LOG_LEVEL="warning",
    )
    port = free_port()
    target = LocalProcessTarget(env, port_factory=lambda: port)
    job = f"worker-{config.stream.lower()}"
    try:
        await target.scale(1)
        for _ in range(100):
            if await target.ready() == 1:
                break
            await asyncio.sleep(0.2)
        prometheus.add_targets(job, [f"127.0.0.1:{port}"])
        await asyncio.to_thread(prometheus.wait_for, f'up{{job="{job}"}}', lambda v: v == 1)
        # Steady traffic for a few scrapes, with an enqueue time so waits are measured.
        for second in range(6):
            for priority in contract.PRIORITIES:
                for i in range(20):
                    await js.publish(
                        contract.message_subject(
                            config.subject_prefix, priority, f"c{i}", 4, tenant=""
                        ),
                        b'{"text": "hi"}',
                        headers={
                            contract.Header.MSG_ID: uuid.uuid4().hex,
                            contract.Header.CONVERSATION: f"c{i}",
                            contract.Header.TENANT: "t",
                            contract.Header.ENQUEUED_AT: contract.format_enqueued_at(time.time()),
                        },
                    )
            await asyncio.sleep(1.0 if second < 5 else 0)
        await asyncio.to_thread(
            prometheus.wait_for,
            f'sum(surge_worker_processed_total{{job="{job}"}})',
            lambda v: v >= 360,
        )

        queries = PrometheusQueries(prometheus.url, P95, ERRORS)
        reading = await asyncio.to_thread(queries.read)
        assert set(reading.p95_wait) == set(Priority)
        assert all(0 < v < 5 for v in reading.p95_wait.values())
        assert reading.error_rate is None or reading.error_rate == pytest.approx(0.0)

        # And it lands in the snapshot the policy reads.
        source = JetStreamMetricsSource(js, config, prometheus=queries)
        snapshot = await source.snapshot(at=1.0, current_replicas=1, ready_replicas=1)
        assert snapshot.priorities[Priority.CRITICAL].p95_wait is not None
    finally:
        prometheus.remove_targets(job)
        await target.close()
        await nc.close()


def test_a_bad_query_is_a_prometheus_error(prometheus: PrometheusServer) -> None:
    queries = PrometheusQueries(prometheus.url, "sum(", None)
    with pytest.raises(PrometheusError):
        queries.read()
