"""The restore marker: what a restore leaves for the workers, so restored work is done once.

A backup snapshots the message stream first and the replies stream after it (see
``surge_operator.backup.runner``). A message the intake answered in between comes back
still pending, and its reply comes back too. The intake then composes the same reply
again; inside the replies stream's duplicate window JetStream drops the repeat, but a
restore usually happens long after that window, and the customer would get the
acknowledgement twice.

So a restore writes one record into the routing bucket (key ``restored``): the last
sequence of the restored message stream and of the restored replies stream. For a message
at or below that first sequence, the intake looks in the restored replies (its
conversation's subject, at or below the second) for the reply's ``Nats-Msg-Id`` before
publishing it. Messages accepted after the restore never pay for the look-up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import nats.js.errors

from surge_workers.contract import Header
from surge_workers.records import JsonRecord

MARKER_KEY: Final = "restored"


@dataclass(frozen=True)
class RestoreMarker(JsonRecord):
    backup: str
    #: ``<namespace>/<name>`` of the cluster the backup was taken from.
    source: str
    #: Last sequence of the restored message stream: later messages are new work.
    messages_last_seq: int
    #: Last sequence of the restored replies stream (0: no replies were restored).
    replies_last_seq: int

    def covers(self, seq: int) -> bool:
        """The message was in the backup (it may have been answered before it was taken)."""
        return self.replies_last_seq > 0 and 0 < seq <= self.messages_last_seq


async def read_marker(kv: Any) -> RestoreMarker | None:
    try:
        entry = await kv.get(MARKER_KEY)
    except nats.js.errors.KeyNotFoundError:
        return None
    return RestoreMarker.decode(entry.value)


async def restored_reply(
    js: Any, stream: str, subject: str, msg_id: str, marker: RestoreMarker
) -> bool:
    """Whether the restored replies hold `msg_id` on `subject`.

    Walks the subject's replies up to the marker's last sequence (next-by-subject reads:
    a conversation holds few replies, and the replies stream caps them per subject)."""
    seq = 1
    while seq <= marker.replies_last_seq:
        try:
            msg = await js.get_msg(stream, seq=seq, subject=subject, next=True)
        except nats.js.errors.NotFoundError:
            return False
        if msg.seq is None or msg.seq > marker.replies_last_seq:
            return False
        if (msg.headers or {}).get(Header.MSG_ID) == msg_id:
            return True
        seq = msg.seq + 1
    return False
