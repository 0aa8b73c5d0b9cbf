"""Traffic simulator: replays load shapes and traces through the real policies.

Pure (virtual clock, seeded RNG); no kopf, kubernetes, nats or structlog.
"""
