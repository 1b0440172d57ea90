"""The client's errors."""

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
