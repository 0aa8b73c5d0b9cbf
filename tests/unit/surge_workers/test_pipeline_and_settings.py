"""PipelineConfig validation and env parsing of worker/gateway settings."""

from __future__ import annotations

from dataclasses import replace

import pytest

from surge_workers.contract import Priority
from surge_workers.errors import ConfigError
from surge_workers.pipeline import PipelineConfig, PriorityPolicy
from surge_workers.settings import GatewaySettings, NatsSettings, WorkerSettings


def test_defaults_are_valid_and_file_backed() -> None:
    config = PipelineConfig(stream="S", subject_prefix="s")
    assert config.storage == "file"
    assert config.duplicate_window > 0
    assert set(config.policies) == set(Priority)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"stream": "a.b"}, "stream"),
        ({"subject_prefix": "a..b"}, "subject_prefix"),
        ({"partitions": 0}, "partitions"),
        ({"replicas": 2}, "replicas"),
        ({"storage": "disk"}, "storage"),
        ({"duplicate_window": 0}, "duplicate_window"),
        ({"max_age": 10.0, "duplicate_window": 60.0}, "duplicate_window"),
        ({"max_msg_size": 10}, "max_msg_size"),
        ({"policies": {Priority.BULK: PriorityPolicy(max_deliver=0)}}, "max_deliver"),
    ],
)
def test_invalid_config_names_the_field(changes: dict[str, object], field: str) -> None:
    base = PipelineConfig(stream="S", subject_prefix="s")
    with pytest.raises(ConfigError, match=field):
        replace(base, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("attempts", "delay"), [(0, 1.0), (1, 1.0), (2, 5.0), (4, 30.0), (40, 30.0)]
)
def test_nak_backoff_repeats_its_last_step(attempts: int, delay: float) -> None:
    assert PriorityPolicy(backoff=(1.0, 5.0, 15.0, 30.0)).nak_delay(attempts) == delay


def test_worker_settings_from_env() -> None:
    settings = WorkerSettings.from_env(
        {
            "SURGE_NATS_URL": "nats://a:4222, nats://b:4222",
            "SURGE_STREAM": "ORDERS",
            "SURGE_SUBJECT_PREFIX": "orders.support",
            "SURGE_CONCURRENCY": "32",
            "SURGE_PRIORITIES": "bulk, critical",
            "SURGE_COMPLETIONS": "yes",
            "SURGE_WORK_MS": "150",
            "SURGE_CACHE_ENTRIES": "300",
        }
    )
    assert settings.nats.servers == ("nats://a:4222", "nats://b:4222")
    assert settings.pipeline.stream == "ORDERS"
    assert settings.concurrency == 32
    assert settings.prefetch == 128  # 4 x concurrency unless set
    assert settings.priorities == (Priority.CRITICAL, Priority.BULK)  # pull order kept
    assert settings.completions is True
    assert settings.work_seconds == pytest.approx(0.15)
    assert settings.cache_entries == 300
    assert WorkerSettings.from_env({}).cache_entries == 50_000


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"SURGE_CONCURRENCY": "many"}, "SURGE_CONCURRENCY"),
        ({"SURGE_CONCURRENCY": "0"}, "SURGE_CONCURRENCY"),
        ({"SURGE_CACHE_ENTRIES": "0"}, "SURGE_CACHE_ENTRIES"),
        ({"SURGE_HANDLER": "no_colon"}, "SURGE_HANDLER"),
        ({"SURGE_PRIORITIES": "urgent"}, "SURGE_PRIORITIES"),
        ({"SURGE_STREAM": "a b"}, "SURGE_STREAM"),
        ({"SURGE_COMPLETIONS": "maybe"}, "SURGE_COMPLETIONS"),
        ({"SURGE_LOG_FORMAT": "xml"}, "SURGE_LOG_FORMAT"),
        ({"SURGE_NATS_PASSWORD": "x"}, "SURGE_NATS_PASSWORD"),
    ],
)
def test_bad_env_names_the_variable(env: dict[str, str], name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        WorkerSettings.from_env(env)


def test_secrets_never_appear_in_repr() -> None:
    settings = NatsSettings.from_env(
        {"SURGE_NATS_USER": "svc", "SURGE_NATS_PASSWORD": "hunter2", "SURGE_NATS_TOKEN": "t0k"}
    )
    assert "hunter2" not in repr(settings)
    assert "t0k" not in repr(WorkerSettings(nats=settings))
    assert settings.connect_options()["password"] == "hunter2"


def test_gateway_settings_from_env() -> None:
    settings = GatewaySettings.from_env(
        {"SURGE_HTTP_PORT": "9000", "SURGE_RATE_LIMIT": "50", "SURGE_TOKENS_FILE": "/s/t.json"}
    )
    assert settings.port == 9000
    assert settings.rate_burst == 100
    assert settings.tokens_file == "/s/t.json"


def test_every_env_var_read_is_documented() -> None:
    import re
    from pathlib import Path

    import surge_workers.settings as module
    from surge_workers.contract import Env

    source = Path(module.__file__).read_text()
    doc = module.__doc__ or ""
    read = {getattr(Env, attr) for attr in re.findall(r"\bEnv\.([A-Z_]+)\b", source)}
    assert len(read) > 30
    assert {name for name in read if f"``{name}``" not in doc} == set()
