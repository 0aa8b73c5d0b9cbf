"""Surge data plane: the JetStream contract, workers, gateway and load generator.

Pure (no I/O):  contract (subjects, headers, names, degradation semantics), pipeline
(PipelineConfig), routing (team rules), ratelimit, api_models, openapi, errors, settings.
JetStream I/O:  provision (idempotent stream/consumers/DLQ/KV), queue_state (the
autoscaler's read), degradation (watch/publish the level), transcripts.
Processes:      consumer (the worker engine), gateway (HTTP ingest), runtime + cli
(`surge-worker`, `surge-gateway`), load (`surge load`), bench (`surge bench dataplane`),
natsserver (a throwaway nats-server for tests, bench and demo).

Importing the package imports nothing else.
"""

__version__ = "0.1.0"
