"""The bus over TCP: CURVE listeners, who may attach, and the key announcement.

The bus binds its two sockets to TCP as well as to its local ``ipc://``
files (`kfd.daemon.bus`); this module sets them up for it. ZeroMQ copies a
socket's security options into each listener when it binds, so the local
listeners stay as they are while the TCP ones are CURVE servers that ask
ZAP (RFC 27) about every client, with ``ZAP_ENFORCE_DOMAIN`` so that no
handler means no client (fail closed). The handler is pyzmq's
`zmq.auth.asyncio.AsyncioAuthenticator`, asked about each key by `Gate`,
which reads ``authorized_keys`` again when it changes. A key taken out of
the file also ends the connections made with it: the TCP listeners are
bound again, which closes every TCP connection; authorised clients
reconnect by themselves and re-attach without loss.

Everything a TCP client sends is tagged by ZeroMQ with the key it
authenticated with (the ``User-Id`` of its frames), so the daemon knows
who answered an approval whatever the client calls itself.

Refusals are logged with the peer's address, at most once a minute per
address and kind (`RefusalLog`): a key that ZAP refused, and handshakes
that fail before ZAP is asked (plaintext ZMTP, bytes that are not ZMTP at
all, a handshake not finished in time), seen through a socket monitor
(`Handshakes`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

import zmq
import zmq.asyncio
import zmq.auth
from zmq.auth.asyncio import AsyncioAuthenticator
from zmq.utils.monitor import parse_monitor_message

from kfd import paths
from kfd.config import BusConfig
from kfd.errors import ConfigError
from kfd.remote import Endpoint, announcement, parse_authorized_keys, parse_endpoint, short

log = logging.getLogger("kfd.daemon.bus")

ZAP_DOMAIN = "kfd"

TOO_MANY_HANDSHAKES = "too many unfinished handshakes from its host (or from all): hung up"

REFUSAL_LOG_EVERY_S = 60.0
"""A refused address is logged at most once this often per kind (then with a count)."""

QUIET_S = 0.05
"""authorized_keys changed this recently may still be being written: wait."""

SETTLE_LIMIT_S = 1.0
"""Longest wait for an authorized_keys that keeps changing; then it is read as it is."""

_Stamp = tuple[int, int, int, int]


# -- who may attach ------------------------------------------------------------------


class Gate:
    """The client keys admitted: ``authorized_keys``, read again whenever it changed.

    A file that others may write (or that is not ours) admits nobody, as
    sshd's StrictModes would have it; lines that are not keys are skipped
    and logged.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.comments: dict[str, str] = {}
        """Z85 key -> its comment."""
        self._stamp: _Stamp | None = None

    def refresh(self) -> set[str]:
        """Read the file again if it changed (blocking); the keys it no longer admits."""
        info, stamp = _settled(self.path)
        if stamp == self._stamp:
            return set()
        self._stamp = stamp
        before = self.comments
        self.comments = self._read(info)
        return set(before) - set(self.comments)

    def _read(self, info: os.stat_result | None) -> dict[str, str]:
        if info is None:
            log.warning(
                "%s does not exist: no client can attach over TCP (`kfd keys show` on a "
                "client prints the line to add)",
                self.path,
            )
            return {}
        if info.st_uid != os.getuid() or info.st_mode & 0o022:
            log.error(
                "%s is writable by others or not yours (mode %04o, uid %d): it admits nobody "
                "until it is yours and `chmod 600`",
                self.path,
                stat.S_IMODE(info.st_mode),
                info.st_uid,
            )
            return {}
        try:
            text = self.path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            log.error("cannot read %s (%s): it admits nobody", self.path, exc.strerror)
            return {}
        found = parse_authorized_keys(text)
        for problem in found.problems:
            log.warning("%s %s", self.path, problem)
        log.info("%s admits %d client key(s)", self.path, len(found.comments))
        return found.comments


def _settled(path: Path) -> tuple[os.stat_result | None, _Stamp]:
    """The file's stat once it has not changed for `QUIET_S` (an editor may be
    writing it: a half-written file must not refuse a key it still lists)."""
    deadline = time.monotonic() + SETTLE_LIMIT_S
    while True:
        try:
            info = os.stat(path)
        except FileNotFoundError:
            return None, (0, 0, 0, 0)
        age = time.time() - info.st_mtime_ns / 1e9
        if not 0 <= age < QUIET_S or time.monotonic() >= deadline:
            return info, (info.st_mtime_ns, info.st_ctime_ns, info.st_size, info.st_ino)
        time.sleep(QUIET_S - age)


