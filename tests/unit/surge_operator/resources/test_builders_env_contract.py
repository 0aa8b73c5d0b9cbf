"""The worker/gateway environment contract: what the builders set is what the data plane
reads (one set of names, `surge_workers.contract.Env`)."""

from __future__ import annotations

from builder_support import MINIMAL, make_ctx

import surge_workers.settings as settings_module
from surge_operator.resources.config_map import (
    GATEWAY_PORT,
    METRICS_PORT,
    TEMPLATES_DIR,
    config_data,
)
from surge_operator.resources.pods import env
from surge_workers.contract import Env
from surge_workers.settings import GatewaySettings, WorkerSettings

SPEC = {
    **MINIMAL,
    "stream": {"name": "orders", "subjectPrefix": "acme.orders", "partitions": 5},
    "workers": {
        "handler": "team.handlers:route",
        "concurrency": 7,
        "composer": {"function": "team.replies:compose", "templatesConfigMap": "team-replies"},
    },
    "gateway": {"rateLimitPerTenant": 123},
}


def test_every_name_the_builders_set_is_in_the_contract() -> None:
    ctx = make_ctx(SPEC)
    names = set(config_data(ctx))
    names |= {e["name"] for c in ("worker", "gateway") for e in env(ctx, c)} - {"POD_IP"}
    assert names <= Env.names(), names - Env.names()


def test_the_data_plane_reads_what_the_config_map_says() -> None:
    data = config_data(make_ctx(SPEC))
    worker = WorkerSettings.from_env(data)
    assert worker.pipeline.stream == "orders"
    assert worker.pipeline.subject_prefix == "acme.orders"
    assert worker.pipeline.partitions == 5
    assert worker.pipeline.cluster == "support"
    assert worker.handler == "team.handlers:route"
    assert worker.concurrency == 7
    assert worker.composer == "team.replies:compose"
    assert worker.templates_dir == TEMPLATES_DIR
    assert worker.metrics_port == METRICS_PORT
    gateway = GatewaySettings.from_env(data)
    assert gateway.port == GATEWAY_PORT
    assert gateway.rate_limit == 123
    assert gateway.nats.servers == ("nats://nats.east:4222",)


def test_every_contract_name_is_documented_where_the_settings_are_read() -> None:
    doc = settings_module.__doc__ or ""
    undocumented = {n for n in Env.names() if n not in doc} - {Env.POD_NAME, Env.NAMESPACE}
    assert not undocumented
