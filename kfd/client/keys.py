"""The CURVE key pairs of remote attach, as SSH keeps its keys.

``$XDG_CONFIG_HOME/kfd/keys/`` holds two pairs in ZeroMQ's certificate
format (`zmq.auth`): ``daemon.key`` / ``daemon.key_secret`` (the daemon's,
used when it listens on TCP) and ``client.key`` / ``client.key_secret``
(this user's, presented to remote daemons). Secret files are 0600 in a 0700
directory, and refused when others can read them. `kfd keys init` makes the
pairs that are missing; `kfd keys show` prints a public key with its
comment, the line a daemon's ``authorized_keys`` takes.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import re
import socket
import stat
from pathlib import Path
from typing import Literal, NamedTuple

import zmq
import zmq.auth

from kfd import paths
from kfd.client.errors import KeysMissing
from kfd.remote import authorized_line, clean_comment

Role = Literal["daemon", "client"]

_COMMENT = re.compile(r'^\s*comment\s*=\s*"(.*)"\s*$', re.MULTILINE)


class KeyPair(NamedTuple):
    """A CURVE key pair in Z85 (``secret`` empty when only the public half was read)."""

    public: str
    secret: str
    comment: str

    def line(self) -> str:
        """The ``authorized_keys`` line for this public key."""
        return authorized_line(self.public, self.comment)


def key_files(role: Role, directory: Path | None = None) -> tuple[Path, Path]:
    """(public file, secret file) of ``role``'s pair."""
    directory = directory or paths.keys_dir()
    return directory / f"{role}.key", directory / f"{role}.key_secret"


def default_comment(role: Role) -> str:
    """``user@host`` for the client key, ``kfd daemon on host`` for the daemon's."""
    host = socket.gethostname()
    if role == "daemon":
        return f"kfd daemon on {host}"
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{host}"


def init_keys(comment: str = "", directory: Path | None = None) -> list[Path]:
    """Make the key pairs that are missing (the daemon's and this user's client
    pair); the files made. ``comment`` names the client key (default ``user@host``)."""
    if not zmq.has("curve"):
        raise KeysMissing(
            "this pyzmq's libzmq was built without CURVE (libsodium); "
            "reinstall pyzmq from its wheel"
        )
    directory = paths.ensure_private_dir(directory or paths.keys_dir())
    made: list[Path] = []
    for role in ("daemon", "client"):
        public, secret = key_files(role, directory)
        if public.exists() and secret.exists():
            continue
        note = clean_comment(comment) if role == "client" and comment else default_comment(role)
        old = os.umask(0o177)  # both files 0600: the secret one must be
        try:
            for leftover in (public, secret):  # half a pair is no pair
                with contextlib.suppress(FileNotFoundError):
                    leftover.unlink()
            # ZPL (the certificate format) quotes values; pyzmq writes them as given.
            quoted = '"' + note.replace('"', "'") + '"'
            zmq.auth.create_certificates(directory, role, metadata={"comment": quoted})
        finally:
            os.umask(old)
        made += [public, secret]
    return made


def load(role: Role, *, secret: bool, directory: Path | None = None) -> KeyPair:
    """``role``'s key pair (``secret``: with its secret half, checked to be private)."""
    public_file, secret_file = key_files(role, directory)
    path = secret_file if secret else public_file
    if not path.exists():
        raise KeysMissing(
            f"no {role} key ({path} does not exist): run `kfd keys init` to make the keys"
        )
    if secret:
        _check_private(path)
    try:
        public, secret_key = zmq.auth.load_certificate(path)
        # pyzmq writes the metadata (the comment) into the secret file only.
        text = (secret_file if secret_file.exists() else path).read_text(errors="replace")
    except (OSError, ValueError) as exc:
        raise KeysMissing(f"cannot read the {role} key {path}: {exc}") from exc
    found = _COMMENT.search(text)
    comment = clean_comment(found.group(1)) if found else ""
    return KeyPair(
        public.decode("ascii"),
        secret_key.decode("ascii") if secret and secret_key else "",
        comment or default_comment(role),
    )


def _check_private(path: Path) -> None:
    """Refuse a secret key file others can read or that is not ours (as ssh does)."""
    info = path.stat()
    if info.st_uid != os.getuid():
        raise KeysMissing(f"{path} belongs to uid {info.st_uid}, not to you; refusing to use it")
    if info.st_mode & 0o077:
        mode = stat.S_IMODE(info.st_mode)
        raise KeysMissing(
            f"{path} can be read by others (mode {mode:04o}); `chmod 600 {path}` "
            "(and make new keys if someone may have copied it)"
        )
