"""The handling time a worker promises with: its own recent mean, never a made-up 0 s."""

from __future__ import annotations

import pytest

from surge_workers.contract import Priority
from surge_workers.metrics import WorkerMetrics
from surge_workers.runtime import RecentHandling


def test_a_worker_that_handled_nothing_has_no_figure_of_its_own() -> None:
    recent = RecentHandling(WorkerMetrics(), window_s=3600.0)
    assert recent(Priority.NORMAL) is None


def test_until_the_first_window_is_full_the_mean_so_far_serves() -> None:
    metrics = WorkerMetrics()
    recent = RecentHandling(metrics, window_s=3600.0)
    assert recent(Priority.NORMAL) is None
    for seconds in (0.1, 0.3):
        metrics.handling[Priority.NORMAL].observe(seconds)
    assert recent(Priority.NORMAL) == pytest.approx(0.2)
    assert recent(Priority.BULK) is None
