"""Shared fixtures: real servers started on loopback for the integration and e2e tiers."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import structlog

pytest_plugins = [
    "tests.fixtures.nats",
    "tests.fixtures.nats_regions",
    "tests.fixtures.prometheus",
    "tests.fixtures.kube",
    "tests.fixtures.s3",
    "tests.fixtures.fuse",
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
