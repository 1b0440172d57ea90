"""A daemon on one host and a client's home on another: remote attach under test.

`RemoteWorld` puts a `KfdDaemon` on the daemon's side of a `kfd.testing.netns`
link, listening on TCP with short heartbeats, and makes a client home (its
own XDG directories, a ``[remotes.NAME]`` table, a key pair) for the other
side, with the client's key in the daemon's ``authorized_keys``::

    link = make_link()
    model = link.on_daemon_side(lambda: ScriptedModelServer([Reply(text="hi")]).start())
    with RemoteWorld(link, model) as world:
        done = subprocess.run(world.kfd_argv("run", "--remote", "bb", "--cwd", ws, "hi"),
                              env=world.env)

In-process clients use ``world.env`` too (``XDG_CONFIG_HOME`` names the
client's keys and known_daemons) and run on the client's side in a
`kfd.testing.netns.SideLoop`.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Protocol

from kfd.client import Remote
from kfd.client.keys import KeyPair, init_keys, load
from kfd.testing.daemon import FAST_RETRIES, KfdDaemon
from kfd.testing.netns import Link


class _ModelEndpoint(Protocol):
    @property
    def base_url(self) -> str: ...


class RemoteWorld:
    """`start` (or ``with``) makes the keys and starts the daemon; `close` ends both.
    ``model_config``: keys of the daemon's ``[model]`` table; ``daemon_config``: tables
    of its own after ``[bus]``."""

    def __init__(
        self,
        link: Link,
        model: _ModelEndpoint | None = None,
        *,
        name: str = "bb",
        comment: str = "alice laptop",
        heartbeat_s: float = 0.2,
        daemon_config: str = "",
        model_config: str = "",
        port: int | None = None,
        root: Path | None = None,
    ) -> None:
        self.link = link
        self.name = name
        self.heartbeat_s = heartbeat_s
        self.root = root or Path(tempfile.mkdtemp(prefix="kfd-remote-"))
        self._owns_root = root is None
        self.port = port or link.daemon_port
        listen = f"tcp://{link.daemon_host}:{self.port}"
        self.daemon = KfdDaemon(
            model=model,
            config=FAST_RETRIES
            + model_config
            + f'\n[bus]\nlisten = ["{listen}"]\nheartbeat_s = {heartbeat_s}\n'
            + "handshake_timeout_s = 2\n"
            + daemon_config,
            root=self.root / "daemon",
            wrap=link.daemon_argv([]),
        )
        client = self.root / "client"
        self.client_config = client / "config" / "kfd"
        self.env = {
            key: value
            for key, value in self.daemon.env.items()
            if not key.startswith(("XDG_", "KFD_", "HOME"))
        }
        self.env.update(
            HOME=str(client / "home"),
            XDG_CONFIG_HOME=str(client / "config"),
            XDG_STATE_HOME=str(client / "state"),
            XDG_RUNTIME_DIR=str(client / "run"),
        )
        for directory in (client / "home", self.client_config, client / "state"):
            directory.mkdir(parents=True, exist_ok=True)
        (client / "run").mkdir(mode=0o700, exist_ok=True)
        self.endpoint = f"tcp://{link.client_host}:{link.client_port(self.port)}"
        (self.client_config / "config.toml").write_text(
            f'[remotes.{name}]\nendpoint = "{self.endpoint}"\nheartbeat_s = {heartbeat_s}\n'
        )
        self.comment = comment
        self.client_keys: KeyPair | None = None

    # -- keys ----------------------------------------------------------------

    @property
    def authorized_keys(self) -> Path:
        return self.daemon.config_dir / "authorized_keys"

    @property
    def known_daemons(self) -> Path:
        return self.client_config / "known_daemons"

    def make_keys(self, directory: Path, comment: str) -> KeyPair:
        """A client key pair in ``directory`` (public half, with its comment)."""
        init_keys(comment, directory)
        return load("client", secret=False, directory=directory)

    def authorize(self, *pairs: KeyPair) -> None:
        """Replace authorized_keys with the lines of ``pairs`` (0600, as it must be)."""
        self.authorized_keys.write_text("".join(pair.line() + "\n" for pair in pairs))
        os.chmod(self.authorized_keys, 0o600)

    def daemon_key(self) -> str:
        return load("daemon", secret=False, directory=self.daemon.config_dir / "keys").public

    def remote(self, **changes: str | float) -> Remote:
        """The `Remote` of the client's config, with ``changes``."""
        fields: dict[str, str | float] = {
            "name": self.name,
            "endpoint": self.endpoint,
            "heartbeat_s": self.heartbeat_s,
        }
        fields.update(changes)
        return Remote(**fields)  # type: ignore[arg-type]

    def add_remote(self, other: RemoteWorld) -> None:
        """Let this world's client reach ``other``'s daemon too (its table in our
        config, our key in its authorized_keys, beside its own client's)."""
        assert self.client_keys is not None and other.client_keys is not None
        with open(self.client_config / "config.toml", "a") as config:
            config.write(
                f'\n[remotes.{other.name}]\nendpoint = "{other.endpoint}"\n'
                f"heartbeat_s = {other.heartbeat_s}\n"
            )
        other.authorize(other.client_keys, self.client_keys)

    # -- processes -------------------------------------------------------------

    def kfd_argv(self, *args: str) -> list[str]:
        """``kfd ARGS`` run on the client's host (use with ``env=world.env``)."""
        return self.link.client_argv([sys.executable, "-m", "kfd", *args])

    def start(self) -> RemoteWorld:
        init_keys("", self.daemon.config_dir / "keys")  # the daemon's pair (and an unused one)
        self.client_keys = self.make_keys(self.client_config / "keys", self.comment)
        self.authorize(self.client_keys)
        self.daemon.start()
        return self

    def close(self) -> None:
        self.daemon.close()
        if self._owns_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> RemoteWorld:
        try:
            return self.start()
        except BaseException:
            self.close()  # `with` calls no __exit__ when __enter__ fails
            raise

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
