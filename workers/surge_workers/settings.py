"""Settings of `surge-worker` and `surge-gateway`, read once from environment variables.

The names are `surge_workers.contract.Env` (what the operator's builders set); this
docstring is their reference.

Both run as Kubernetes pods (env from the Deployment, credentials from Secrets) and as
local processes started by ``surge demo``. Values are parsed by :meth:`from_env` into
frozen dataclasses that are passed down explicitly; nothing else reads the environment.

Connection (both)
    ``SURGE_NATS_URL``          NATS URL(s), comma-separated             ``nats://127.0.0.1:4222``
    ``SURGE_NATS_CREDS_FILE``   path of a .creds file (JWT + nkey)       unset
    ``SURGE_NATS_NKEY_FILE``    path of an nkey seed file (nkey user)    unset
    ``SURGE_NATS_USER``         user name (with SURGE_NATS_PASSWORD)     unset
    ``SURGE_NATS_PASSWORD``     password — secret, never logged          unset
    ``SURGE_NATS_TOKEN``        auth token — secret, never logged        unset
    ``SURGE_NATS_CA_FILE``      CA certificate to trust (TLS to NATS)    unset
    ``SURGE_CLUSTER``           MessagingCluster name (logs, metrics)    ``local``
    ``SURGE_REGION``            region name (logs, metrics)              ``""``

Pipeline (both)
    ``SURGE_STREAM``            stream name                              ``surge``
    ``SURGE_SUBJECT_PREFIX``    subject prefix                           ``surge``
    ``SURGE_PARTITIONS``        partitions per priority                  ``16``

Worker
    ``SURGE_HANDLER``           handler as ``module:function``
                                                  ``surge_workers.handlers:route_and_store``
    ``SURGE_COMPOSER``          composer as ``module:function``, or ``none``: what the
                                intake stage says to a customer at once (acknowledgements,
                                high-volume notices)   ``surge_workers.composer:acknowledge``
    ``SURGE_TEMPLATES_DIR``     per-tenant reply templates ``<tenant>.<kind>.j2`` (a mounted
                                ConfigMap)                               built-in defaults
    ``SURGE_CONCURRENCY``       handlers running at once (lanes)         ``16``
    ``SURGE_PREFETCH``          messages buffered beyond concurrency     ``= concurrency * 4``
    ``SURGE_MAX_BATCH``         largest pull request                     ``256``
    ``SURGE_PULL_EXPIRES``      seconds a waiting pull request lives     ``2``
    ``SURGE_PRIORITIES``        priorities this worker serves, comma     ``critical,normal,bulk``
    ``SURGE_METRICS_PORT``      /healthz /readyz /metrics port (0 = off) ``9090``
    ``SURGE_METRICS_HOST``      bind address of that port (pod IP)      ``0.0.0.0``
    ``SURGE_DRAIN_TIMEOUT``     seconds to finish in-flight on SIGTERM   ``25``
    ``SURGE_COMPLETIONS``       announce finished messages for `surge load` (bool) ``false``
    ``SURGE_PROVISION``         provision the pipeline at start (bool)   ``false``
    ``SURGE_ROUTING_RULES_FILE`` JSON routing rules for the default handler  built-in rules
    ``SURGE_TRANSCRIPT_TTL``    seconds a stored transcript message lives ``2592000`` (30 d)
    ``SURGE_WORK_MS``           simulated service time per message for the
                                ``surge_workers.handlers:simulated`` handler (demo, tests)  ``20``
    ``SURGE_CACHE_ENTRIES``     bound of each in-process cache (acked ids, first messages,
                                sticky teams; ~200 B an entry); they only save NATS
                                reads, correctness never depends on them    ``50000``

Gateway
    ``SURGE_HTTP_HOST``         bind address                             ``0.0.0.0``
    ``SURGE_HTTP_PORT``         API + /healthz /readyz /metrics port     ``8080``
    ``SURGE_TOKENS_FILE``       JSON ``{"tenant": ["token", ...]}`` (a mounted Secret) unset
    ``SURGE_MAX_BODY_BYTES``    largest request body (413 above)         ``1048576``
    ``SURGE_MAX_TEXT_BYTES``    largest message text (413 above)         ``16384``
    ``SURGE_MAX_BATCH_MESSAGES`` messages per batch request              ``500``
    ``SURGE_MAX_MSG_SIZE``      the stream's max_msg_size (413 above)    ``0`` (unknown)
    ``SURGE_RATE_LIMIT``        per-tenant messages/s (0 = unlimited)    ``2000``
    ``SURGE_RATE_BURST``        per-tenant burst                         ``= 2 * rate``
                                (both cluster-wide: each replica enforces rate / live replicas)
    ``SURGE_UNAUTHENTICATED_RATE`` requests/s without a valid token, per address ``5``
    ``SURGE_UNAUTHENTICATED_BURST`` their burst                          ``20``
    ``SURGE_INSTANCE``          this gateway's name for its offered counters when
                                ``POD_NAME`` is unset                    host-pid

Logging (both)
    ``SURGE_LOG_LEVEL``         debug | info | warning | error           ``info``
    ``SURGE_LOG_FORMAT``        auto | json | console                    ``auto``
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from surge_workers.contract import (
    PRIORITIES,
    Env,
    Priority,
    is_valid_prefix,
    is_valid_stream_name,
)
from surge_workers.errors import ConfigError

DEFAULT_HANDLER = "surge_workers.handlers:route_and_store"
DEFAULT_COMPOSER = "surge_workers.composer:acknowledge"
NO_COMPOSER = "none"


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError as err:
        raise ConfigError(f"{name}: {raw!r} is not an integer") from err
    if value < minimum:
        raise ConfigError(f"{name}: {value} must be >= {minimum}")
    return value


def _float(env: Mapping[str, str], name: str, default: float, minimum: float = 0.0) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError as err:
        raise ConfigError(f"{name}: {raw!r} is not a number") from err
    if value < minimum:
        raise ConfigError(f"{name}: {value} must be >= {minimum}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}: {raw!r} is not a boolean")


def _str(env: Mapping[str, str], name: str, default: str) -> str:
    return env.get(name, "").strip() or default


@dataclass(frozen=True)
class NatsSettings:
    servers: tuple[str, ...] = ("nats://127.0.0.1:4222",)
    creds_file: str | None = None
    nkey_file: str | None = None
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    #: PEM file of the CA that signed the servers' certificates (managed NATS: the
    #: operator's CA); with it every connection is TLS and verifies the server
    ca_file: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> NatsSettings:
        urls = tuple(u.strip() for u in _str(env, Env.NATS_URL, "").split(",") if u.strip())
        password = env.get(Env.NATS_PASSWORD) or None
        user = env.get(Env.NATS_USER) or None
        if password and not user:
            raise ConfigError(f"{Env.NATS_PASSWORD}: set {Env.NATS_USER} too")
        return cls(
            servers=urls or cls.servers,
            creds_file=env.get(Env.NATS_CREDS_FILE) or None,
            nkey_file=env.get(Env.NATS_NKEY_FILE) or None,
            user=user,
            password=password,
            token=env.get(Env.NATS_TOKEN) or None,
            ca_file=env.get(Env.NATS_CA_FILE) or None,
        )

    def connect_options(self) -> dict[str, Any]:
        """Keyword arguments for ``nats.connect`` (contains secrets: never log it)."""
        options: dict[str, Any] = {"servers": list(self.servers)}
        if self.creds_file:
            options["user_credentials"] = self.creds_file
        if self.nkey_file:
            options["nkeys_seed"] = self.nkey_file
        if self.user:
            options["user"] = self.user
            options["password"] = self.password or ""
        if self.token:
            options["token"] = self.token
        if self.ca_file:
            options["tls"] = ssl.create_default_context(cafile=self.ca_file)
        return options


@dataclass(frozen=True)
class PipelineSettings:
    cluster: str = "local"
    region: str = ""
    stream: str = "surge"
    subject_prefix: str = "surge"
    partitions: int = 16

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> PipelineSettings:
        stream = _str(env, Env.STREAM, cls.stream)
        prefix = _str(env, Env.SUBJECT_PREFIX, cls.subject_prefix)
        if not is_valid_stream_name(stream):
            raise ConfigError(f"{Env.STREAM}: {stream!r} is not a valid stream name")
        if not is_valid_prefix(prefix):
            raise ConfigError(f"{Env.SUBJECT_PREFIX}: {prefix!r} is not a valid subject prefix")
        return cls(
            cluster=_str(env, Env.CLUSTER, cls.cluster),
            region=env.get(Env.REGION, "").strip(),
            stream=stream,
            subject_prefix=prefix,
            partitions=_int(env, Env.PARTITIONS, cls.partitions, minimum=1),
        )


@dataclass(frozen=True)
class LogSettings:
    level: str = "info"
    format: str = "auto"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> LogSettings:
        fmt = _str(env, Env.LOG_FORMAT, cls.format).lower()
        if fmt not in ("auto", "json", "console"):
            raise ConfigError(f"{Env.LOG_FORMAT}: {fmt!r} must be auto, json or console")
        return cls(level=_str(env, Env.LOG_LEVEL, cls.level).lower(), format=fmt)


def _priorities(env: Mapping[str, str]) -> tuple[Priority, ...]:
    raw = env.get(Env.PRIORITIES, "").strip()
    if not raw:
        return PRIORITIES
    chosen = set()
    for part in raw.split(","):
        try:
            chosen.add(Priority(part.strip().lower()))
        except ValueError as err:
            raise ConfigError(f"{Env.PRIORITIES}: unknown priority {part.strip()!r}") from err
    return tuple(p for p in PRIORITIES if p in chosen)  # keep pull order regardless of input


@dataclass(frozen=True)
class WorkerSettings:
    nats: NatsSettings = NatsSettings()
    pipeline: PipelineSettings = PipelineSettings()
    log: LogSettings = LogSettings()
    handler: str = DEFAULT_HANDLER
    #: ``module:function`` of the composer, or None: no intake stage, no replies.
    composer: str | None = DEFAULT_COMPOSER
    templates_dir: str | None = None
    concurrency: int = 16
    prefetch: int = 64
    max_batch: int = 256
    pull_expires: float = 2.0
    priorities: tuple[Priority, ...] = PRIORITIES
    metrics_port: int = 9090
    metrics_host: str = "0.0.0.0"
    drain_timeout: float = 25.0
    completions: bool = False
    provision: bool = False
    routing_rules_file: str | None = None
    work_seconds: float = 0.02
    #: Bound of each in-process cache (see the module docstring).
    cache_entries: int = 50_000
    #: Per-message TTL of transcript keys (spec.stream.transcriptTtlSeconds).
    transcript_ttl: float = 30 * 24 * 3600.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WorkerSettings:
        env = os.environ if env is None else env
        handler = _str(env, Env.HANDLER, DEFAULT_HANDLER)
        if ":" not in handler:
            raise ConfigError(f"{Env.HANDLER}: {handler!r} must be module:function")
        concurrency = _int(env, Env.CONCURRENCY, cls.concurrency, minimum=1)
        composer: str | None = _str(env, Env.COMPOSER, DEFAULT_COMPOSER)
        if composer is not None and composer.lower() in (NO_COMPOSER, "off", "false"):
            composer = None
        elif composer is not None and ":" not in composer:
            raise ConfigError(f"{Env.COMPOSER}: {composer!r} must be module:function or none")
        return cls(
            nats=NatsSettings.from_env(env),
            pipeline=PipelineSettings.from_env(env),
            log=LogSettings.from_env(env),
            handler=handler,
            composer=composer,
            templates_dir=env.get(Env.TEMPLATES_DIR) or None,
            concurrency=concurrency,
            prefetch=_int(env, Env.PREFETCH, concurrency * 4, minimum=0),
            max_batch=_int(env, Env.MAX_BATCH, cls.max_batch, minimum=1),
            pull_expires=_float(env, Env.PULL_EXPIRES, cls.pull_expires, minimum=0.1),
            priorities=_priorities(env),
            metrics_port=_int(env, Env.METRICS_PORT, cls.metrics_port),
            metrics_host=_str(env, Env.METRICS_HOST, cls.metrics_host),
            drain_timeout=_float(env, Env.DRAIN_TIMEOUT, cls.drain_timeout),
            completions=_bool(env, Env.COMPLETIONS, cls.completions),
            provision=_bool(env, Env.PROVISION, cls.provision),
            routing_rules_file=env.get(Env.ROUTING_RULES_FILE) or None,
            transcript_ttl=_float(env, Env.TRANSCRIPT_TTL, cls.transcript_ttl, minimum=1),
            work_seconds=_float(env, Env.WORK_MS, cls.work_seconds * 1000) / 1000,
            cache_entries=_int(env, Env.CACHE_ENTRIES, cls.cache_entries, minimum=1),
        )


@dataclass(frozen=True)
class GatewaySettings:
    nats: NatsSettings = NatsSettings()
    pipeline: PipelineSettings = PipelineSettings()
    log: LogSettings = LogSettings()
    host: str = "0.0.0.0"
    port: int = 8080
    tokens_file: str | None = None
    max_body_bytes: int = 1 << 20
    max_text_bytes: int = 16 * 1024
    max_batch_messages: int = 500
    #: The stream's max_msg_size (spec.stream.maxMsgSize): larger messages get 413 before
    #: publishing. 0 = unknown (the stream's own refusal is still answered with 413).
    max_msg_size: int = 0
    rate_limit: float = 2000.0
    rate_burst: float = 4000.0
    #: Requests without a valid token, per client address (429 above, not 401).
    unauthenticated_rate: float = 5.0
    unauthenticated_burst: float = 20.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> GatewaySettings:
        env = os.environ if env is None else env
        rate = _float(env, Env.RATE_LIMIT, cls.rate_limit)
        return cls(
            nats=NatsSettings.from_env(env),
            pipeline=PipelineSettings.from_env(env),
            log=LogSettings.from_env(env),
            host=_str(env, Env.HTTP_HOST, cls.host),
            port=_int(env, Env.HTTP_PORT, cls.port),
            tokens_file=env.get(Env.TOKENS_FILE) or None,
            max_body_bytes=_int(env, Env.MAX_BODY_BYTES, cls.max_body_bytes, minimum=1024),
            max_text_bytes=_int(env, Env.MAX_TEXT_BYTES, cls.max_text_bytes, minimum=1),
            max_batch_messages=_int(env, Env.MAX_BATCH_MESSAGES, cls.max_batch_messages, minimum=1),
            max_msg_size=_int(env, Env.MAX_MSG_SIZE, cls.max_msg_size, minimum=0),
            rate_limit=rate,
            rate_burst=_float(env, Env.RATE_BURST, 2 * rate),
            unauthenticated_rate=_float(
                env, Env.UNAUTHENTICATED_RATE, cls.unauthenticated_rate, minimum=0
            ),
            unauthenticated_burst=_float(
                env, Env.UNAUTHENTICATED_BURST, cls.unauthenticated_burst, minimum=1
            ),
        )
