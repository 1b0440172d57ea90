"""The ``[chat]`` table of the kfd config, checked here (the frontend owns it).

Credentials are never in the config: it names the environment variables
that hold them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import msgspec

Mode = Literal["default", "accept-edits", "plan", "auto"]


class SettingsError(Exception):
    """The ``[chat]`` table is wrong; the message says which key and why."""


class _Table(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    pass


class MatrixSettings(_Table):
    """``[chat.matrix]``: a bot account on a homeserver (client-server API)."""

    homeserver: str
    user_id: str
    token_env: str = "KFD_MATRIX_TOKEN"
    rooms: list[str] = msgspec.field(default_factory=list)
    """Room ids the bot serves; messages in other rooms are ignored."""
    allow: list[str] = msgspec.field(default_factory=list)
    """User ids (``@alice:example.org``) whose messages the bot acts on."""
    notify_room: str = ""
    """Room for sessions no room maps to (trigger runs, ``AI?`` answers)."""
    edit_interval_s: float = 1.0
    """Seconds between two edits of a streaming answer."""
    tool_linger_s: float = 2.0
    """Tool calls within this many seconds share one message."""


class SlackSettings(_Table):
    """``[chat.slack]``: a Slack app in Socket Mode."""

    app_token_env: str = "KFD_SLACK_APP_TOKEN"
    bot_token_env: str = "KFD_SLACK_BOT_TOKEN"
    channels: list[str] = msgspec.field(default_factory=list)
    allow: list[str] = msgspec.field(default_factory=list)
    """Slack user ids (``U0123ABCD``) whose messages the bot acts on."""
    notify_room: str = ""
    edit_interval_s: float = 1.2
    """chat.update allows about one call per second per channel."""
    tool_linger_s: float = 2.0
    base_url: str = ""
    """The Web API's address; empty for Slack's own (set for a local test server)."""
    ping_interval_s: float = 5.0


class ChatSettings(_Table):
    workspace: str = ""
    """Workspace of sessions the bridge starts (default: the home directory)."""
    mode: Mode = "default"
    matrix: MatrixSettings | None = None
    slack: SlackSettings | None = None
    state_file: str = ""
    """Where the bridge keeps its cursors (default: kfd's state directory)."""


def parse(table: Mapping[str, Any]) -> ChatSettings:
    try:
        settings = msgspec.convert(dict(table), ChatSettings)
    except msgspec.ValidationError as exc:
        raise SettingsError(f"[chat]: {exc}") from None
    for name in ("matrix", "slack"):
        adapter = getattr(settings, name)
        if adapter is not None and adapter.edit_interval_s < 0.2:
            raise SettingsError(f"[chat.{name}] edit_interval_s: at least 0.2 s")
        if adapter is not None and not 0 <= adapter.tool_linger_s <= 60:
            raise SettingsError(f"[chat.{name}] tool_linger_s: between 0 and 60 s")
    return settings
