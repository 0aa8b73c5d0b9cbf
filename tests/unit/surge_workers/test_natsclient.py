"""Surge's header parser gives exactly what nats-py's gives, only cheaper."""

from __future__ import annotations

import pytest
from nats import errors
from nats.aio.client import Client

from surge_workers.natsclient import SurgeClient, parse_header_lines

BLOCKS = [
    b"Nats-Msg-Id: acme:m-1\r\nSurge-Tenant: acme\r\n\r\n",
    b"A:b\r\nC:\tspaced value \r\n\r\n",
    b"Bad Name: x\r\nGood: y\r\n",
    b"Tab\tName: x\r\nSep\x1cName: y\r\nOk: z\r\n",
    b"NoColon\r\n: empty name\r\nDup: 1\r\nDup: 2\r\n",
    "Ümlaut: x\r\nValue: caf\u00e9\r\n".encode(),
    b"Broken: \xff\xfe\r\n",
    b"",
]


@pytest.mark.parametrize("raw", BLOCKS)
def test_surge_parses_headers_exactly_like_nats_py(raw: bytes) -> None:
    assert parse_header_lines(raw) == Client._parse_header_lines(raw)


def test_the_client_uses_it_in_place_of_the_hook_nats_py_calls() -> None:
    assert "_parse_header_lines" in vars(Client), "nats-py renamed its header parser hook"
    assert SurgeClient()._parse_header_lines(BLOCKS[0]) == {
        "Nats-Msg-Id": "acme:m-1",
        "Surge-Tenant": "acme",
    }


class _Captured(SurgeClient):
    """No connection: frames land in a list, as nats-py's pending buffer would hold them."""

    def __init__(self) -> None:
        super().__init__()
        self.frames: list[bytes] = []
        self._status = Client.CONNECTED
        self._max_payload = 1024 * 1024

    async def _send_command(self, cmd: bytes, priority: bool = False) -> None:
        self.frames.append(cmd)


HEADERS = [
    {"Nats-Msg-Id": "acme.m-1", "Surge-Tenant": "acme", "Surge-Enqueued-At": "17.5"},
    {" Padded ": " v\r\nw ", "": "dropped", "X": ""},
    {"Only-Cr": "a\rb", "Only-Lf": "a\nb", "Unicode": " é 中 ", "Tab": "\tx\t"},
    {},
    None,
]


@pytest.mark.parametrize("headers", HEADERS)
async def test_publish_batch_sends_the_frames_nats_py_would(headers: dict[str, str] | None) -> None:
    ours, theirs = _Captured(), _Captured()
    await ours.publish_batch([("s.1", "_INBOX.a.0", b"payload", headers)])
    await Client._send_publish(theirs, "s.1", "_INBOX.a.0", b"payload", 7, headers)
    assert ours.frames == theirs.frames
    assert ours.stats["out_msgs"] == theirs.stats["out_msgs"] == 1


async def test_publish_batch_refuses_what_publish_refuses() -> None:
    client = _Captured()
    with pytest.raises(errors.BadHeaderError):
        await client.publish_batch([("s", "r", b"", {"Bad Name": "x"})])
    with pytest.raises(errors.BadSubjectError):
        await client.publish_batch([("s with space", "r", b"", None)])
    with pytest.raises(errors.MaxPayloadError):
        await client.publish_batch([("s", "r", b"x" * (1024 * 1024 + 1), None)])
    assert client.frames == []
