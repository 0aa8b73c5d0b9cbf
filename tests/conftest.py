"""Shared fixtures: real servers started on loopback for the integration and e2e tiers."""

pytest_plugins = [
    "tests.fixtures.nats",
    "tests.fixtures.prometheus",
    "tests.fixtures.kube",
    "tests.fixtures.s3",
    "tests.fixtures.fuse",
]
