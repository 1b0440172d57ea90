"""Which event makes which desktop notification. Pure: no I/O.

`Notices` keeps what it needs between events (the last answer of each
session, titles, ``AI?`` questions) and turns one event into at most one
`Notice`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from kfd import protocol as p
from kfd.client.exact import compact, visible
from kfd_notify.settings import NotifySettings

Urgency = Literal[0, 1, 2]
"""The freedesktop urgency hint: low, normal, critical."""

BODY_LIMIT = 400
COMMAND_LIMIT = 1500
"""An approval whose command shows longer (`kfd.client.exact.compact`) is not
shown whole in a bubble, so it offers no Allow button: allowing it takes a
terminal or chat, where it is."""
COMMAND_ROWS = 20
ROW_CHARS = 80
"""A bubble shows this many rows of this many characters (dunst caps its
height): a command taller than that is not shown whole either."""
DIFF_LIMIT = 1500


@dataclass(frozen=True, slots=True)
class Notice:
    """One notification to show. ``approval`` is set for approval prompts."""

    session: str
    summary: str
    body: str = ""
    urgency: Urgency = 1
    approval: p.ApprovalRequested | None = None
    allowable: bool = True
    """False: the approval's command could not be shown whole; only Deny is offered."""


@dataclass(slots=True)
class Notices:
    settings: NotifySettings
    titles: dict[str, str] = field(default_factory=dict)
    last_answer: dict[str, str] = field(default_factory=dict)
    questions: dict[str, p.TriggerFired] = field(default_factory=dict)
    config_shown: dict[tuple[str, str], str] = field(default_factory=dict)
    """(daemon, config file path) -> the problem shown, until the file loads again."""

    def title(self, session: str) -> str:
        """The session's title (its id's start without one); ``host/title`` for a
        session of a remote daemon (its id is ``host/session``)."""
        host, _, bare = session.rpartition("/")
        name = self.titles.get(session) or bare[:12]
        return f"{host}/{name}" if host else name

    def on_event(self, event: p.Event) -> Notice | None:
        match event:
            case p.SessionCreated() | p.SessionUpdated():
                self.titles[event.session] = event.info.title
            case p.MessageCompleted() if event.text.strip():
                self.last_answer[event.session] = event.text
            case p.ApprovalRequested() if self.settings.approvals:
                return self.approval(event)
            case p.TriggerFired():
                if event.kind == "ask":
                    self.questions[event.session] = event
                if self.settings.triggers:
                    files = ", ".join(event.files[:3])
                    return Notice(event.session, f"kfd: trigger {event.trigger} fired", files)
            case p.TurnCompleted():
                return self._turn(event)
            case p.BudgetWarning() if self.settings.budget:
                body = event.message or (
                    f"${event.spent_usd:.2f} of the {event.budget} limit of ${event.limit_usd:.2f}"
                )
                return Notice(event.session, "kfd: budget warning", _short(body), urgency=2)
            case p.ConfigInvalid() | p.ConfigReloaded() if self.settings.errors:
                return self._config(event)
            case p.ErrorEvent() if self.settings.errors or (
                "budget" in event.code and self.settings.budget
            ):
                what = "budget" if "budget" in event.code else "error"
                return Notice(
                    event.session,
                    f"kfd: {what} in {self.title(event.session)}",
                    _short(event.message),
                    urgency=2,
                )
        return None

    def _config(self, event: p.ConfigInvalid | p.ConfigReloaded) -> Notice | None:
        """A config file that does not load, once for all the sessions it concerns
        (the daemon says so in each, at every message); then once that it loads again."""
        host = event.session.rpartition("/")[0]  # ``host/session`` for a remote daemon
        key = (host, event.path)
        if isinstance(event, p.ConfigInvalid):
            if self.config_shown.get(key) == event.message:
                return None
            self.config_shown[key] = event.message
            return Notice(
                event.session, "kfd: config not reloaded", _short(event.message), urgency=2
            )
        if self.config_shown.pop(key, None) is None:
            return None
        return Notice(event.session, "kfd: config reloaded", _short(event.path))

    def approval(self, event: p.ApprovalRequested) -> Notice:
        """The whole command, exactly (every hidden character spelled out), or
        a Deny-only notice saying where to read it when it is too long."""
        preview = event.preview
        command = preview.command or preview.summary or event.tool
        shown = compact(command)
        allowable = len(shown) <= COMMAND_LIMIT and rows(shown) <= COMMAND_ROWS
        if allowable:
            lines = [shown]
        else:
            head = _head(shown, COMMAND_ROWS // 2)
            lines = [
                head + "…",
                f"… {len(shown) - len(head)} more characters: answer in a terminal or chat "
                f"(the command is {len(command)} characters long; here it can only be denied)",
            ]
        if preview.diff:
            diff = preview.diff
            if len(diff) > DIFF_LIMIT:  # not seen whole: not allowed from here either
                allowable = False
                lines.append(
                    visible(diff[:DIFF_LIMIT], keep_tabs=True)
                    + f"\n… {len(diff) - DIFF_LIMIT} more"
                )
            else:
                lines.append(visible(diff, keep_tabs=True))
        if event.reason:
            lines.append(f"({compact(event.reason)})")
        return Notice(
            event.session,
            f"kfd: allow {compact(event.tool, one_line=True)} in "
            f"{compact(self.title(event.session), one_line=True)}?",
            "\n".join(lines),
            urgency=2,
            approval=event,
            allowable=allowable,
        )

    def _turn(self, event: p.TurnCompleted) -> Notice | None:
        answer = self.last_answer.pop(event.session, "")
        question = self.questions.pop(event.session, None)
        if question is not None:  # an AI? comment: the answer is the point
            spot = question.spots[0] if question.spots else None
            where = f"{spot.path}:{spot.line}" if spot else question.trigger
            return Notice(event.session, f"kfd: answer to {where}", _short(answer, 2000))
        if not self.settings.turns or event.stop_reason == "cancelled":
            return None
        title = self.title(event.session)
        if event.stop_reason == "end_turn":
            return Notice(event.session, f"kfd: {title} is done", _one_line(answer))
        return Notice(
            event.session,
            f"kfd: {title} stopped ({event.stop_reason})",
            _one_line(event.message or answer),
            urgency=2 if event.stop_reason == "error" else 1,
        )


def _one_line(text: str) -> str:
    for line in text.strip().splitlines():
        if line.strip():
            return _short(line.strip(), 200)
    return ""


def _short(text: str, limit: int = BODY_LIMIT) -> str:
    text = visible(text.strip())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def rows(text: str) -> int:
    """How many rows of a bubble ``text`` takes (long lines wrap)."""
    return sum(max(1, -(-len(line) // ROW_CHARS)) for line in text.split("\n"))


def _head(text: str, most: int) -> str:
    """As much of the start of ``text`` as ``most`` rows of a bubble hold."""
    kept: list[str] = []
    left = most
    for line in text.split("\n"):
        if left <= 0:
            break
        kept.append(line[: left * ROW_CHARS])
        left -= rows(line)
    return "\n".join(kept)