@dataclass(slots=True)
class RefusalLog:
    """Rate-limited refusal lines: one per address per `REFUSAL_LOG_EVERY_S`."""

    every_s: float = REFUSAL_LOG_EVERY_S
    _last: dict[str, float] = field(default_factory=dict)
    _held: dict[str, int] = field(default_factory=dict)

    def admit(self, address: str, now: float) -> int | None:
        """None: stay quiet about ``address`` now; else log it, with this many
        refusals of it kept quiet since the last line."""
        last = self._last.get(address)
        if last is not None and now - last < self.every_s:
            self._held[address] = self._held.get(address, 0) + 1
            return None
        if len(self._last) > 10_000:  # a scan from many addresses: forget the oldest
            for old in sorted(self._last, key=self._last.__getitem__)[:5_000]:
                self._last.pop(old, None)
                self._held.pop(old, None)
        self._last[address] = now
        return self._held.pop(address, 0)


class _Authenticator(AsyncioAuthenticator):
    """pyzmq's ZAP handler, with the peer's address at hand for the refusal log."""

    def __init__(self, context: zmq.asyncio.Context, gate: Gate, refusals: RefusalLog) -> None:
        super().__init__(context, log=logging.getLogger("kfd.daemon.zap"))
        self.gate = gate
        self.refusals = refusals
        self._address = ""

    async def handle_zap_message(self, msg: list[bytes]) -> None:
        # Requests are handled one at a time (the base class awaits each).
        self._address = msg[3].decode("ascii", "replace") if len(msg) > 3 else "?"
        if len(msg) >= 6 and msg[5] != b"CURVE":
            # Only CURVE listeners ask; anything else (a listener set up wrong
            # some day) is refused rather than let in as NULL would be.
            self._send_zap_reply(msg[1], b"400", b"CURVE only")
            return
        await super().handle_zap_message(msg)

    async def callback(self, domain: str, key: bytes) -> bool:
        """Whether the client key ``key`` (Z85) may attach (asked by ZAP)."""
        await asyncio.to_thread(self.gate.refresh)
        text = key.decode("ascii", "replace")
        if domain == ZAP_DOMAIN and text in self.gate.comments:
            return True
        held = self.refusals.admit(f"key {self._address}", time.monotonic())
        if held is not None:
            more = f" ({held} more refusals of it since the last line)" if held else ""
            log.warning(
                "refused a client at %s: its key %s is not in %s%s",
                self._address,
                short(text),
                self.gate.path,
                more,
            )
        return False


class Handshakes:
    """Which TCP connections ended without a handshake, and why (pure).

    ZeroMQ's socket monitor names a connection (its fd) only when it is
    accepted and when it ends; handshake events carry no fd. ZeroMQ runs one
    I/O thread here, so handshakes end in order: a success belongs to the
    oldest connection still shaking hands, and a failure's reason to the
    next connection that ends. A connection that ends without either sent
    bytes that are not ZMTP at all.
    """

    GARBAGE = "what it sent is not ZMTP"

    def __init__(self, per_host: int = 16, total: int = 256) -> None:
        self._pending: dict[int, str] = {}
        """fd -> address, for connections still shaking hands (oldest first)."""
        self._reason: str | None = None
        self._per_host = per_host
        self._total = total

    def accepted(self, fd: int, address: str) -> bool:
        """Note a new connection; False when it is one too many: more unfinished
        handshakes from its host than ``per_host``, or than ``total`` from all.

        A handshake takes milliseconds; connections that never finish one hold a
        descriptor each until the handshake timeout, so a flood of them could
        leave the daemon without descriptors. The one too many is not counted
        (hang it up)."""
        self._pending.pop(fd, None)  # an fd reused: the old connection is gone
        if len(self._pending) >= self._total:
            return False
        host = _host(address)
        if host and sum(_host(a) == host for a in self._pending.values()) >= self._per_host:
            return False
        self._pending[fd] = address
        return True

    def succeeded(self) -> None:
        if self._pending:
            self._pending.pop(next(iter(self._pending)))

    def failed(self, reason: str) -> None:
        """The next connection to end failed for ``reason`` ("": already told)."""
        self._reason = reason

    def disconnected(self, fd: int) -> tuple[str, str] | None:
        """(address, why) for a connection that ended before its handshake did."""
        address = self._pending.pop(fd, None)
        reason, self._reason = self._reason, None
        if address is None:
            return None
        return address, self.GARBAGE if reason is None else reason


