"""What the daemon's notices to sessions share: the rule book, the sessions of a
project, the ``global`` topic, and work done in the background until the daemon
stops (`kfd.daemon.trust_rpc.TrustNotices`, `kfd.daemon.config_notices.ConfigNotices`)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from kfd.protocol import GLOBAL_TOPIC, Event

if TYPE_CHECKING:
    from kfd.agent.session import Session
    from kfd.daemon.ports import DaemonPort
    from kfd.policy.rulebook import RuleBook

log = logging.getLogger(__name__)


class SessionNotices:
    """Tells sessions about something (``about``, for the log when telling fails)."""

    about = "something"

    def __init__(self, daemon: DaemonPort) -> None:
        self._daemon = daemon
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def _book(self) -> RuleBook:
        book = self._daemon.runtime.rule_book
        assert book is not None, "the daemon gives every runtime a rule book"
        return book

    async def _sessions_of(self, project: str) -> list[Session]:
        """The loaded sessions whose project is ``project``."""
        found = []
        for session in list(self._daemon.sessions.live.values()):
            if await self._book.project_of(session.info.cwd) == project:
                found.append(session)
        return found

    def _global(self, event: Event) -> None:
        event.ts = time.time()
        self._daemon.runtime.journal.publish_global(GLOBAL_TOPIC.encode(), event)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("could not tell a session about %s", self.about, exc_info=task.exception())

    async def close(self) -> None:
        """Stop telling (the daemon stops)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
