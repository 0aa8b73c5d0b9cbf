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


def utf8_length(text: str) -> int:
    # isascii() is O(1) on CPython (a flag of the str object): no encode for ASCII text.
    return len(text) if text.isascii() else len(text.encode())
