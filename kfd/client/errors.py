"""The client's errors. ::

ClientError
├── DaemonUnavailable        no daemon answered (and none could be started)
│   └── RemoteRefused        a remote daemon did not complete the CURVE handshake
│       └── DaemonKeyChanged it presents another key than the one pinned for it
├── RequestFailed            the daemon answered with a typed error (``code``)
└── KeysMissing              a key file of remote attach is missing or not private
"""

from __future__ import annotations


class ClientError(Exception):
    """Base of the client's errors."""


class DaemonUnavailable(ClientError):
    """No daemon answered (and none could be started)."""


class RequestFailed(ClientError):
    """The daemon answered with a typed error (``code``, ``message``)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class KeysMissing(ClientError):
    """A key file of remote attach is missing, unreadable or not private."""


class RemoteRefused(DaemonUnavailable):
    """A remote daemon did not complete the CURVE handshake: it refused this
    client's key, or it does not hold the key pinned for it."""


class DaemonKeyChanged(RemoteRefused):
    """A remote daemon presents another public key than the one pinned for it."""
