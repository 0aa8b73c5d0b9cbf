"""Domain exceptions of the data plane.

::

    SurgeWorkersError
    ├── ConfigError                 bad settings / PipelineConfig (raised before any I/O)
    ├── ProvisionError              JetStream refused to create or update something
    │   └── ImmutableFieldError     a changed spec touches a field JetStream cannot change
    └── HandlerError                raised by message handlers; decides the acknowledgement
        ├── RetryableError          transient: nak with backoff, dead-letter after MaxDeliver
        └── PoisonError             can never succeed: dead-letter now (term), no retries

Any other exception escaping a handler is treated as retryable: a bug fixed by a
redeploy should not have dead-lettered the messages it touched.
"""

from __future__ import annotations


class SurgeWorkersError(Exception):
    """Root of every error raised on purpose by surge_workers."""


class ConfigError(SurgeWorkersError, ValueError):
    """Invalid configuration, detected before touching NATS."""


class ProvisionError(SurgeWorkersError):
    """JetStream rejected a provisioning request."""

    def __init__(self, resource: str, message: str) -> None:
        super().__init__(f"{resource}: {message}")
        self.resource = resource


class ImmutableFieldError(ProvisionError):
    """The desired spec changes a field that JetStream cannot update in place."""

    def __init__(self, resource: str, field: str, current: object, desired: object) -> None:
        super().__init__(
            resource,
            f"field {field!r} cannot be changed in place (current {current!r}, desired "
            f"{desired!r}); recreate the resource or keep the current value",
        )
        self.field = field
        self.current = current
        self.desired = desired


class HandlerError(SurgeWorkersError):
    """Base of the errors a handler raises to choose the acknowledgement."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RetryableError(HandlerError):
    """Transient failure: the message is nak'ed with a delay and retried."""


class PoisonError(HandlerError):
    """Permanent failure: the message goes to the dead-letter subject at once."""
