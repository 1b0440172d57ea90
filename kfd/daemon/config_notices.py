"""A config file that does not load, told in the sessions it concerns.

The user config (`kfd.daemon.reload`) and each project's ``.kfd/config.toml``
(`kfd.policy.rulebook`) keep their last good content when an edit breaks
them. The ``global`` topic says so (``config.error``), but only frontends that
follow it hear it; so the daemon also logs ``config.error`` in the sessions
a broken file concerns (every session for the user config, the project's
sessions for a project config), where every frontend already looks:

- when a session is created, if a file it reads is broken;
- when a message is sent to it (a turn is asked for) while one is: a
  frontend that attached just before (``kfd run --session``) hears it too;
- when a file breaks, in the loaded sessions it concerns (a decision or the
  watcher found it), once per session and message.

When the file loads again, each session told gets ``config.reloaded`` for
that path (and, for a project config, the ``global`` topic too). Frontends
show a given ``(path, message)`` once until then.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kfd.daemon.notices import SessionNotices
from kfd.protocol import ConfigInvalid, ConfigReloaded, TrustInfo

if TYPE_CHECKING:
    from kfd.agent.session import Session
    from kfd.daemon.ports import DaemonPort

PROJECT_FIXED = "the project config's rules: from the next decision"
"""What ``config.reloaded`` says applies once a broken project config loads again."""


class ConfigNotices(SessionNotices):
    """Tells sessions (and the ``global`` topic) which config files do not load."""

    about = "its config"

    def __init__(self, daemon: DaemonPort) -> None:
        super().__init__(daemon)
        self._user: tuple[str, str] | None = None
        """The user config's path and problem while it does not load."""
        self._projects: dict[str, str] = {}
        """Project config path -> its problem, for those that did not load when last read."""
        self._told: dict[str, dict[str, tuple[str, int]]] = {}
        """Session id -> path -> the problem it was told (and when: `_count`), until the
        file loads again."""
        self._count = 0

    # -- what the files say ---------------------------------------------------------

    def user_config(self, event: ConfigInvalid | ConfigReloaded) -> None:
        """The user config broke or loads again (`kfd.daemon.reload.ConfigReloader`'s
        publish): published on the ``global`` topic, and told in every loaded session."""
        self._global(event)
        if isinstance(event, ConfigInvalid):
            self._user = (event.path, event.message)
            for session in list(self._daemon.sessions.live.values()):
                self._tell(session, event.path, event.message)
        elif self._user is not None:
            path, self._user = self._user[0], None
            self._fixed(path, event.applied, event.not_applied)

    def project_loaded(self, project: str, info: TrustInfo) -> None:
        """The rule book read a project config anew (`kfd.policy.rulebook.ProjectLoaded`)."""
        problem = self._book.problem(project) if info.problem else ""
        if problem:
            self._projects[info.path] = problem
            self._global(ConfigInvalid(session="", path=info.path, message=problem))
            self._spawn(self._tell_project(project, info.path, problem))
        elif self._projects.pop(info.path, None) is not None:
            self._global(ConfigReloaded(session="", path=info.path, applied=[PROJECT_FIXED]))
            self._fixed(info.path, [PROJECT_FIXED], [])

    # -- when sessions hear it ------------------------------------------------------

    def session_started(self, session_id: str) -> None:
        """A session was created: tell it which of its config files do not load."""
        session = self._daemon.sessions.live.get(session_id)
        if session is not None:
            self._spawn(self.before_message(session, again=False))

    async def before_message(self, session: Session, *, again: bool = True) -> None:
        """Tell ``session`` which of its config files do not load, before a message
        to it is queued; ``again``: even if it was told already (whoever sends it
        may have attached since)."""
        since = self._count
        # First: reading the project config checks the user config too (and a file
        # found broken on the way is told at once, which need not be told twice).
        path, problem = await self._book.project_problem(session.info.cwd)
        found = [(path, problem)] if problem else []
        if self._user is not None:
            found.insert(0, self._user)
        told = self._told.get(session.id, {})
        for path, problem in found:
            fresh = told.get(path, ("", 0))[1] > since
            self._tell(session, path, problem, again=again and not fresh)

    async def _tell_project(self, project: str, path: str, problem: str) -> None:
        for session in await self._sessions_of(project):
            self._tell(session, path, problem)

    def _tell(self, session: Session, path: str, problem: str, *, again: bool = False) -> None:
        told = self._told.setdefault(session.id, {})
        if not again and told.get(path, ("", 0))[0] == problem:
            return
        self._count += 1
        told[path] = (problem, self._count)
        session.emit(ConfigInvalid(session=session.id, path=path, message=problem))

    def _fixed(self, path: str, applied: list[str], not_applied: list[str]) -> None:
        """``path`` loads again: the sessions told it did not hear so (loaded ones;
        an unloaded one has nothing running that it concerns)."""
        for session_id, told in list(self._told.items()):
            if told.pop(path, None) is None:
                continue
            if not told:
                del self._told[session_id]
            session = self._daemon.sessions.live.get(session_id)
            if session is not None:
                session.emit(
                    ConfigReloaded(
                        session=session_id, path=path, applied=applied, not_applied=not_applied
                    )
                )
