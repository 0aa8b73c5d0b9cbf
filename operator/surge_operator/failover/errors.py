"""Failover's domain errors (children of `surge_operator.errors.SurgeError`).

FailoverError                moving traffic between regions failed; retried next tick
├── PromotionError           a standby could not be made writable
├── MirrorError              a mirror could not be created or re-established
├── FailbackNotReadyError    the original primary is not a caught-up mirror yet
└── UnsupportedStreamError   the stream's configuration cannot be mirrored safely
"""

from __future__ import annotations

from surge_operator.errors import SurgeError


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
