"""ConfigMap with the data-plane settings; worker and gateway pods read it with `envFrom`.

Keys are the SURGE_* variables that surge-worker and surge-gateway read (see
surge_workers/settings.py). Nothing secret goes here: a NATS .creds file is mounted from
its Secret and only the *path* appears in this map; a token or password reaches the pods
through `secretKeyRef` env entries (see `pods.env`), never as a literal value.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from surge_operator.resources.context import BuildContext
from surge_operator.resources.jetstream import credentials_kind
from surge_operator.resources.labels import config_name, metadata
from surge_operator.resources.nats.tls import ca_secret_for_clients
from surge_workers.contract import Env
from surge_workers.settings import NO_COMPOSER

CREDS_DIR = "/var/run/secrets/surge/nats"
CREDS_FILE = "nats.creds"
TOKENS_DIR = "/var/run/secrets/surge/tokens"
NATS_CA_DIR = "/var/run/secrets/surge/nats-ca"
NATS_CA_FILE = "ca.crt"
TOKENS_FILE = "tokens"
#: Where the workers see spec.workers.composer.templatesConfigMap.
TEMPLATES_DIR = "/etc/surge/templates"
GATEWAY_PORT = 8080
METRICS_PORT = 9100


def config_data(ctx: BuildContext) -> dict[str, str]:
    spec = ctx.spec
    region = ctx.region
    data = {
        Env.CLUSTER: ctx.name,
        Env.NAMESPACE: ctx.namespace,
        Env.REGION: region.name,
        Env.NATS_URL: ctx.nats_url,
        Env.STREAM: ctx.stream,
        Env.SUBJECT_PREFIX: spec.stream.subject_prefix,
        Env.PARTITIONS: str(spec.stream.partitions),
        Env.HANDLER: spec.workers.handler,
        Env.CONCURRENCY: str(spec.workers.concurrency),
        Env.METRICS_PORT: str(METRICS_PORT),
        Env.HTTP_PORT: str(GATEWAY_PORT),
        Env.RATE_LIMIT: f"{spec.gateway.rate_limit_per_tenant:g}",
        # The gateway answers 413 for what the stream could never store.
        Env.MAX_MSG_SIZE: str(spec.stream.max_msg_size),
        Env.TRANSCRIPT_TTL: str(spec.stream.transcript_ttl_seconds),
        Env.LOG_FORMAT: "json",
    }
    creds = region.nats.credentials_secret
    if creds is not None and credentials_kind(creds) == "creds":
        data[Env.NATS_CREDS_FILE] = f"{CREDS_DIR}/{CREDS_FILE}"
    if nats_ca_secret(ctx) is not None:
        data[Env.NATS_CA_FILE] = f"{NATS_CA_DIR}/{NATS_CA_FILE}"
    if spec.gateway.tokens_secret is not None:
        data[Env.TOKENS_FILE] = f"{TOKENS_DIR}/{TOKENS_FILE}"
    data.update(composer_settings(ctx))
    return data


def composer_settings(ctx: BuildContext) -> dict[str, str]:
    """The workers' intake stage: which composer, and where its templates are mounted."""
    composer = ctx.spec.workers.composer
    if not composer.enabled:
        return {Env.COMPOSER: NO_COMPOSER}
    out = {Env.COMPOSER: composer.function}
    if composer.templates_config_map is not None:
        out[Env.TEMPLATES_DIR] = TEMPLATES_DIR
    return out


def nats_ca_secret(ctx: BuildContext) -> str | None:
    """The Secret whose ca.crt the pods trust for the active region's NATS, if any."""
    if not ctx.region.nats.tls:
        return None
    return ca_secret_for_clients(ctx.name, ctx.region)


def config_hash(ctx: BuildContext) -> str:
    """Digest of the configuration, stamped on pod templates so a change rolls the pods
    (envFrom is read only at container start)."""
    blob = json.dumps(config_data(ctx), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def build_config_map(ctx: BuildContext) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(ctx, config_name(ctx), "config"),
        "data": config_data(ctx),
    }
