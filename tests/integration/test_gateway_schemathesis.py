"""A real `surge-gateway` process survives schemathesis driving its own OpenAPI document
with three tenants' tokens (no 5xx, every status and body as documented), and hypothesis
fuzzing of raw headers and bodies (no 5xx, every refusal a Problem body)."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import subprocess
import sys
import time
import urllib.request
import zlib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import negative_data_rejection
from tests.integration.dataplane_support import ROOT, provisioned, unique_pipeline

from surge_workers.natsserver import free_port
from surge_workers.openapi import committed_document

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TOKENS = {"acme": "acme-token", "globex": "globex-token", "initech": "initech-token"}


@pytest.fixture
def gateway_url(nats_url: str, tmp_path: Path) -> Iterator[str]:
    config = unique_pipeline()

    async def setup() -> None:
        nc, _ = await provisioned(nats_url, config)
        await nc.close()

    asyncio.run(setup())
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps({tenant: [token] for tenant, token in TOKENS.items()}))
    port = free_port()
    env = dict(os.environ)
    env.update(
        SURGE_NATS_URL=nats_url,
        SURGE_STREAM=config.stream,
        SURGE_SUBJECT_PREFIX=config.subject_prefix,
        SURGE_PARTITIONS=str(config.partitions),
        SURGE_HTTP_HOST="127.0.0.1",
        SURGE_HTTP_PORT=str(port),
        SURGE_TOKENS_FILE=str(tokens),
        SURGE_MAX_BODY_BYTES="65536",
        SURGE_LOG_LEVEL="warning",
        # Unauthenticated cases come from one address: keep them at 401 for the check.
        SURGE_UNAUTHENTICATED_RATE="0",
        PYTHONPATH=str(ROOT),
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", "from surge_workers.cli import gateway_main; gateway_main()"],
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                with urllib.request.urlopen(f"{base}/readyz", timeout=1) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        proc.wait(10)
    assert proc.returncode == 0, "the gateway must shut down cleanly on SIGTERM"


def test_gateway_survives_schemathesis_on_its_own_openapi(gateway_url: str) -> None:
    schema = schemathesis.openapi.from_dict(committed_document())
    # One branch per operation and mode, drawn evenly: every route gets its share of the
    # examples whatever else the test session has registered with hypothesis.
    strategy = st.one_of(
        [
            result.ok().as_strategy(generation_mode=mode)
            for result in schema.get_all_operations()
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
        ]
    )
    auths = [{}] + [{"Authorization": f"Bearer {token}"} for token in TOKENS.values()]

    @settings(
        max_examples=150,
        deadline=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def run(case: schemathesis.Case[Any]) -> None:
        # Three tenants share the stream, ids and conversation ids (generated, so they
        # collide); a quarter of the cases carry no token and exercise the 401 path.
        seed = repr((case.body, case.path_parameters, case.headers, case.query))
        headers = auths[zlib.crc32(seed.encode()) % len(auths)]
        follow = (case.query or {}).get("follow", True)
        rewrote = case.path.endswith("/events") and follow in (True, "true")
        if rewrote:
            # A followed event stream never ends by design: ask for the stored events only
            # (an invalid generated follow stays, and must be refused).
            case.query = {**(case.query or {}), "follow": "false"}
        # Adding a token (or follow=false) changes the case: one generated as invalid
        # for lacking them is no longer invalid, so "must be rejected" cannot apply there.
        altered = bool(headers) or rewrote
        response = case.call_and_validate(
            base_url=gateway_url,
            headers=headers,
            excluded_checks=[negative_data_rejection] if altered else [],
        )
        statuses[response.status_code] += 1
        routes[(case.path, response.status_code)] += 1

    statuses: Counter[int] = Counter()
    routes: Counter[tuple[str, int]] = Counter()
    run()
    # The run must reach every layer: accepted writes, validation and auth refusals.
    assert statuses[202] > 0, statuses
    assert statuses[422] > 0, statuses
    assert statuses[401] > 0, statuses
    assert statuses[403] > 0, statuses  # a message naming another tenant
    assert not [code for code in statuses if code >= 500], statuses
    # The reply path is exercised too: event streams opened, agents' replies stored.
    assert routes[("/v1/conversations/{conversation_id}/events", 200)] > 0, routes
    assert routes[("/v1/conversations/{conversation_id}/replies", 202)] > 0, routes


_TOKEN_CHARS = st.characters(min_codepoint=33, max_codepoint=126)
_HEADER_VALUE = st.text(
    st.characters(min_codepoint=32, max_codepoint=255, exclude_characters="\r\n\x7f"),
    max_size=80,
)


_ID = st.from_regex(r"[A-Za-z0-9_-]{1,20}", fullmatch=True) | st.text(max_size=20)


@st.composite
def raw_requests(draw: st.DrawFn) -> tuple[str, str, dict[str, str], bytes]:
    """Anything a client could send: any path of the API, any header values (tokens of
    every tenant, of none, or garbage), any body bytes, JSON-ish or not."""
    method, path = draw(
        st.sampled_from(
            [
                ("POST", "/v1/messages"),
                ("POST", "/v1/messages/batch"),
                ("GET", "/v1/conversations/c1/transcript"),
                ("GET", "/v1/conversations/c1/transcript?limit=2&cursor=1"),
            ]
        )
    )
    token = draw(
        st.sampled_from(list(TOKENS.values()))
        | st.sampled_from(["", "x" * 300])
        | st.text(_TOKEN_CHARS)
    )
    headers = {
        "Authorization": draw(st.sampled_from(["Bearer ", "bearer ", "Basic ", ""])) + token,
        "Content-Type": draw(st.sampled_from(["application/json", "text/plain", ""])),
    }
    headers.update(
        draw(
            st.dictionaries(
                st.text("abcdefXYZ-", min_size=1, max_size=12), _HEADER_VALUE, max_size=3
            )
        )
    )
    body = draw(
        st.one_of(
            st.binary(max_size=300),
            st.recursive(
                st.none() | st.booleans() | st.integers() | st.text(max_size=40),
                lambda inner: (
                    st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=12), inner, max_size=6)
                ),
                max_leaves=12,
            ).map(lambda doc: json.dumps(doc).encode()),
            st.fixed_dictionaries(
                {"id": _ID, "conversation_id": _ID, "text": st.text(min_size=1, max_size=60)},
                optional={
                    "tenant": st.sampled_from([*TOKENS, "nobody"]),
                    "priority": st.sampled_from(["critical", "normal", "bulk", "x"]),
                },
            ).map(lambda doc: json.dumps(doc).encode()),
        )
    )
    return method, path, headers, body


_GOOD = json.dumps({"id": "f1", "conversation_id": "c1", "text": "hi"}).encode()
_GOOD_BATCH = b'{"messages": [' + _GOOD + b"]}"


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


def test_fuzzed_headers_and_bodies_never_get_a_5xx(gateway_url: str) -> None:
    host, port = gateway_url.removeprefix("http://").split(":")
    seen: Counter[int] = Counter()

    @settings(
        max_examples=300, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
    )
    @given(request=raw_requests())
    @example(request=("POST", "/v1/messages", _bearer(TOKENS["acme"]), _GOOD))
    @example(request=("POST", "/v1/messages", _bearer(TOKENS["globex"]), _GOOD))
    @example(request=("POST", "/v1/messages/batch", _bearer(TOKENS["initech"]), _GOOD_BATCH))
    def run(request: tuple[str, str, dict[str, str], bytes]) -> None:
        method, path, headers, body = request
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        try:
            conn.request(
                method,
                path,
                body=body if method == "POST" else None,
                headers={k: v for k, v in headers.items() if v},
            )
            response = conn.getresponse()
            payload = response.read()
        finally:
            conn.close()
        seen[response.status] += 1
        # 503 + Retry-After is the documented answer when the stream does not confirm in
        # time (a loaded machine); any other 5xx is a bug.
        transient = response.status == 503 and response.getheader("Retry-After") == "1"
        assert response.status < 500 or transient, (request, response.status, payload)
        if response.status >= 400:
            problem = json.loads(payload)  # every refusal is a Problem body
            assert set(problem) == {"error", "detail"}, payload

    run()
    assert seen[202], seen
    assert seen[401], seen
    assert seen[400] + seen[422], seen
