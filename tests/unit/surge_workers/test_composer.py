"""The default composer: who gets an acknowledgement, and what degradation changes."""

from __future__ import annotations

import pytest

from surge_workers.composer import ComposeRequest, acknowledge, planned_kinds, template_context
from surge_workers.contract import DegradationLevel, Priority
from surge_workers.replies import ReplyKind
from surge_workers.templates import TemplateStore


def request(**overrides: object) -> ComposeRequest:
    values: dict[str, object] = {
        "tenant": "acme",
        "conversation_id": "c-1",
        "msg_id": "m-1",
        "priority": Priority.NORMAL,
        "new_conversation": True,
        "level": DegradationLevel.NORMAL,
        "sheddable": False,
        "position": 12,
        "expected_wait_s": 95.0,
    }
    values.update(overrides)
    return ComposeRequest(**values)  # type: ignore[arg-type]


def test_a_new_conversation_is_acknowledged() -> None:
    assert planned_kinds(request()) == (ReplyKind.ACK,)


def test_later_messages_of_a_conversation_get_no_automatic_reply() -> None:
    assert planned_kinds(request(new_conversation=False)) == ()
    assert planned_kinds(request(new_conversation=False, level=DegradationLevel.SHED_BULK)) == ()


@pytest.mark.parametrize("level", [DegradationLevel.SHED_BULK, DegradationLevel.CRITICAL_ONLY])
def test_from_level_2_a_notice_joins_the_ack_and_bulk_gets_only_the_notice(
    level: DegradationLevel,
) -> None:
    assert planned_kinds(request(level=level)) == (ReplyKind.ACK, ReplyKind.NOTICE)
    bulk = request(level=level, priority=Priority.BULK, sheddable=True)
    assert planned_kinds(bulk) == (ReplyKind.NOTICE,)


def test_level_1_changes_nothing_for_replies() -> None:
    bulk = request(level=DegradationLevel.THROTTLE_BULK, priority=Priority.BULK, sheddable=True)
    assert planned_kinds(bulk) == (ReplyKind.ACK,)


async def test_the_acknowledgement_tells_position_and_wait() -> None:
    (draft,) = await acknowledge(request(), TemplateStore())
    assert draft.kind is ReplyKind.ACK
    assert "number 12 in line" in draft.text
    assert "about 2 minutes" in draft.text


async def test_the_notice_for_bulk_says_it_waits_for_the_surge_to_pass() -> None:
    drafts = await acknowledge(
        request(level=DegradationLevel.SHED_BULK, priority=Priority.BULK, sheddable=True),
        TemplateStore(),
    )
    assert [d.kind for d in drafts] == [ReplyKind.NOTICE]
    assert "high volume" in drafts[0].text
    assert "surge has passed" in drafts[0].text


def test_the_template_context_holds_plain_values_only() -> None:
    context = template_context(request(team="billing"))
    assert all(isinstance(v, str | int | float | type(None)) for v in context.values())
