"""Request bodies do not leave each message's strings behind in pydantic's JSON string
cache (it would hold every new id and text until full: a slope in a gateway soak)."""

from __future__ import annotations

import gc
import json
import tracemalloc

from surge_workers.api_models import AgentReplyIn, BatchIn, MessageIn


def _retained_after_parsing(n: int) -> int:
    bodies = [
        json.dumps({"id": f"id-{i:08d}-x", "conversation_id": f"c-{i:08d}", "text": f"t{i:010d}"})
        for i in range(n)
    ]
    gc.collect()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        for body in bodies:
            MessageIn.model_validate_json(body)
        gc.collect()
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return after - before


def test_parsing_unique_messages_retains_nothing_per_message() -> None:
    # With string caching on every value, 5,000 messages keep ~15,000 strings (~800 KiB).
    assert _retained_after_parsing(5_000) < 64 * 1024


def test_every_request_model_caches_keys_only() -> None:
    for model in (MessageIn, BatchIn, AgentReplyIn):
        assert model.model_config.get("cache_strings") == "keys", model.__name__
