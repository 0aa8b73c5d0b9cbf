"""Domain exceptions of the operator. Core code raises these; only `handlers/` maps them
to kopf's TemporaryError (retry with back-off) or PermanentError (give up until the spec
changes).

    SurgeError
    ├── InvalidSpecError            the spec does not validate against the models   [permanent]
    ├── DependencyError             something outside the operator is not there yet [temporary]
    │   ├── CredentialsSecretMissingError   the NATS credentials Secret/key is absent
    │   ├── NatsUnavailableError            the NATS server cannot be reached
    │   ├── ConsumerMissingError            the stream or a priority's consumer is gone
    │   └── RestorePendingError             the restore Job has not finished yet
    ├── ProvisioningError           JetStream refused the stream/consumers/KV        [temporary]
    │   ├── StreamSubjectsOverlapError      another stream already owns the subjects [temporary]
    │   └── ImmutableStreamFieldError       a change JetStream cannot apply in place [permanent]
    ├── BackupError                 a backup or restore failed; never blocks the data plane
    │   ├── SnapshotError                   JetStream's snapshot/restore API failed
    │   ├── BackupTargetError               the target refused or cannot be reached
    │   │   ├── BackupTargetAuthError           credentials wrong or missing
    │   │   └── BackupTargetFullError           no space left on the target
    │   ├── BackupNotFoundError             no (complete) backup by that id
    │   └── RestoreConflictError            the stream exists or does not match the backup
    ├── FailoverError               moving traffic between regions failed; retried next tick
    │   ├── PromotionError                  a standby could not be made writable
    │   ├── MirrorError                     a mirror could not be created or re-established
    │   ├── FailbackNotReadyError           the original primary is not a caught-up mirror yet
    │   ├── UnsupportedStreamError          the stream's configuration cannot be mirrored safely
    │   ├── RecordError                     the failover record could not be written
    │   └── NotLeaderError                  the leader Lease is not held (fenced)
    └── KubeApiError                the API server refused a request
        ├── KubeConflictError           409 (optimistic concurrency / apply conflict) [temporary]
        │   └── KubeNotOwnedError           a same-named object Surge does not own    [temporary]
        ├── KubeForbiddenError          403: RBAC does not allow it (e.g. Secrets)   [temporary]
        ├── KubeNotFoundError           404                                          [temporary]
        └── KubeRejectedError           422/400: the object is invalid              [permanent]

Every error carries a CamelCase `reason` used verbatim in conditions and Events.
"""

from __future__ import annotations


class SurgeError(Exception):
    reason: str = "Error"
    #: seconds the handler should wait before retrying (temporary errors only)
    retry_after: float = 10.0
    #: False for work in progress (poll at retry_after), True for failures (back off)
    backoff: bool = True

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidSpecError(SurgeError):
    reason = "InvalidSpec"


class DependencyError(SurgeError):
    reason = "DependencyNotReady"


class CredentialsSecretMissingError(DependencyError):
    reason = "CredentialsSecretMissing"
    retry_after = 15.0


class NatsUnavailableError(DependencyError):
    reason = "NatsUnavailable"
    retry_after = 5.0


class ConsumerMissingError(DependencyError):
    """The autoscaler cannot read a queue whose stream or consumer is gone: it holds the
    worker count (never scales to max, unlike KEDA #7657) and StreamReady says which."""

    reason = "ConsumerMissing"


class RestorePendingError(DependencyError):
    """Not a failure: the cluster waits for its restore Job before anything else starts."""

    reason = "Restoring"
    retry_after = 2.0
    backoff = False


class ProvisioningError(SurgeError):
    reason = "StreamProvisioningFailed"


class StreamSubjectsOverlapError(ProvisioningError):
    """Typically two MessagingClusters on one NATS with the same subjectPrefix. Temporary:
    deleting the other cluster or changing a prefix resolves it without a spec change here."""

    reason = "StreamSubjectsOverlap"
    retry_after = 30.0


class ImmutableStreamFieldError(ProvisioningError):
    reason = "StreamChangeRefused"


class KubeApiError(SurgeError):
    reason = "KubernetesApiError"

    def __init__(self, message: str, *, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class KubeConflictError(KubeApiError):
    reason = "KubernetesConflict"
    retry_after = 1.0


class KubeNotOwnedError(KubeConflictError):
    """An object with the name Surge would use exists and is not Surge's (no owner
    reference to this MessagingCluster). Surge leaves it alone: taking it over would let
    garbage collection delete it with the MessagingCluster later."""

    reason = "ObjectNotOwned"
    retry_after = 30.0


class KubeForbiddenError(KubeApiError):
    reason = "Forbidden"


class KubeRejectedError(KubeApiError):
    reason = "KubernetesRejected"


class KubeNotFoundError(KubeApiError):
    reason = "NotFound"


def is_permanent(error: SurgeError) -> bool:
    """True when retrying cannot help until the spec (or a referenced object) changes."""
    return isinstance(error, InvalidSpecError | ImmutableStreamFieldError | KubeRejectedError)


class BackupError(SurgeError):
    reason = "BackupFailed"
    retry_after = 60.0


class SnapshotError(BackupError):
    reason = "SnapshotFailed"


class BackupTargetError(BackupError):
    reason = "BackupTargetUnavailable"


class BackupTargetAuthError(BackupTargetError):
    reason = "BackupTargetAuthFailed"


class BackupTargetFullError(BackupTargetError):
    reason = "BackupTargetFull"


class BackupNotFoundError(BackupError):
    reason = "BackupNotFound"


class RestoreConflictError(BackupError):
    reason = "RestoreConflict"


class FailoverError(SurgeError):
    """Moving traffic between regions failed; the next tick tries again."""

    reason = "FailoverFailed"
    retry_after = 2.0


class PromotionError(FailoverError):
    reason = "PromotionFailed"


class MirrorError(FailoverError):
    """The standby's mirror could not be created or re-established."""

    reason = "MirrorSetupFailed"


class FailbackNotReadyError(FailoverError):
    """The original primary is not (yet) a caught-up mirror of the active region."""

    reason = "FailbackPending"


class UnsupportedStreamError(FailoverError):
    """The stream's configuration cannot be mirrored safely (e.g. work-queue retention,
    where the mirror's own consumer would remove messages from the origin)."""

    reason = "FailoverUnsupported"


class RecordError(FailoverError):
    """The failover record (epoch, writer, ack floors) could not be written."""

    reason = "FailoverRecordNotWritten"


class NotLeaderError(FailoverError):
    """A decided action was not carried out: the leader Lease is not held (fenced)."""

    reason = "NotLeader"
