"""surge-nats-exporter against a real nats-server's monitoring port."""

from __future__ import annotations

from pathlib import Path

import pytest

from surge_operator.natsexporter import NatsCollector
from surge_workers.natsserver import NatsServer, free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def samples(collector: NatsCollector) -> dict[str, float]:
    return {s.name: s.value for m in collector.collect() for s in m.samples}


def test_exporter_reads_varz_jsz_and_healthz(tmp_path: Path) -> None:
    monitor = free_port()
    with NatsServer(store_dir=tmp_path, extra_args=("-m", str(monitor))):
        got = samples(NatsCollector(f"http://127.0.0.1:{monitor}"))
    assert got["gnatsd_up"] == 1.0
    assert got["gnatsd_healthz_status"] == 0.0
    assert "gnatsd_varz_connections" in got
    assert "jetstream_server_total_streams" in got


def test_exporter_reports_down_when_the_server_is_gone() -> None:
    got = samples(NatsCollector(f"http://127.0.0.1:{free_port()}", timeout=0.5))
    assert got == {"gnatsd_up": 0.0}
