"""The ``[notify]`` table of the kfd config, checked here (the frontend owns it)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec


class SettingsError(Exception):
    """The ``[notify]`` table is wrong; the message says which key and why."""


class NotifySettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``[notify]``: what to notify about."""

    approvals: bool = True
    turns: bool = True
    """A finished turn, with a one-line summary of the answer."""
    errors: bool = True
    budget: bool = True
    triggers: bool = False
    """A file-watch trigger fired (its answer is notified as a turn either way)."""
    suppress_focused: bool = True
    """Stay quiet about a session the user watches in a focused REPL."""
    retry_s: float = 5.0
    """Seconds between attempts to reach the notification server."""
    expire_ms: int = -1
    """How long a notification stays (-1: the server decides; 0: until closed)."""


def parse(table: Mapping[str, Any]) -> NotifySettings:
    try:
        settings = msgspec.convert(dict(table), NotifySettings)
    except msgspec.ValidationError as exc:
        raise SettingsError(f"[notify]: {exc}") from None
    if settings.retry_s <= 0:
        raise SettingsError("[notify] retry_s: must be positive")
    return settings
