"""Approvals: a tool call waits for a frontend's answer; the first answer wins.

`Approvals.ask` emits ``approval.requested`` to every attached frontend and
waits; `Approvals.respond` takes the first answer (later ones get
``conflict``, naming who answered) and emits ``approval.resolved`` so every
frontend dismisses its prompt. A turn that ends while an approval waits
dismisses it as denied. The session's status follows from the lifecycle
(`kfd.agent.lifecycle`): ``on_change`` tells it an approval opened or settled.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from kfd.agent.lifecycle import ApprovalAsked, ApprovalSettled
from kfd.errors import RequestError
from kfd.ids import new_id
from kfd.policy.rules import GRANT, RuleError, parse_rule
from kfd.protocol import (
    ApprovalDecision,
    ApprovalRequested,
    ApprovalResolved,
    Event,
    FrontendRef,
    Preview,
)
from kfd.redact import redact, redact_struct

REMEMBERED_ANSWERS = 1000
"""Answered approvals remembered, to tell a late answer who was first."""


class NotShowable(Exception):
    """The approval could not show what the call does: nothing is asked, it is denied."""


@dataclass(slots=True)
class _Pending:
    event: ApprovalRequested
    future: asyncio.Future[tuple[ApprovalDecision, str]]


class Approvals:
    """The open approvals of one session.

    ``emit`` logs and publishes a durable event (`kfd.agent.session.Session.emit`);
    ``on_change`` receives `ApprovalAsked` before ``approval.requested`` goes
    out and `ApprovalSettled` once an approval is answered or dismissed.
    """

    def __init__(
        self,
        session_id: str,
        emit: Callable[[Event], object],
        on_change: Callable[[ApprovalAsked | ApprovalSettled], object],
    ) -> None:
        self._session_id = session_id
        self._emit = emit
        self._on_change = on_change
        self._pending: dict[str, _Pending] = {}
        self._resolved: OrderedDict[str, FrontendRef | None] = OrderedDict()

    def pending(self) -> list[ApprovalRequested]:
        """The approvals waiting for an answer, for a snapshot."""
        return [pending.event for pending in self._pending.values()]

    async def ask(
        self, call_id: str, tool: str, preview: Preview, reason: str, rule: str
    ) -> tuple[ApprovalDecision, str]:
        """Ask every attached frontend; the first answer wins: (decision, message).

        Raises `NotShowable` when the prompt could not show the call as it is."""
        approval_id = new_id("a")
        event = ApprovalRequested(
            session=self._session_id,
            approval_id=approval_id,
            call_id=call_id,
            tool=tool,
            preview=preview,
            reason=reason,
            session_rule=rule,
            can_keep=keepable(rule),
        )
        if redact_struct(event) is not event:
            # Every event is redacted before any frontend sees it: a prompt holding a
            # secret's shape (a key block, a URL password) would show `[redacted …]`
            # where code may hide (`-----BEGIN KEY-----"; rm -rf src; echo "-----END`).
            # An answer must be to what runs, so nothing is asked.
            raise NotShowable(
                "part of it looks like a secret (a key, a token, a password in a URL), "
                "which kfd never shows or stores, so no approval could show you exactly "
                "what it does; keep the secret in a file the command reads, or allow it "
                "with a rule"
            )
        future: asyncio.Future[tuple[ApprovalDecision, str]] = (
            asyncio.get_running_loop().create_future()
        )
        self._pending[approval_id] = _Pending(event, future)
        self._on_change(ApprovalAsked())
        self._emit(event)
        try:
            return await future
        finally:
            if self._pending.pop(approval_id, None) is not None:
                # Cancelled while waiting: dismiss the prompt everywhere.
                self._remember(approval_id, None)
                self._emit(
                    ApprovalResolved(
                        session=self._session_id,
                        approval_id=approval_id,
                        call_id=call_id,
                        decision="deny",
                        message="the turn ended before an answer",
                    )
                )
            self._on_change(ApprovalSettled())

    def respond(
        self,
        approval_id: str,
        decision: ApprovalDecision,
        message: str,
        by: FrontendRef | None,
    ) -> str:
        """Answer a pending approval, or raise conflict / not_found / bad_request.

        Returns the rule the answer keeps: the approval's session rule for
        ``allow_session`` and ``allow_always``, else "".
        """
        waiting = self._pending.get(approval_id)
        if decision == "allow_always" and waiting is not None and not waiting.event.can_keep:
            raise RequestError(
                "bad_request",
                f"approval {approval_id} offers no rule to keep for the project; "
                "answer allow, allow_session or deny",
            )
        pending = self._pending.pop(approval_id, None)
        if pending is None:
            if approval_id in self._resolved:
                who = self._resolved[approval_id]
                by_whom = f" by {who.name} ({who.id})" if who else ""
                raise RequestError(
                    "conflict", f"approval {approval_id} was already answered{by_whom}"
                )
            raise RequestError(
                "not_found", f"no pending approval {approval_id} in session {self._session_id}"
            )
        rule = ""
        if decision in ("allow_session", "allow_always"):
            rule = pending.event.session_rule
        self._remember(approval_id, by)
        self._emit(
            ApprovalResolved(
                session=self._session_id,
                approval_id=approval_id,
                call_id=pending.event.call_id,
                decision=decision,
                message=message,
                by=by,
                rule=rule,
            )
        )
        if not pending.future.done():
            pending.future.set_result((decision, message))
        return rule

    def _remember(self, approval_id: str, by: FrontendRef | None) -> None:
        self._resolved[approval_id] = by
        while len(self._resolved) > REMEMBERED_ANSWERS:
            self._resolved.popitem(last=False)


def keepable(text: str) -> bool:
    """Whether "allow always" can keep the rule ``text``: a rule, not a grant, and
    holding no secret (a kept rule is stored; a redacted one would match nothing)."""
    if not text or redact(text).count:
        return False
    try:
        rule = parse_rule(text)
    except RuleError:
        return False
    return rule.tool != GRANT
