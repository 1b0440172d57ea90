"""When a failed model request is tried again, and after how long.

Pure policy, no I/O: a provider asks `is_retryable_status` about an HTTP
answer, `parse_retry_after` about its headers, and `RetryPolicy.delay` for the
pause before the next attempt. Transport failures (refused or reset
connections, a stream cut before its end, an idle stall) are always retryable;
the provider decides those itself.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from kfd.config import ModelConfig

RETRYABLE_STATUSES: frozenset[int] = frozenset({408, 409, 429, 500, 502, 503, 504, 529})
"""Statuses that say "not now" rather than "not this request".

408 and 409 are the transient conflicts OpenAI's own clients retry; 529 is
Anthropic's "overloaded". Any other 5xx is retried too (see
`is_retryable_status`); every other 4xx is final.
"""


def is_retryable_status(status: int, headers: Mapping[str, str] | None = None) -> bool:
    """Whether an HTTP error answer is worth another attempt.

    A provider may decide for us with ``x-should-retry: true|false`` (OpenAI
    sends it); otherwise the statuses in `RETRYABLE_STATUSES` and every 5xx
    except 501 (a server that does not implement the endpoint will not start
    to) are retried.
    """
    if headers is not None:
        verdict = headers.get("x-should-retry", "").strip().lower()
        if verdict == "true":
            return True
        if verdict == "false":
            return False
    return status in RETRYABLE_STATUSES or (status >= 500 and status != 501)


def parse_retry_after(headers: Mapping[str, str], now: datetime | None = None) -> float | None:
    """Seconds the server asked us to wait, or None when it did not say.

    Understands ``retry-after-ms`` (OpenAI), ``Retry-After`` in seconds, and
    ``Retry-After`` as an HTTP date. A date in the past means "now" (0.0).
    Nonsense values are ignored rather than trusted.
    """
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            value = float(millis) / 1000
        except ValueError:
            value = -1.0
        if value >= 0:
            return value
    raw = headers.get("retry-after")
    if raw is None:
        return None
    raw = raw.strip()
    try:
        seconds = float(raw)
    except ValueError:
        pass
    else:
        return seconds if seconds >= 0 else None
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        # HTTP dates are GMT by definition; a naive result is still GMT.
        when = when.replace(tzinfo=UTC)
    now = now or datetime.now(UTC)
    return max(0.0, (when - now).total_seconds())


@dataclass(frozen=True)
class RetryPolicy:
    """Jittered exponential backoff with a cap, deferring to ``Retry-After``.

    ``max_retries`` counts retries, not attempts: 5 means up to 6 requests.
    """

    max_retries: int = 5
    base_s: float = 1.0
    max_s: float = 60.0

    @classmethod
    def from_config(cls, config: ModelConfig) -> RetryPolicy:
        """The policy the ``[model]`` section asks for."""
        return cls(
            max_retries=max(0, config.max_retries),
            base_s=max(0.0, config.retry_base_s),
            max_s=max(0.0, config.retry_max_s),
        )

    def delay(
        self,
        retry: int,
        retry_after: float | None = None,
        *,
        rng: Callable[[], float] = random.random,
    ) -> float:
        """Seconds to wait before retry number ``retry`` (0 for the first).

        Without ``retry_after`` the ceiling doubles from ``base_s`` up to
        ``max_s`` and the delay is drawn from its upper half ("equal jitter"):
        clients that failed together spread out, yet none retries at once.
        With ``retry_after`` the server's word is taken as is, capped at
        ``max_s`` so a confused server cannot park a turn for an hour.
        """
        if retry_after is not None:
            return min(max(0.0, retry_after), self.max_s)
        # Exponent clamped so a huge retry count cannot overflow the float.
        ceiling = min(self.max_s, self.base_s * 2.0 ** min(retry, 32))
        return ceiling / 2 + rng() * ceiling / 2
