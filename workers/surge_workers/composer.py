"""The composer: what the platform says to a customer at once (SURGE_COMPOSER=module:function).

A composer is ``async def compose(request: ComposeRequest, templates: TemplateStore) ->
Sequence[Draft]``. It gets plain values — the message, whether it opens a new
conversation, its place in the order of service, the predicted wait, the degradation
level — and returns the replies to send, as drafts (kind + text). It does no I/O of its
own: the intake stage (:mod:`surge_workers.intake`) publishes the drafts, each with a
deterministic message id, so idempotency does not depend on the composer.

The default, :func:`acknowledge`:
 * answers the first message of each new conversation with an acknowledgement: its
   position and expected wait for its priority;
 * at degradation level 2 or more adds a "high volume" notice, and skips the
   acknowledgement for the classes the cluster may shed (bulk by default): the
   "limit non-essential features" step of graceful degradation, made visible;
 * says nothing for later messages of a conversation (an agent answers those).
Text comes from the tenant's template (or the default), see :mod:`surge_workers.templates`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from surge_workers.contract import DegradationLevel, Priority
from surge_workers.delivery import load_handler
from surge_workers.replies import ReplyKind
from surge_workers.templates import TemplateStore, humanize_wait


@dataclass(frozen=True)
class ComposeRequest:
    tenant: str
    conversation_id: str
    msg_id: str
    priority: Priority
    new_conversation: bool
    level: DegradationLevel
    #: The cluster may shed this class (``priorities[].sheddable``): bulk by default.
    sheddable: bool
    position: int | None = None
    expected_wait_s: float | None = None
    team: str | None = None


@dataclass(frozen=True)
class Draft:
    kind: ReplyKind
    text: str


Composer = Callable[[ComposeRequest, TemplateStore], Awaitable[Sequence[Draft]]]


def planned_kinds(request: ComposeRequest) -> tuple[ReplyKind, ...]:
    """Which replies the default composer sends (pure)."""
    if not request.new_conversation:
        return ()
    if request.level >= DegradationLevel.SHED_BULK:
        if request.sheddable:
            return (ReplyKind.NOTICE,)  # the acknowledgement is non-essential here
        return (ReplyKind.ACK, ReplyKind.NOTICE)
    return (ReplyKind.ACK,)


def template_context(request: ComposeRequest) -> dict[str, object]:
    """Plain values only: nothing in here leads back to the host."""
    wait = request.expected_wait_s
    return {
        "tenant": request.tenant,
        "conversation_id": request.conversation_id,
        "priority": request.priority.value,
        "team": request.team or "",
        "position": request.position if request.position is not None else 0,
        "wait_s": round(wait, 1) if wait is not None else None,
        "wait_text": humanize_wait(wait),
        "level": int(request.level),
    }


async def acknowledge(request: ComposeRequest, templates: TemplateStore) -> Sequence[Draft]:
    context = template_context(request)
    return [
        Draft(kind, templates.render(request.tenant, kind, context))
        for kind in planned_kinds(request)
    ]


async def silent(request: ComposeRequest, templates: TemplateStore) -> Sequence[Draft]:
    """Never replies (a cluster that answers its customers some other way)."""
    return ()


def load_composer(reference: str) -> Composer:
    """Resolve ``module:function`` (SURGE_COMPOSER), with the handler's error messages."""
    composer: Composer = load_handler(reference)  # type: ignore[assignment]
    return composer