def _host(address: str) -> str:
    """The host of ``host:port``; "" for an address that could not be read."""
    host, colon, _ = address.rpartition(":")
    return host if colon else ""


def protocol_failure(code: int) -> str:
    """Why a handshake failed, from ZeroMQ's protocol error ``code`` (pure)."""
    if code == zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH:
        # Also bytes that do not begin as ZMTP 3 does: ZeroMQ reads them as ZMTP 1.
        return "it does not speak CURVE (plaintext ZMTP, or bytes that are not ZMTP)"
    if code == zmq.PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC:
        return (
            "its handshake does not decrypt: it expects another daemon key (an old pin, "
            "or a wrong daemon_key) or is not a kfd client"
        )
    if code & 0xF0000000 == 0x10000000:
        return f"it broke the ZMTP protocol (ZeroMQ error {code:#x})"
    return f"the handshake failed (ZeroMQ error {code:#x})"


# -- the listeners -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Peer:
    """The key a TCP client authenticated with, and its comment in authorized_keys."""

    key: str
    comment: str


class TcpListeners:
    """The bus's TCP side: `bind` with the bus's sockets, `serve`, `close`."""

    def __init__(
        self,
        context: zmq.asyncio.Context,
        config: BusConfig,
        keys_dir: Path | None = None,
        authorized_keys: Path | None = None,
    ) -> None:
        self.config = config
        self.endpoints: list[Endpoint] = [parse_endpoint(text) for text in config.listen]
        self.keys_dir = keys_dir or paths.keys_dir()
        self.gate = Gate(authorized_keys or paths.authorized_keys_file())
        self.refusals = RefusalLog()
        self._context = context
        self._authenticator: _Authenticator | None = None
        self._sockets: list[zmq.asyncio.Socket] = []
        self._bound: list[tuple[zmq.asyncio.Socket, str]] = []
        self._public_key = ""
        self._announcers: list[asyncio.Server] = []
        self._key_sockets: list[socket.socket] = []

    @property
    def public_key(self) -> str:
        return self._public_key

    def bind(self, rpc: zmq.asyncio.Socket, events: zmq.asyncio.Socket) -> None:
        """Start ZAP, make both sockets CURVE servers for what is bound next, bind TCP.

        Called after the local listeners are bound: they keep their options.
        Raises ConfigError (the daemon does not start) without the daemon's keys.
        """
        public, secret = self._daemon_keys()
        self._public_key = public.decode("ascii")
        self.gate.refresh()
        authenticator = self._authenticator = _Authenticator(
            self._context, self.gate, self.refusals
        )
        authenticator.start()
        authenticator.configure_curve_callback(ZAP_DOMAIN, authenticator)
        interval_ms = int(self.config.heartbeat_s * 1000)
        for sock in (rpc, events):
            sock.setsockopt(zmq.CURVE_SERVER, 1)
            sock.setsockopt(zmq.CURVE_SECRETKEY, secret)
            sock.setsockopt(zmq.ZAP_DOMAIN, ZAP_DOMAIN.encode())
            sock.setsockopt(zmq.ZAP_ENFORCE_DOMAIN, 1)  # no handler: nobody gets in
            sock.setsockopt(zmq.HANDSHAKE_IVL, int(self.config.handshake_timeout_s * 1000))
            sock.setsockopt(zmq.HEARTBEAT_IVL, interval_ms)
            sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, 3 * interval_ms)
            sock.setsockopt(zmq.HEARTBEAT_TTL, 3 * interval_ms)
            if any(endpoint.ipv6 for endpoint in self.endpoints):
                sock.setsockopt(zmq.IPV6, 1)
        self._sockets = [rpc, events]
        for endpoint in self.endpoints:
            for sock, address in ((rpc, endpoint.rpc), (events, endpoint.events)):
                try:
                    sock.bind(address)
                except zmq.ZMQError as exc:
                    raise ConfigError(f"[bus] listen: cannot listen on {address}: {exc}") from exc
                self._bound.append((sock, address))
        if self.config.announce_key:
            self._key_sockets = [
                sock for sock in map(_key_listener, self.endpoints) if sock is not None
            ]
        log.info(
            "listening on %s (CURVE; daemon key %s)",
            ", ".join(str(endpoint) for endpoint in self.endpoints),
            short(self._public_key),
        )

    def _daemon_keys(self) -> tuple[bytes, bytes]:
        secret_file = self.keys_dir / "daemon.key_secret"
        advice = "run `kfd keys init` to make the daemon's key pair"
        try:
            info = secret_file.stat()
        except FileNotFoundError:
            raise ConfigError(
                f"[bus] listen needs the daemon's key pair, and {secret_file} does not exist: "
                f"{advice}"
            ) from None
        if info.st_uid != os.getuid() or info.st_mode & 0o077:
            raise ConfigError(
                f"{secret_file} can be read by others or is not yours "
                f"(mode {stat.S_IMODE(info.st_mode):04o}): `chmod 600` it (and make new keys, "
                "`kfd keys init` after removing the old ones, if it may have been copied)"
            )
        try:
            public, secret = zmq.auth.load_certificate(secret_file)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read {secret_file}: {exc}; {advice}") from exc
        if not secret:
            raise ConfigError(f"{secret_file} holds no secret key; {advice}")
        return public, secret

    def peer(self, frame: zmq.Frame) -> Peer | None:
        """Who sent ``frame``: the key it authenticated with (None: a local client)."""
        try:
            key = frame.get("User-Id")
        except zmq.ZMQError:
            return None  # no ZAP on the local sockets: no User-Id
        if not isinstance(key, str) or not key:
            return None
        return Peer(key, self.gate.comments.get(key, f"key {short(key)}"))

    async def serve(self) -> None:
        """Announce the key, watch authorized_keys and the handshakes, until cancelled."""
        async with asyncio.TaskGroup() as group:
            await self._announce()
            group.create_task(self._watch_keys())
            for sock in self._sockets:
                group.create_task(self._watch_handshakes(sock))

    async def _announce(self) -> None:
        message = announcement(self._public_key)

        async def tell(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            # Nothing is read: the port only ever says the public key.
            writer.write(message)
            with contextlib.suppress(OSError):
                await writer.drain()
            writer.close()

        for sock in self._key_sockets:
            self._announcers.append(await asyncio.start_server(tell, sock=sock))

    async def _watch_keys(self) -> None:
        """Notice edits of authorized_keys; a key taken out loses its connections."""
        import watchfiles  # the daemon has it already (config reload)

        directory = self.gate.path.parent
        while True:
            if not directory.is_dir():
                await asyncio.sleep(2.0)
                continue
            async for _ in watchfiles.awatch(
                directory,
                watch_filter=self._is_keys_file,
                recursive=False,
                debounce=100,
                step=20,
            ):
                removed = await asyncio.to_thread(self.gate.refresh)
                if removed:
                    log.warning(
                        "authorized_keys no longer admits %s: closing every TCP connection "
                        "(authorised clients reconnect by themselves)",
                        ", ".join(short(key) for key in sorted(removed)),
                    )
                    await self.rebind()

    def _is_keys_file(self, _change: object, changed: str) -> bool:
        return changed == str(self.gate.path)

    async def rebind(self) -> None:
        """Bind the TCP endpoints again: ZeroMQ closes the connections of an
        unbound listener, and the clients still admitted come back."""
        for sock, address in self._bound:
            with contextlib.suppress(zmq.ZMQError):
                sock.unbind(address)
        for sock, address in self._bound:
            for attempt in range(50):  # the old listener closes in ZeroMQ's thread
                try:
                    sock.bind(address)
                    break
                except zmq.ZMQError as exc:
                    if exc.errno != zmq.EADDRINUSE or attempt == 49:
                        log.error("cannot listen on %s again: %s", address, exc)
                        break
                    await asyncio.sleep(0.02)

    async def _watch_handshakes(self, sock: zmq.asyncio.Socket) -> None:
        """Log TCP peers that fail before ZAP is asked (plaintext ZMTP, garbage,
        a handshake not finished in time), with their address (`Handshakes`)."""
        wanted = (
            zmq.EVENT_ACCEPTED
            | zmq.EVENT_DISCONNECTED
            | zmq.EVENT_HANDSHAKE_SUCCEEDED
            | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
            | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
            | zmq.EVENT_HANDSHAKE_FAILED_AUTH
        )
        monitor = sock.get_monitor_socket(wanted)
        handshakes = Handshakes()
        try:
            while True:
                event = parse_monitor_message(await monitor.recv_multipart())
                kind, value = event["event"], event["value"]
                endpoint = event["endpoint"].decode("utf-8", "replace")
                if not endpoint.startswith("tcp://"):
                    continue
                if kind == zmq.EVENT_ACCEPTED:
                    address = _peer_address(value)
                    if not handshakes.accepted(value, address):
                        _hang_up(value)
                        self._log_failure(address, endpoint, TOO_MANY_HANDSHAKES)
                elif kind == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                    handshakes.succeeded()
                elif kind == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
                    handshakes.failed("")  # ZAP refused the key, and logged it
                elif kind == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL:
                    handshakes.failed(protocol_failure(value))
                elif kind == zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL:
                    # A timeout, or a peer that hung up first (a plaintext
                    # client that saw we want CURVE): ZeroMQ does not say which.
                    handshakes.failed("it hung up or stalled before the handshake ended")
                elif kind == zmq.EVENT_DISCONNECTED:
                    refused = handshakes.disconnected(value)
                    if refused is not None and refused[1]:
                        self._log_failure(refused[0], endpoint, refused[1])
        finally:
            sock.disable_monitor()
            monitor.close(linger=0)

    def _log_failure(self, address: str, endpoint: str, why: str) -> None:
        host = address.rpartition(":")[0] or address
        # Per reason too: a wrong daemon key and a port scan from one host
        # are different news (and the reasons are few).
        held = self.refusals.admit(f"handshake {host} {why}", time.monotonic())
        if held is not None:
            more = f" ({held} more refusals of it since the last line)" if held else ""
            log.warning("refused a TCP peer at %s on %s: %s%s", address, endpoint, why, more)

    async def close(self) -> None:
        for server in self._announcers:
            server.close()
        for server in self._announcers:
            with contextlib.suppress(Exception):
                await server.wait_closed()
        self._announcers.clear()
        for sock in self._key_sockets:
            sock.close()
        if self._authenticator is not None:
            self._authenticator.stop()
            self._authenticator = None


def _key_listener(endpoint: Endpoint) -> socket.socket | None:
    """A listening socket on ``endpoint``'s key port, bound with the bus (so it
    answers as soon as the daemon says it is ready); None (logged) if it cannot be."""
    family = socket.AF_INET6 if endpoint.ipv6 else socket.AF_INET
    host = endpoint.socket_host or ("::" if endpoint.ipv6 else "0.0.0.0")
    try:
        infos = socket.getaddrinfo(host, endpoint.key_port, family, socket.SOCK_STREAM)
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(infos[0][4])
            sock.listen(64)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
    except OSError as exc:
        log.error(
            "cannot announce the daemon key on port %d (%s): clients need daemon_key",
            endpoint.key_port,
            exc.strerror,
        )
        return None
    return sock


def _hang_up(fd: int) -> None:
    """End ZeroMQ's TCP connection on ``fd``: it sees the peer gone and closes it.

    Through a copy of the descriptor, as `_peer_address` reads it; if ZeroMQ
    has closed it already, there is nothing to end.
    """
    with contextlib.suppress(OSError, ValueError):
        copy = socket.socket(fileno=os.dup(fd))
        try:
            if copy.type == socket.SOCK_STREAM:
                copy.shutdown(socket.SHUT_RDWR)
        finally:
            copy.close()


def _peer_address(fd: int) -> str:
    """``host:port`` of the TCP connection on ``fd`` (ZeroMQ's; read through a copy).

    Racy by nature: ZeroMQ's thread may have closed the connection (a peer
    refused at once) before this runs, and the address is then unknown. The
    monitor that would carry it (version 2) is a draft API pyzmq does not ship.
    """
    try:
        with socket.socket(fileno=os.dup(fd)) as copy:
            host, port = copy.getpeername()[:2]
    except (OSError, ValueError):
        return "an unknown address (ZeroMQ had closed the connection already)"
    return f"{host}:{port}"
