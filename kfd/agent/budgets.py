"""Spending limits: which apply, when a request is refused, when to warn. Pure.

Three limits, each optional: the session's (its own ``budget_usd``, else
``[budget] session_usd``), the day's and the month's (local calendar, all
sessions together). `refusal` decides before a request: a request whose
estimated prompt cost would take spending past a limit is not sent. Its
answer's cost is not known in advance: while it streams, the answer is cut
off once its estimated cost passes the `headroom` the tightest limit had
left (`overrun` says so). `crossings` decides after a cost is counted:
passing ``warn_at`` of a limit warns once, and so does reaching it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from kfd.config import BudgetConfig
from kfd.protocol import BudgetName


@dataclass(frozen=True, slots=True)
class Limit:
    """One spending limit in US dollars."""

    budget: BudgetName
    usd: float


def limits(config: BudgetConfig, session_usd: float | None) -> list[Limit]:
    """The limits that apply to a session (0 in the config means none)."""
    session = session_usd if session_usd is not None else config.session_usd
    found = [
        Limit("session", session),
        Limit("daily", config.daily_usd),
        Limit("monthly", config.monthly_usd),
    ]
    return [limit for limit in found if limit.usd > 0]


def period_start(budget: BudgetName, now: datetime) -> float | None:
    """The Unix time the limit's period began (local time); None for a session's."""
    if budget == "daily":
        return now.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
    if budget == "monthly":
        return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0).timestamp()
    return None


def refusal(
    limits: list[Limit], spent: Mapping[BudgetName, float], projected: float, session_id: str
) -> tuple[Limit, str] | None:
    """The first limit the request would pass, with a message saying how to raise it."""
    for limit in limits:
        already = spent.get(limit.budget, 0.0)
        if already + projected <= limit.usd and already < limit.usd:
            continue
        what = _name(limit, session_id)
        return limit, (
            f"{what} of ${limit.usd:.2f} would be passed: ${already:.4f} spent, and this "
            f"request would add about ${projected:.4f}; it was not sent. "
            f"{_raise(limit, session_id)}"
        )
    return None


@dataclass(frozen=True, slots=True)
class Headroom:
    """What one request may still cost before the tightest limit is passed."""

    limit: Limit
    usd: float


def headroom(limits: list[Limit], spent: Mapping[BudgetName, float]) -> Headroom | None:
    """The limit with the least left to spend, and what is left; None when none applies."""
    left = [Headroom(limit, limit.usd - spent.get(limit.budget, 0.0)) for limit in limits]
    return min(left, key=lambda room: room.usd, default=None)


def overrun(room: Headroom, session_id: str) -> str:
    """Why an answer was cut off at ``room``, and how to raise the limit."""
    what = _name(room.limit, session_id)
    return (
        f"{what} of ${room.limit.usd:.2f} was reached while the answer streamed "
        f"(${max(room.usd, 0.0):.4f} was left for it): kfd stopped reading the answer "
        f"and discarded it. {_raise(room.limit, session_id)}"
    )


def crossings(
    limits: list[Limit],
    before: Mapping[BudgetName, float],
    after: Mapping[BudgetName, float],
    warn_at: float,
    session_id: str,
) -> list[tuple[Limit, float, str]]:
    """The warnings a new cost calls for: (limit, spent, message) per threshold crossed."""
    warnings = []
    for limit in limits:
        old, new = before.get(limit.budget, 0.0), after.get(limit.budget, 0.0)
        what = _name(limit, session_id)
        if old < limit.usd <= new:
            message = (
                f"{what} of ${limit.usd:.2f} is spent (${new:.4f}); the next model request "
                f"will not be sent. {_raise(limit, session_id)}"
            )
        elif old < limit.usd * warn_at <= new:
            message = (
                f"{what}: ${new:.4f} of ${limit.usd:.2f} spent ({new / limit.usd:.0%}). "
                f"{_raise(limit, session_id)}"
            )
        else:
            continue
        warnings.append((limit, new, message))
    return warnings


def _name(limit: Limit, session_id: str) -> str:
    return {
        "session": f"the budget of session {session_id}",
        "daily": "today's budget",
        "monthly": "this month's budget",
    }[limit.budget]


def _raise(limit: Limit, session_id: str) -> str:
    if limit.budget == "session":
        return (
            f"To raise it: `kfd budget {session_id} USD` (or [budget] session_usd in config.toml)."
        )
    key = "daily_usd" if limit.budget == "daily" else "monthly_usd"
    return f"To raise it: [budget] {key} in config.toml, then restart the daemon."
