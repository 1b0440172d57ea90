"""Remote attach, the pure parts: TCP endpoints and the formats of the key files.

A daemon listening on ``tcp://HOST:PORT`` (``[bus] listen``) uses three
consecutive ports: ``PORT`` for requests (ROUTER), ``PORT + 1`` for events
(XPUB), both CURVE-encrypted and authenticated, and ``PORT + 2`` where it
tells anyone its public key (nothing else: that port reads nothing), so a
client can pin the key on first use as SSH pins a host key. A client names
the daemon by ``tcp://HOST:PORT`` alone (``[remotes.NAME] endpoint``).

Keys are CURVE public keys in Z85 (40 characters). The daemon admits the
client keys of ``authorized_keys`` (`parse_authorized_keys`); a client keeps
the daemon keys it pinned in ``known_daemons`` (`parse_known_daemons`).
Nothing here does I/O: the daemon's bus and the client read the files and
decide with these functions.
"""

from __future__ import annotations

import re
import time
from typing import NamedTuple

Z85_ALPHABET = (
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#"
)
"""ZeroMQ's Z85 alphabet (RFC 32)."""

KEY_LENGTH = 40
"""A 32-byte CURVE key in Z85."""

ANNOUNCE_PREFIX = "kfd-daemon-key 1 "
"""What the key port says, before the daemon's public key and a newline."""

MAX_COMMENT = 80
"""A key's comment is cut to this many characters (it names who answered)."""

_Z85 = frozenset(Z85_ALPHABET)
_ENDPOINT = re.compile(r"tcp://(?P<host>\[[0-9a-fA-F:.]+\]|[^\s:/\[\]]+):(?P<port>\d{1,5})")


def is_key(text: str) -> bool:
    """Whether ``text`` is a CURVE key in Z85 (40 characters of its alphabet)."""
    return len(text) == KEY_LENGTH and _Z85.issuperset(text)


def short(key: str) -> str:
    """A key as people compare it at a glance: its first 12 characters and an ellipsis."""
    return key[:12] + "…"


class Endpoint(NamedTuple):
    """``tcp://HOST:PORT`` and the ports derived from it."""

    host: str
    """A name, an IPv4 address, ``*`` (every interface) or a bracketed IPv6 address."""
    port: int

    @property
    def rpc(self) -> str:
        return f"tcp://{self.host}:{self.port}"

    @property
    def events(self) -> str:
        return f"tcp://{self.host}:{self.port + 1}"

    @property
    def key_port(self) -> int:
        return self.port + 2

    @property
    def ipv6(self) -> bool:
        return self.host.startswith("[")

    @property
    def socket_host(self) -> str | None:
        """The host as the socket library takes it (None: every interface)."""
        if self.host in ("*", "0.0.0.0", "[::]"):
            return None
        return self.host.strip("[]")

    def __str__(self) -> str:
        return self.rpc


def parse_endpoint(text: str) -> Endpoint:
    """``tcp://HOST:PORT``; ValueError saying what is wrong otherwise.

    ``PORT`` and the two after it are used, so it is at most 65533.
    """
    match = _ENDPOINT.fullmatch(text.strip())
    if match is None:
        raise ValueError(
            f"{text!r} is not tcp://HOST:PORT (kfd listens and connects over TCP only; "
            "its local sockets need no configuration)"
        )
    port = int(match["port"])
    if not 1 <= port <= 65533:
        raise ValueError(f"{text!r}: the port must be 1-65533 (it and the next two are used)")
    return Endpoint(match["host"], port)


# -- authorized_keys -----------------------------------------------------------


class AuthorizedKeys(NamedTuple):
    """The keys a daemon admits, with their comments, and the lines it skipped."""

    comments: dict[str, str]
    """Z85 public key -> the comment naming its person or bridge."""
    problems: list[str]
    """One line each: which line was skipped, and why."""


def parse_authorized_keys(text: str) -> AuthorizedKeys:
    """Read ``authorized_keys``: ``Z85KEY comment`` per line; blank lines and
    ``#`` comments (lines whose first word is not a key) are skipped. A line
    that is not a key admits nobody and is named in ``problems``; a key
    without a comment is admitted and named by its first characters."""
    comments: dict[str, str] = {}
    problems: list[str] = []
    for number, raw in enumerate(text.splitlines(), 1):
        words = raw.strip().split(None, 1)
        if not words:
            continue
        key, comment = words[0], words[1] if len(words) > 1 else ""
        # A Z85 key may itself begin with "#": a line is a comment only if its
        # first word is not a key.
        if not is_key(key) and key.startswith("#"):
            continue
        if not is_key(key):
            problems.append(
                f"line {number}: {key[:20]!r} is not a CURVE public key (40 Z85 characters); "
                "`kfd keys show` on the client prints the line to add"
            )
            continue
        comment = clean_comment(comment) or f"key {short(key)}"
        comments[key] = comment
    return AuthorizedKeys(comments, problems)


def clean_comment(comment: str) -> str:
    """A comment as shown to others: printable, one line, at most `MAX_COMMENT` characters."""
    printable = "".join(ch if ch.isprintable() else " " for ch in comment)
    return " ".join(printable.split())[:MAX_COMMENT]


def authorized_line(key: str, comment: str) -> str:
    """The ``authorized_keys`` line admitting ``key``."""
    return f"{key} {clean_comment(comment)}".rstrip()


# -- known_daemons ---------------------------------------------------------------


def parse_known_daemons(text: str) -> dict[str, str]:
    """Read ``known_daemons``: ``tcp://HOST:PORT Z85KEY [note]`` per line.

    The first line for an endpoint wins (a later duplicate cannot replace a
    pin); lines that do not parse are skipped.
    """
    known: dict[str, str] = {}
    for raw in text.splitlines():
        words = raw.split()
        if len(words) < 2 or raw.lstrip().startswith("#"):
            continue
        try:
            endpoint = str(parse_endpoint(words[0]))
        except ValueError:
            continue
        if is_key(words[1]):
            known.setdefault(endpoint, words[1])
    return known


def known_line(endpoint: Endpoint, key: str, now: float | None = None) -> str:
    """The ``known_daemons`` line pinning ``key`` for ``endpoint``."""
    when = time.strftime("%Y-%m-%d", time.localtime(now))
    return f"{endpoint} {key} pinned on first use {when}"


def announcement(key: str) -> bytes:
    """What the key port sends: the prefix, the daemon's public key, a newline."""
    return f"{ANNOUNCE_PREFIX}{key}\n".encode("ascii")


def parse_announcement(data: bytes) -> str:
    """The daemon key in what the key port sent; ValueError if it is not one."""
    text = data.decode("ascii", "replace")
    if not text.startswith(ANNOUNCE_PREFIX) or not text.endswith("\n"):
        raise ValueError("not a kfd daemon's key announcement")
    key = text[len(ANNOUNCE_PREFIX) : -1]
    if not is_key(key):
        raise ValueError("the announced key is not a CURVE public key")
    return key
