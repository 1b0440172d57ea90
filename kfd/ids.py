"""Identifiers: a one-letter kind, then time-ordered hex (fixed length).

Fixed length matters: ZeroMQ subscriptions match by prefix, so no session id
may be a prefix of another. Time order makes ids sort by creation.
"""

from __future__ import annotations

import secrets
import time

ID_LENGTH = 20


def new_id(kind: str) -> str:
    """``kind`` (one letter) + 11 hex digits of milliseconds + 8 random."""
    assert len(kind) == 1
    return f"{kind}{int(time.time() * 1000):011x}{secrets.token_hex(4)}"
