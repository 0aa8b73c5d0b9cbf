"""Shared fixtures: real servers started on loopback for the integration and e2e tiers."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import pytest
import structlog
from hypothesis import HealthCheck, settings

# Property tests explore a fixed sequence of examples (one per test, from its name), so a
# run of the suite is reproducible: a failure is the code's, never the draw's. Set
# SURGE_HYPOTHESIS=explore to draw new examples (a local fuzzing session).
settings.register_profile(
    "reproducible",
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],  # a loaded 2-core CI machine is slow
)
settings.register_profile("explore", deadline=None)
settings.load_profile(
    "explore" if os.environ.get("SURGE_HYPOTHESIS") == "explore" else "reproducible"
)

pytest_plugins = [
    "tests.fixtures.nats",
    "tests.fixtures.nats_regions",
    "tests.fixtures.prometheus",
    "tests.fixtures.kube",
    "tests.fixtures.s3",
    "tests.fixtures.fuse",
    "tests.fixtures.timing",
]


@pytest.fixture(autouse=True)
def _keep_logging_config() -> Iterator[None]:
    """Entry points configure logging for their process, bound to the sys.stderr of that
    moment: under pytest a capture stream that closes after the test. Put the session's
    configuration back so a later test does not log into a closed file."""
    saved = structlog.get_config()
    handlers = logging.getLogger().handlers[:]
    yield
    structlog.configure(**saved)
    logging.getLogger().handlers[:] = handlers
