"""What request handling may use of the daemon: one Protocol, low in the graph.

`kfd.daemon.server.Daemon` starts the services and builds the `RpcHandler`
(`kfd.daemon.rpc`) that answers requests; the handlers (``rpc``,
``context_rpc``, ``cost_rpc``, ``rules_rpc``) are written against
`DaemonPort`, so the server imports them and none of them imports the server.
So are the config reloader (``reload``) and the trust notices (``trust_rpc``);
what only the request dispatcher needs beyond this is `kfd.daemon.rpc.Served`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from pathlib import Path

    from kfd.agent.runtime import Runtime
    from kfd.config import Config
    from kfd.daemon.sessions import SessionManager
    from kfd.plugins import PluginHost
    from kfd.triggers.manager import TriggerManager


class DaemonPort(Protocol):
    """The running daemon, as its request handlers see it."""

    config: Config
    """The configuration the daemon runs with (a reload replaces it)."""

    @property
    def runtime(self) -> Runtime:
        """The services every session shares."""
        ...

    @property
    def sessions(self) -> SessionManager:
        """All sessions: create, find, load, fork."""
        ...

    @property
    def triggers(self) -> TriggerManager | None:
        """The file-watch triggers (None while the daemon starts)."""
        ...

    @property
    def plugins(self) -> PluginHost:
        """The loaded plugins."""
        ...

    @property
    def daemon_id(self) -> str:
        """This daemon process's id."""
        ...

    @property
    def started_at(self) -> float:
        """When the daemon started (seconds since the epoch)."""
        ...

    @property
    def runtime_dir(self) -> Path:
        """Where the bus sockets are."""
        ...

    @property
    def state_dir(self) -> Path:
        """Where the store and the log are."""
        ...

    def watchers(self, session_id: str) -> int:
        """Frontends subscribed to a session's events."""
        ...

    def present_frontends(self) -> set[str]:
        """Ids of the frontends connected now."""
        ...

    def stop(
        self, reason: str = "", *, wait_for_turns: bool = False, restart: bool = False
    ) -> None:
        """Begin a clean shutdown (``wait_for_turns``: a graceful one)."""
        ...
