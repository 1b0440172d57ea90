"""Attaching to a daemon on another host: CURVE over TCP, its key pinned as SSH pins one.

A `Remote` names a daemon (``[remotes.NAME]`` in the config: the command
line resolves it and hands it to frontends, which never read the config).
Before connecting, the client needs the daemon's public key: the one the
config gives (``daemon_key``), else the one pinned for the endpoint in
``known_daemons``, else the one the daemon announces on its key port, which
is pinned once a handshake has proved the daemon holds its secret half
(first use, as SSH's known_hosts). From then on a daemon that presents
another key is refused loudly (`DaemonKeyChanged`).

The sockets get the client's key pair, ZMTP heartbeats (a silent link is
dropped after three), and a short reconnect interval: after a dropped link
the client reconnects by itself, and attachments re-attach from the last
event they had, so nothing is missed or shown twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zmq

from kfd import paths
from kfd.client.errors import DaemonKeyChanged, DaemonUnavailable, RemoteRefused
from kfd.client.keys import KeyPair
from kfd.remote import (
    Endpoint,
    known_line,
    parse_announcement,
    parse_endpoint,
    parse_known_daemons,
    short,
)

ANNOUNCE_TIMEOUT = 5.0
"""How long the key port may take to say the daemon's key."""

RECONNECT_MAX_S = 2.0
"""Longest wait between two attempts to reach a daemon whose link dropped."""

HANDSHAKE_FAILURES = (
    zmq.EVENT_HANDSHAKE_FAILED_AUTH
    | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
)

PERMANENT_FAILURES = zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
"""Failures after which ZeroMQ stops reconnecting to that peer."""


@dataclass(frozen=True, slots=True)
class Remote:
    """A daemon on another host (``[remotes.NAME]``)."""

    name: str
    endpoint: str
    """``tcp://HOST:PORT``: its request port (events and key on the next two)."""
    daemon_key: str = ""
    """Its public key from the config; empty: pinned on first use."""
    workspace: str = ""
    """Where sessions started there work by default (a path on that host)."""
    heartbeat_s: float = 5.0

    @property
    def address(self) -> Endpoint:
        return parse_endpoint(self.endpoint)


@dataclass(frozen=True, slots=True)
class DaemonKey:
    """The key a client expects of a remote daemon, and where it came from."""

    key: str
    source: str
    """``config``, ``known_daemons`` or ``announced`` (not pinned yet)."""


def expected_key(remote: Remote, known_file: Path | None = None) -> DaemonKey | None:
    """The pinned key of ``remote`` (config first, then known_daemons); None if none is."""
    if remote.daemon_key:
        return DaemonKey(remote.daemon_key, "config")
    known = _read_known(known_file or paths.known_daemons_file())
    key = known.get(str(remote.address))
    return DaemonKey(key, "known_daemons") if key else None


async def announced_key(endpoint: Endpoint, timeout: float = ANNOUNCE_TIMEOUT) -> str:
    """The key the daemon at ``endpoint`` announces on its key port (unauthenticated:
    only ever pinned once a handshake proved it). DaemonUnavailable if none answers."""
    host = endpoint.host.strip("[]")
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, endpoint.key_port)
            try:
                data = await reader.read(200)
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
    except (OSError, TimeoutError) as exc:
        raise DaemonUnavailable(
            f"no kfd daemon announces its key at {host}:{endpoint.key_port} "
            f"({exc or 'timed out'}); "
            f"set `daemon_key` for {endpoint} in [remotes.…] (`kfd keys show --daemon` on "
            "that host prints it), or check that the daemon listens there"
        ) from None
    try:
        return parse_announcement(data)
    except ValueError as exc:
        raise DaemonUnavailable(f"{host}:{endpoint.key_port}: {exc}") from None


def pin(endpoint: Endpoint, key: str, known_file: Path | None = None) -> None:
    """Add ``key`` for ``endpoint`` to known_daemons (0600), unless one is pinned already."""
    path = known_file or paths.known_daemons_file()
    if str(endpoint) in _read_known(path):
        return
    paths.ensure_private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a", encoding="ascii") as handle:
        handle.write(known_line(endpoint, key) + "\n")


def _read_known(path: Path) -> dict[str, str]:
    try:
        return parse_known_daemons(path.read_text(encoding="ascii", errors="replace"))
    except FileNotFoundError:
        return {}


def secure(socket: zmq.Socket[Any], remote: Remote, keys: KeyPair, daemon_key: str) -> None:
    """Set a socket up for ``remote``: CURVE with our pair and its key, heartbeats, reconnects."""
    socket.setsockopt(zmq.CURVE_SERVERKEY, daemon_key.encode("ascii"))
    socket.setsockopt(zmq.CURVE_PUBLICKEY, keys.public.encode("ascii"))
    socket.setsockopt(zmq.CURVE_SECRETKEY, keys.secret.encode("ascii"))
    interval_ms = max(50, int(remote.heartbeat_s * 1000))
    socket.setsockopt(zmq.HEARTBEAT_IVL, interval_ms)
    socket.setsockopt(zmq.HEARTBEAT_TIMEOUT, 3 * interval_ms)
    socket.setsockopt(zmq.HEARTBEAT_TTL, 3 * interval_ms)
    # A connect attempt into a dead link would otherwise wait out the kernel's
    # SYN retries (minutes): give up on it and try again soon.
    socket.setsockopt(zmq.CONNECT_TIMEOUT, max(1000, 3 * interval_ms))
    socket.setsockopt(zmq.RECONNECT_IVL, 100)
    socket.setsockopt(zmq.RECONNECT_IVL_MAX, int(RECONNECT_MAX_S * 1000))
    if remote.address.ipv6:
        socket.setsockopt(zmq.IPV6, 1)


async def refusal(remote: Remote, expected: DaemonKey, event: int) -> RemoteRefused:
    """Why the handshake with ``remote`` failed, as an error the user can act on."""
    where = f"the daemon `{remote.name}` at {remote.endpoint}"
    if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
        return RemoteRefused(
            f"{where} refused this client's key: add the line `kfd keys show` prints here "
            "to ~/.config/kfd/authorized_keys on that host (it applies at once)"
        )
    # The daemon could not read our handshake: it does not hold the key we
    # expect of it. Say whether it now announces another one.
    try:
        now = await announced_key(remote.address)
    except DaemonUnavailable:
        now = ""
    if now and now != expected.key:
        pinned_in = (
            f"the key in [remotes.{remote.name}] daemon_key"
            if expected.source == "config"
            else f"the key pinned in {paths.known_daemons_file()}"
        )
        return DaemonKeyChanged(
            f"THE KEY OF {where.upper()} HAS CHANGED: it now presents {short(now)}, but "
            f"{pinned_in} is {short(expected.key)}. Someone may be impersonating it. If the "
            "daemon's keys were remade on purpose, check the new key on that host "
            "(`kfd keys show --daemon`) and replace the pinned one; until then kfd refuses it."
        )
    return RemoteRefused(
        f"{where} did not complete the CURVE handshake: it does not hold the key expected "
        f"of it ({short(expected.key)}, from {expected.source}), or it is not a kfd daemon"
    )
