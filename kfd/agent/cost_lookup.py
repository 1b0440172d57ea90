"""Background look-ups of the cost a gateway logged for a request.

A gateway (Cloudflare's) logs each request with what it cost, a few seconds
after answering. For each such request one task asks the provider
(`kfd.gateway.types.Provider.reported_cost`) after ``[ledger] lookup_delay_s``,
doubling the wait after each miss, up to ``lookup_attempts`` times. When the
cost arrives, ``on_cost`` replaces the estimate. A look-up that cannot succeed
(no permission, a garbled answer) stops at once; one that fails for want of
a network just tries again later, and after the last attempt the estimate
stands. Nothing here ever fails a turn.

What a look-up belongs to (a session, for `kfd.agent.accounting`) is opaque
here: it is handed back to ``on_cost`` with the figure.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Generic, TypeVar

from kfd.errors import ProviderError, ProviderProtocolError, ProviderRejected

if TYPE_CHECKING:
    from kfd.config import LedgerConfig
    from kfd.gateway.types import Provider, RequestInfo
    from kfd.protocol import LedgerEntry

log = logging.getLogger(__name__)

MAX_DELAY_S = 60.0

Owner = TypeVar("Owner")
"""What a look-up belongs to, handed back to ``on_cost``."""


class GatewayCosts(Generic[Owner]):
    """Runs the look-ups; `close` cancels those still waiting."""

    def __init__(
        self,
        provider: Provider,
        config: LedgerConfig,
        on_cost: Callable[[Owner, LedgerEntry, float], Awaitable[None]],
    ) -> None:
        self._provider = provider
        self._config = config
        self._on_cost = on_cost
        self._tasks: set[asyncio.Task[None]] = set()
        self._sessions: dict[asyncio.Task[None], str] = {}
        self._refused = False

    def reconfigure(self, provider: Provider, config: LedgerConfig) -> None:
        """Look up later requests' costs with this provider and config (a reload)."""
        self._provider = provider
        self._config = config

    def wanted(self, info: RequestInfo) -> bool:
        """Whether to look up the cost of the request of ``info``."""
        return self._config.gateway_cost and not self._refused and self._provider.reports_cost(info)

    def start(self, owner: Owner, entry: LedgerEntry, info: RequestInfo) -> None:
        """Look the cost of ``entry`` up in the background."""
        task = asyncio.create_task(
            self._look_up(owner, entry, info), name=f"gateway cost {entry.id}"
        )
        self._tasks.add(task)
        self._sessions[task] = getattr(owner, "id", "")
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(lambda done: self._sessions.pop(done, None))

    def sessions(self) -> set[str]:
        """The sessions with a look-up still running (they must stay loaded)."""
        return set(self._sessions.values())

    @property
    def pending(self) -> int:
        """Look-ups still running."""
        return len(self._tasks)

    async def wait(self) -> None:
        """Wait until every look-up started so far has ended, one way or another."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        """Cancel the look-ups; their estimates stand."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _look_up(self, owner: Owner, entry: LedgerEntry, info: RequestInfo) -> None:
        delay = self._config.lookup_delay_s
        for _ in range(self._config.lookup_attempts):
            await asyncio.sleep(delay)
            delay = min(max(delay * 2, 0.05), MAX_DELAY_S)
            try:
                cost = await self._provider.reported_cost(info)
            except (ProviderRejected, ProviderProtocolError) as exc:
                if isinstance(exc, ProviderRejected):
                    self._refused = True  # the same credentials will be refused every time
                log.warning("gateway cost of %s not available: %s", entry.id, exc)
                return
            except ProviderError as exc:
                log.info("gateway cost of %s: %s (will try again)", entry.id, exc)
                continue
            if cost is None:
                continue
            try:
                await self._on_cost(owner, entry, cost)
            except Exception:
                log.exception("could not record the gateway cost of %s", entry.id)
            return
        log.info(
            "no gateway cost for %s after %d look-ups; the estimate stands",
            entry.id,
            self._config.lookup_attempts,
        )
