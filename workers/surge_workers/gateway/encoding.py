"""Bytes on the wire: the stored message body and the serializers of the 202 answers."""

from __future__ import annotations

from json.encoder import encode_basestring_ascii

from pydantic import TypeAdapter

from surge_workers.api_models import AcceptedDict, BatchAcceptedDict, MessageIn

# Answers are serialized from plain dicts (shaped like Accepted / BatchAccepted, a unit test
# keeps them equal): a pydantic model per accepted message costs more than its publish.
ACCEPTED_JSON = TypeAdapter(AcceptedDict)
BATCH_ACCEPTED_JSON = TypeAdapter(BatchAcceptedDict)


def encode_payload(message: MessageIn) -> bytes:
    """The stored body: byte for byte ``json.dumps({"text": ..., "language": ...,
    "channel": ...})`` (optional keys only when set), built with the same C string encoder
    but without a JSONEncoder and a dict per message."""
    body = '{"text": ' + encode_basestring_ascii(message.text)
    if message.language:
        body += ', "language": ' + encode_basestring_ascii(message.language)
    if message.channel:
        body += ', "channel": ' + encode_basestring_ascii(message.channel)
    return (body + "}").encode()


# The most bytes encode_payload spends on one character of text: an astral character
# becomes a \\uXXXX\\uXXXX surrogate pair.
MAX_BYTES_PER_CHAR = 12
_HEADER_LINE = len("NATS/1.0\r\n") + len("\r\n")


def stored_size(payload: bytes, headers: dict[str, str]) -> int:
    """What a stream's max_msg_size is compared with: payload plus the encoded headers
    (``NATS/1.0`` line, one ``key: value`` line each, blank line)."""
    size = len(payload) + _HEADER_LINE
    for key, value in headers.items():
        size += len(key) + len(value.encode()) + 4  # ": " and "\r\n"
    return size


def utf8_length(text: str) -> int:
    # isascii() is O(1) on CPython (a flag of the str object): no encode for ASCII text.
    return len(text) if text.isascii() else len(text.encode())
