"""`surge-gateway`: the HTTP ingest API (aiohttp) in front of the JetStream pipeline.

Request path, in order (each step answers with a Problem body and leaves the stream
untouched when it refuses):

1. bearer token -> tenant (401 missing/unknown token)
2. body size (413), JSON (400), schema (422), text size (413), tenant match (403)
3. degradation level (with the cluster's sheddable classes, published with it): shed
   priorities get 429 + Retry-After; throttled ones (sheddable at level 1, the others at
   level 3) share a reduced per-tenant rate, 429 + Retry-After above it
4. per-tenant rate limit (429 + Retry-After)
5. publish with Nats-Msg-Id = the client id scoped by tenant (a retry is deduplicated by
   JetStream and answered ``duplicate: true`` with the original sequence; another tenant's
   message with the same id is a different message) -> 202 with the stream sequence

Every write that reaches step 3 counts as *offered* (per priority, accepted or not); an
:class:`OfferedReporter` publishes the cumulative counts to the degradation bucket about
once a second so the operator can tell demand the gateway is refusing from demand that
went away.

A batch is all or nothing up to the publish; messages of an accepted batch are published
pipelined and each gets its own result.

Modules, one job each: ``auth`` (tokens), ``refusals`` (Refused -> Problem, body parsing),
``encoding`` (wire bytes), ``publisher`` (JetStream publishing), ``service`` (state and
refusal steps), ``handlers`` (HTTP handlers), ``app`` (routes + middleware), ``offered``
(offered-counts reporter), ``runner`` (the process).
"""

from __future__ import annotations

from surge_workers.gateway.app import build_app
from surge_workers.gateway.auth import (
    TokenFile,
    TokenTable,
    authenticate,
    hash_token,
    load_tokens,
)
from surge_workers.gateway.encoding import encode_payload, utf8_length
from surge_workers.gateway.offered import OfferedReporter, instance_name
from surge_workers.gateway.publisher import PUBLISH_TIMEOUT, Ack, JetStreamPublisher, Publication
from surge_workers.gateway.refusals import Refused, problem
from surge_workers.gateway.runner import run_gateway
from surge_workers.gateway.service import Gateway

__all__ = [
    "PUBLISH_TIMEOUT",
    "Ack",
    "Gateway",
    "JetStreamPublisher",
    "OfferedReporter",
    "Publication",
    "Refused",
    "TokenFile",
    "TokenTable",
    "authenticate",
    "build_app",
    "encode_payload",
    "hash_token",
    "instance_name",
    "load_tokens",
    "problem",
    "run_gateway",
    "utf8_length",
]
