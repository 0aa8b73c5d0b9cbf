"""The id-by-id checker every chaos scenario ends with. Pure.

Inputs: the message ids clients were told were accepted (a PubAck), the effects the
workers produced, in the order they produced them (id, conversation, sequence of the
message within its conversation), and how many deliveries the workers recognised as
already done. Output: lost (accepted, never took effect), double effects (took effect
more than once), per-conversation order violations (an effect for an older message of a
conversation after a newer one), duplicates absorbed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Effect:
    msg_id: str
    conversation: str
    #: Position of the message within its conversation as the client sent it.
    position: int


@dataclass(frozen=True, slots=True)
class Verdict:
    accepted: int
    lost: int
    double_effects: int
    duplicates_absorbed: int
    order_violations: int
    lost_ids: tuple[str, ...] = ()
    doubled_ids: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.lost == 0 and self.double_effects == 0


def check(accepted: Iterable[str], effects: Sequence[Effect], absorbed: int) -> Verdict:
    accepted_ids = set(accepted)
    counts = Counter(e.msg_id for e in effects)
    lost = sorted(accepted_ids - counts.keys())
    doubled = sorted(i for i, n in counts.items() if n > 1)
    newest: dict[str, int] = {}
    violations = 0
    for effect in effects:
        seen = newest.get(effect.conversation, -1)
        if effect.position < seen:
            violations += 1
        newest[effect.conversation] = max(seen, effect.position)
    return Verdict(
        accepted=len(accepted_ids),
        lost=len(lost),
        double_effects=sum(counts[i] - 1 for i in doubled),
        duplicates_absorbed=absorbed,
        order_violations=violations,
        lost_ids=tuple(lost[:20]),
        doubled_ids=tuple(doubled[:20]),
    )
