"""A real Prometheus (Debian's `prometheus` package) on loopback.

Used by the integration tests (tests/fixtures/prometheus.py) and by `surge bench
autoscale --live`: started with a generated config and a temporary storage dir; targets
are added at runtime through file-based service discovery::

    server = PrometheusServer(find_prometheus(), workdir).start()
    server.add_targets("workers", ["127.0.0.1:9100"])
    value = server.wait_for("sum(up{job='workers'})", lambda v: v >= 1)
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from surge_workers.lifetime import die_with_parent
from surge_workers.natsserver import free_port

#: Overrides where the binary is looked for.
ENV_BINARY = "SURGE_PROMETHEUS_BIN"

_CONFIG = """\
global:
  scrape_interval: {interval}
  scrape_timeout: {timeout}
  evaluation_interval: 1s
scrape_configs:
  - job_name: discovered
    file_sd_configs:
      - files: ["{sd_dir}/*.json"]
        refresh_interval: 1s
"""


def find_prometheus() -> str | None:
    explicit = os.environ.get(ENV_BINARY)
    if explicit:
        return explicit if Path(explicit).exists() else None
    for candidate in ("/usr/bin/prometheus", shutil.which("prometheus")):
        if candidate and Path(candidate).exists():
            return candidate
    return None


class PrometheusServer:
    """A Prometheus child process on 127.0.0.1 with file_sd targets."""

    def __init__(self, binary: str, workdir: Path, *, scrape_interval_s: float = 1.0) -> None:
        self.binary = binary
        self.scrape_interval_s = scrape_interval_s
        self.workdir = workdir
        self.sd_dir = workdir / "sd"
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "prometheus.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> PrometheusServer:
        self.sd_dir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "prometheus.yml"
        interval = self.scrape_interval_s
        config.write_text(
            _CONFIG.format(
                sd_dir=self.sd_dir,
                interval=f"{round(interval * 1000)}ms",
                timeout=f"{round(min(interval, 10.0) * 900)}ms",
            )
        )
        args = [
            self.binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={self.workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--storage.tsdb.retention.time=1h",
            "--log.level=warn",
        ]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                args,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent(),
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"prometheus exited early; see {self.log_path}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as response:
                    if response.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        raise TimeoutError(f"prometheus not ready on {self.url}; see {self.log_path}")

    def add_targets(self, job: str, targets: list[str], **labels: str) -> None:
        """Scrape `targets` (host:port) under `job` from now on (file_sd, picked up in ~1 s)."""
        entry = [{"targets": targets, "labels": {"job": job, **labels}}]
        path = self.sd_dir / f"{job}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(entry))
        tmp.rename(path)  # atomic: Prometheus never reads half a file

    def remove_targets(self, job: str) -> None:
        (self.sd_dir / f"{job}.json").unlink(missing_ok=True)

    def query(self, promql: str) -> list[dict[str, Any]]:
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(url, timeout=5) as response:
            body = json.load(response)
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def wait_for(
        self, promql: str, predicate: Callable[[float], bool], timeout: float = 30.0
    ) -> float:
        """Poll an instant query until its first sample satisfies `predicate`."""
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            result = self.query(promql)
            if result:
                value = float(result[0]["value"][1])
                last = value
                if predicate(value):
                    return value
            time.sleep(0.5)
        raise TimeoutError(f"{promql!r} never satisfied the condition (last value {last!r})")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
