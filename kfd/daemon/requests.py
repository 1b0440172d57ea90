"""Reading a request frame: a typed request, or a refusal carrying what id it can.

Pure functions, no I/O: the bus and the request handler decide with them.
Whatever arrives (garbage, a frame too large, JSON nested a thousand deep)
becomes either a request or a `Refusal` with a code, a message a person can
act on, and the request's id when any can be read, so the client can match
the answer to its request instead of waiting out a timeout.
"""

from __future__ import annotations

import json
import re
from typing import Any, NamedTuple

import msgspec

from kfd.protocol import (
    MAX_REQUEST_BYTES,
    MAX_REQUEST_DEPTH,
    REQUEST_METHODS,
    AnyRequest,
    ErrorCode,
    Request,
)

_request_decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(AnyRequest)

_ID = re.compile(rb'"id"\s*:\s*"((?:[^"\\\x00-\x1f]|\\.){1,128})"')
"""The first ``"id": "..."`` of a frame, read without parsing the rest."""

_STRUCTURE = re.compile(rb'"(?:[^"\\]|\\.)*"')
"""JSON strings, to be cut out before brackets are counted."""

_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'[]{}"\\')

PEEK_BYTES = 64 * 1024
"""Only the start of a frame is searched for its id."""

MAX_STRUCTURE = 4096
"""Brackets outside strings beyond which a request is refused unread: no
request kfd knows has more than a few dozen."""


class Refusal(NamedTuple):
    """Why a frame is not a request, and the id to answer."""

    request_id: str
    code: ErrorCode
    message: str


class _Peek(msgspec.Struct):
    """What can be read of a request that failed to decode."""

    id: Any = ""
    method: Any = None


_peek_decoder = msgspec.json.Decoder(_Peek)


def peek_id(body: bytes) -> str:
    """The request id in ``body``, if one can be read at all; "" otherwise."""
    match = _ID.search(body[:PEEK_BYTES])
    if match is None:
        return ""
    try:
        value = json.loads(b'"' + match.group(1) + b'"')
    except ValueError:
        return ""
    return value if isinstance(value, str) else ""


def too_deep(body: bytes, limit: int = MAX_REQUEST_DEPTH) -> bool:
    """Whether the JSON in ``body`` nests arrays and objects deeper than ``limit``.

    Works on the bytes (any garbage is fine): strings are cut out, then the
    brackets left are counted. Cheap for real requests, whose brackets are
    few or inside strings.
    """
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    skeleton = _STRUCTURE.sub(b"", body.translate(None, _NOT_STRUCTURE))
    if len(skeleton) > MAX_STRUCTURE:
        return True
    depth = 0
    for byte in skeleton:
        if byte in b"[{":
            depth += 1
            if depth > limit:
                return True
        elif byte in b"]}":
            depth -= 1
    return False


def parse(body: bytes) -> Request | Refusal:
    """The request in ``body``, or why not (with whatever id can be read)."""
    if len(body) > MAX_REQUEST_BYTES:
        return Refusal(
            peek_id(body),
            "too_large",
            f"the request is {len(body):,} bytes; the most the daemon reads is "
            f"{MAX_REQUEST_BYTES:,} (send large text as a file path instead)",
        )
    if too_deep(body):
        return Refusal(
            peek_id(body),
            "too_deep",
            f"the request nests deeper than {MAX_REQUEST_DEPTH} levels of arrays and objects",
        )
    try:
        request = _request_decoder.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return _explain(body)
    assert isinstance(request, Request)
    if not request.id:
        return Refusal("", "bad_request", "a request needs a non-empty string `id`")
    return request


def _explain(body: bytes) -> Refusal:
    """Why ``body`` did not decode, and its id if it has a readable one."""
    try:
        peek = _peek_decoder.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError) as exc:
        return Refusal(
            peek_id(body),
            "bad_request",
            f"a request must be one JSON object with `id` and `method` ({exc})",
        )
    request_id = peek.id if isinstance(peek.id, str) else ""
    if not isinstance(peek.id, str) or not peek.id:
        return Refusal(request_id, "bad_request", "a request needs a non-empty string `id`")
    if peek.method not in REQUEST_METHODS:
        known = ", ".join(sorted(REQUEST_METHODS))
        return Refusal(
            request_id, "bad_request", f"unknown method {peek.method!r}; the methods are: {known}"
        )
    try:
        _request_decoder.decode(body)
    except msgspec.ValidationError as exc:
        return Refusal(request_id, "bad_request", f"invalid {peek.method} request: {exc}")
    except (msgspec.DecodeError, RecursionError):  # pragma: no cover - the peek decoded
        pass
    return Refusal(request_id, "bad_request", "invalid request")  # pragma: no cover
