"""Repository trust on the bus: trust.show, trust.set, trust.list, and the events.

A session whose project config holds what waits for trust (its ``allow``
rules) gets a ``trust.required`` event when it starts, and again when the
file changes while it is loaded: any frontend shows the question, and any
authorised frontend answers it with ``trust.set`` (the REPL's ``/trust``,
chat's ``!trust``, ``kfd trust``). A trust change is published on the
global topic and logged in every loaded session of the project
(``trust.changed``), so every frontend drops the question.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from kfd.config import MAX_PROJECT_CONFIG_BYTES, digest
from kfd.daemon.notices import SessionNotices
from kfd.daemon.rules_rpc import directory
from kfd.errors import RequestError
from kfd.policy.rulebook import TrustConflict
from kfd.protocol import (
    FrontendRef,
    TrustChanged,
    TrustInfo,
    TrustList,
    TrustListResult,
    TrustRequired,
    TrustSet,
    TrustShow,
)
from kfd.regular import read_regular

if TYPE_CHECKING:
    from kfd.agent.session import Session
    from kfd.daemon.ports import DaemonPort
    from kfd.policy.rulebook import RuleBook

log = logging.getLogger(__name__)

TrustRequest = TrustShow | TrustSet | TrustList


class TrustNotices(SessionNotices):
    """Tells sessions (and every frontend) about their project's trust."""

    about = "trust"

    def __init__(self, daemon: DaemonPort) -> None:
        super().__init__(daemon)
        self._told: dict[str, tuple[str, bool]] = {}
        """Session id -> the content (sha256) and trust it was last told about."""

    def project_loaded(self, project: str, info: TrustInfo) -> None:
        """The rule book read a project config anew (`kfd.policy.rulebook.ProjectLoaded`);
        one that does not load is `kfd.daemon.config_notices`'s to tell."""
        self._spawn(self._tell_project(project, info))

    def session_started(self, session_id: str) -> None:
        """A session was created: tell it what its project config may not do."""
        session = self._daemon.sessions.live.get(session_id)
        if session is not None:
            self._spawn(self._tell_started(session))

    async def _tell_started(self, session: Session) -> None:
        self._tell(session, await self._book.trust_info(session.info.cwd))

    async def _tell_project(self, project: str, info: TrustInfo) -> None:
        for session in await self._sessions_of(project):
            self._tell(session, info)

    def _tell(self, session: Session, info: TrustInfo) -> None:
        if not info.ignored:
            return
        state = (info.sha256, info.trusted)
        if self._told.get(session.id) == state:
            return
        self._told[session.id] = state
        session.emit(
            TrustRequired(
                session=session.id,
                project=info.project,
                path=info.path,
                sha256=info.sha256,
                ignored=list(info.ignored),
                grants=[] if info.trusted else list(info.grants),
            )
        )

    async def changed(self, info: TrustInfo, by: FrontendRef | None) -> None:
        """Trust was granted or revoked: tell everyone, and re-ask where it now applies."""
        self._global(
            TrustChanged(
                session="",
                project=info.project,
                path=info.path,
                sha256=info.sha256,
                trusted=info.trusted,
                by=by,
            )
        )
        for session in await self._sessions_of(info.project):
            session.emit(
                TrustChanged(
                    session=session.id,
                    project=info.project,
                    path=info.path,
                    sha256=info.sha256,
                    trusted=info.trusted,
                    by=by,
                )
            )
            self._told.pop(session.id, None)
            self._tell(session, info)


async def answer(
    daemon: DaemonPort, notices: TrustNotices, request: TrustRequest, by: FrontendRef
) -> TrustInfo | TrustListResult:
    """The result of one trust request."""
    book = daemon.runtime.rule_book
    assert book is not None
    match request:
        case TrustShow():
            return await book.trust_info(await directory(request.cwd))
        case TrustSet():
            cwd = await directory(request.cwd)
            try:
                if request.trusted:
                    info = await book.set_trust(cwd, request.sha256.strip(), by=by.name)
                else:
                    info = await book.revoke_trust(cwd)
            except TrustConflict as exc:
                raise RequestError("conflict", str(exc)) from None
            except ValueError as exc:
                raise RequestError("bad_request", str(exc)) from None
            log.info(
                "%s %s at %s (by %s)",
                "trusted" if request.trusted else "revoked trust in",
                info.path,
                info.sha256[:12],
                by.name,
            )
            await notices.changed(info, by)
            return info
        case TrustList():
            return await _listing(book)


async def _listing(book: RuleBook) -> TrustListResult:
    pins = book.trust.all()

    def changed() -> list[str]:
        stale = []
        for pin in pins:
            try:
                now = digest(read_regular(pin.path, MAX_PROJECT_CONFIG_BYTES))
            except OSError:
                now = ""
            if now != pin.sha256:
                stale.append(pin.path)
        return stale

    return TrustListResult(files=pins, changed=await asyncio.to_thread(changed))
