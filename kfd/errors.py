"""kfd's exceptions, in one tree.

Errors are values the user can act on: every message says what failed, why,
and what to do. ::

    KfdError
    ├── ConfigError              a config file or variable is wrong (which, where, how to fix)
    ├── DaemonError
    │   ├── DaemonRunning        a daemon already serves this runtime directory
    │   └── DaemonUnavailable    no daemon answers (and none could be started)
    ├── RequestError             the daemon answered a request with a typed error (``code``:
    │                            bad_request, not_found, conflict, overloaded, internal)
    ├── ProtocolMismatch         the daemon speaks a protocol version this client does not
    ├── StoreError               the database cannot be opened or migrated
    │   └── StoreUnavailable     a write failed for now (locked, I/O error, disk full): retry
    ├── BudgetExceeded           a model request would pass a spending limit, or its answer
    │                            passed what was left (which, how to raise)
    └── ProviderError            a model request failed
        ├── ProviderRejected     the provider refused the request (bad key): not retried
        │   └── ContextTooLong   the request does not fit the model's context window
        ├── ProviderUnavailable  retries exhausted (429, 5xx, dropped or stalled connections)
        ├── ProviderProtocolError  the provider's answer could not be understood
        └── AnswerOverrun        the answer ran far past its output limit: no longer read

Tool failures are not exceptions of this tree: a tool raises
`kfd.api.ToolError`, which becomes an error result the model reads.
"""

from __future__ import annotations


class KfdError(Exception):
    """Base of every kfd error."""


class ConfigError(KfdError):
    """A configuration file or variable is invalid."""


class DaemonError(KfdError):
    """The daemon cannot be started or reached."""


class DaemonRunning(DaemonError):
    """A daemon already serves this runtime directory."""


class DaemonUnavailable(DaemonError):
    """No daemon answers, and none could be started."""


class RequestError(KfdError):
    """The daemon answered a request with a typed error."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class ProtocolMismatch(KfdError):
    """The daemon speaks a protocol version this client does not."""


class StoreError(KfdError):
    """The database cannot be opened or migrated."""


class BudgetExceeded(KfdError):
    """A model request would pass a spending limit (it was not sent), or its
    answer passed what the limit had left (it was no longer read)."""

    def __init__(self, message: str, *, budget: str) -> None:
        super().__init__(message)
        self.budget = budget
        """Which limit: ``session``, ``daily`` or ``monthly``."""


class StoreUnavailable(StoreError):
    """A write failed for a reason that may pass (locked, I/O error, disk full)."""


class ProviderError(KfdError):
    """A model request failed."""

    def __init__(self, message: str, *, status: int | None = None, retries: int = 0) -> None:
        super().__init__(message)
        self.status = status
        self.retries = retries
        """Attempts made after the first before giving up."""


class ProviderRejected(ProviderError):
    """The provider refused the request; retrying would not help."""


class ContextTooLong(ProviderRejected):
    """The request does not fit the model's context window."""


class ProviderUnavailable(ProviderError):
    """The provider could not be reached or kept failing; retries are exhausted."""


class ProviderProtocolError(ProviderError):
    """The provider's answer could not be understood."""


class AnswerOverrun(ProviderError):
    """The answer ran far past the request's output limit (a provider that
    ignores ``max_tokens``); kfd stopped reading it. What arrived is billed."""
