"""Where kfd keeps things, by the XDG base directory specification.

Honoured exactly: ``$XDG_RUNTIME_DIR/kfd`` (bus sockets, lock),
``$XDG_STATE_HOME/kfd`` (database, logs), ``$XDG_CONFIG_HOME/kfd``
(config.toml, the keys of remote attach), ``$XDG_CACHE_HOME/kfd`` (the
sandbox's cache homes, screenshots). An unset or relative variable falls back to the
specification's default.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

APP = "kfd"


def _xdg(variable: str, default: Path) -> Path:
    value = os.environ.get(variable, "")
    # The spec: relative paths are invalid and must be ignored.
    return Path(value) if value and os.path.isabs(value) else default


def runtime_dir() -> Path:
    """Bus sockets and the daemon lock. Falls back to a per-user /tmp dir."""
    default = Path("/tmp") / f"{APP}-runtime-{os.getuid()}"
    base = _xdg("XDG_RUNTIME_DIR", default)
    return base / APP if base != default else default


def state_dir() -> Path:
    """The database and logs."""
    return _xdg("XDG_STATE_HOME", Path.home() / ".local" / "state") / APP


def config_dir() -> Path:
    """config.toml and the user's global instructions."""
    return _xdg("XDG_CONFIG_HOME", Path.home() / ".config") / APP


def cache_dir() -> Path:
    """What kfd can rebuild: the sandbox's per-project cache homes, screenshots."""
    return _xdg("XDG_CACHE_HOME", Path.home() / ".cache") / APP


def config_file() -> Path:
    return config_dir() / "config.toml"


def keys_dir() -> Path:
    """The CURVE key pairs of remote attach (``daemon.key``, ``client.key`` and
    their ``.key_secret`` files)."""
    return config_dir() / "keys"


def authorized_keys_file() -> Path:
    """The client public keys the daemon admits over TCP, one per line."""
    return config_dir() / "authorized_keys"


def known_daemons_file() -> Path:
    """The daemon public keys this user pinned, one per endpoint (like known_hosts)."""
    return config_dir() / "known_daemons"


def rpc_endpoint(runtime: Path) -> str:
    return f"ipc://{runtime / 'rpc.sock'}"


def events_endpoint(runtime: Path) -> str:
    return f"ipc://{runtime / 'events.sock'}"


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` (mode 0700) and insist it is ours and private."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = path.stat()
    if info.st_uid != os.getuid():
        raise PermissionError(f"{path} belongs to uid {info.st_uid}, not to us; refusing to use it")
    if info.st_mode & 0o077:
        path.chmod(0o700)
    return path


def daemon_pid(runtime: Path) -> int | None:
    """The pid of the daemon holding ``runtime``'s lock, None if none runs.

    A held lock is the only proof of life: a pid file or a socket file can
    outlive a crashed daemon, a lock cannot.
    """
    try:
        fd = os.open(runtime / "daemon.lock", os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.read(fd, 32).decode(errors="replace").strip()
            return int(text) if text.isdigit() else 0
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
