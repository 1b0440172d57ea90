"""What model requests cost: the ledger, budgets, and the ``usage`` events.

The turn loop (and compaction) call, around every model request:

- `Accounting.before_request` -- refuses a request that would pass a budget
  (`kfd.errors.BudgetExceeded`; the turn ends with an ``error`` event saying
  which and how to raise it), else says what the tightest budget has left;
- `Accounting.metered` -- the request itself, with its write-ahead ledger row
  (`kfd.agent.metering`), its answer read no further than its output limit
  and that budget allow: committed before the first byte leaves, completed
  (`after_request`: priced from the model table, added to the session's
  totals, shown in ``usage``, and behind a gateway that logs costs, looked up
  later: ``cost.updated``), failed, or interrupted with what is known.

``cost.query`` and ``model.list`` requests are answered here too, from the
ledger (every total is a sum of rows) and the model table.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

import msgspec

from kfd.agent import budgets
from kfd.agent.cost_lookup import GatewayCosts
from kfd.agent.metering import MeteredRequest, MeteredSession
from kfd.agent.tokens import request_tokens
from kfd.config import FALLBACK_CONTEXT_WINDOW
from kfd.errors import BudgetExceeded, RequestError
from kfd.gateway.catalog import ModelCatalog
from kfd.gateway.types import RequestInfo
from kfd.ids import new_id
from kfd.protocol import (
    BudgetName,
    BudgetState,
    BudgetWarning,
    CostQuery,
    CostResult,
    CostSource,
    CostUpdated,
    LedgerEntry,
    ModelInfo,
    ModelListResult,
    SessionInfo,
    Usage,
    UsageReported,
)

if TYPE_CHECKING:
    import asyncio

    from kfd.config import Config
    from kfd.gateway.types import Completed, ModelRequest, Provider
    from kfd.protocol import Event
    from kfd.store.ledger import Ledger

ENTRIES_LIMIT = 1000
"""Most individual ledger rows one ``cost.query`` returns."""

UNFINISHED = "the daemon stopped during this request; output tokens unknown"


class Billed(Protocol):
    """What the accounting uses of a session (`kfd.agent.session.Session` is one):
    its id, its info (totals, budget, model) and its event log."""

    info: SessionInfo

    @property
    def id(self) -> str:
        """The session id."""
        ...

    def emit(self, event: Event) -> asyncio.Future[None]:
        """Log a durable event; the future resolves once it is on disk and published."""
        ...


class Accounting:
    """Prices, records and limits what model requests cost."""

    def __init__(
        self,
        config: Config,
        ledger: Ledger,
        provider: Provider,
        catalog: ModelCatalog | None = None,
        on_closed: Callable[[LedgerEntry], None] | None = None,
    ) -> None:
        self.config = config
        self.on_closed = on_closed
        """Told of every request whose row is closed (telemetry)."""
        self.ledger = ledger
        self.catalog = catalog or ModelCatalog.load(config.models)
        self.gateway_costs: GatewayCosts[Billed] = GatewayCosts(
            provider, config.ledger, self._confirm
        )
        self.provider_name = provider.name

    async def close(self) -> None:
        """Stop the cost look-ups still waiting (their estimates stand)."""
        await self.gateway_costs.close()

    def reconfigure(self, config: Config, provider: Provider) -> None:
        """Use a reloaded config, and its provider, from the next request on."""
        self.config = config
        self.catalog = ModelCatalog.load(config.models)
        self.gateway_costs.reconfigure(provider, config.ledger)
        self.provider_name = provider.name

    # -- the hooks -------------------------------------------------------------

    async def before_request(
        self, session: Billed, request: ModelRequest
    ) -> budgets.Headroom | None:
        """Refuse (raise `BudgetExceeded`) a request that would pass a budget; else
        what the tightest budget has left for it (None: no budget applies)."""
        applying = budgets.limits(self.config.budget, session.info.budget_usd)
        if not applying:
            return None
        prompt = Usage(input_tokens=request_tokens(request))
        projected = self.catalog.estimate(request.model, prompt) or 0.0
        spent = await self._spent(session.id, applying)
        refused = budgets.refusal(applying, spent, projected, session.id)
        if refused is not None:
            limit, message = refused
            raise BudgetExceeded(message, budget=limit.budget)
        return budgets.headroom(applying, spent)

    @contextlib.asynccontextmanager
    async def metered(
        self,
        session: MeteredSession,
        turn: int,
        request: ModelRequest,
        headroom: budgets.Headroom | None = None,
    ) -> AsyncIterator[MeteredRequest]:
        """The request with its write-ahead ledger row, closed however the block ends.

        Its answer is read no further than `kfd.agent.metering.OVERRUN_FACTOR`
        times its output limit, nor past the cost ``headroom`` allows."""
        max_tokens = request.max_output_tokens or self.config.model.max_output_tokens
        meter = MeteredRequest(self, session, turn, request, max_tokens, headroom)
        try:
            yield meter
        except BaseException as exc:
            await _finish(meter.close(exc))
            raise
        await _finish(meter.close(None))

    async def after_request(
        self, session: Billed, turn: int, completed: Completed, written: LedgerEntry | None
    ) -> None:
        """Complete the request's row with what the provider reported, count it, say so."""
        info = completed.info
        estimate = self.catalog.estimate(info.model, completed.usage)
        source: CostSource = "estimate" if estimate is not None else "unpriced"
        used = msgspec.structs.replace(completed.usage, cost_usd=estimate or 0.0, requests=1)
        entry = LedgerEntry(
            id=written.id if written is not None else new_id("l"),
            session=session.id,
            turn=turn,
            ts=time.time(),
            provider=info.provider,
            model=info.model,
            input_tokens=used.input_tokens,
            cached_input_tokens=used.cached_input_tokens,
            cache_write_tokens=used.cache_write_tokens,
            output_tokens=used.output_tokens,
            reasoning_tokens=used.reasoning_tokens,
            cost_usd=used.cost_usd,
            estimate_usd=used.cost_usd,
            cost_source=source,
            latency_ms=round(info.latency_ms, 1),
            ttft_ms=round(info.ttft_ms, 1) if info.ttft_ms is not None else None,
            retries=info.retries,
            request_id=info.request_id or "",
            gateway_log_id=info.extra.get("gateway_log_id", ""),
            cache_status=info.extra.get("cache_status", ""),
        )
        await self.count(
            session, entry, used, context_tokens=used.input_tokens + used.output_tokens
        )
        await self._warn(session, used.cost_usd)
        if self.gateway_costs.wanted(info):
            self.gateway_costs.start(session, entry, info)

    async def count(
        self, session: Billed, entry: LedgerEntry, used: Usage, *, context_tokens: int
    ) -> None:
        """Commit the row, add it to the session's totals, and say so in ``usage``."""
        # Durable before visible: the row is committed before the event says so.
        # A cancellation during the write still lets the write end (the store
        # waits it out), so the totals and the event follow it either way.
        cancelled: asyncio.CancelledError | None = None
        try:
            await self.ledger.record(entry)
        except asyncio.CancelledError as exc:
            cancelled = exc
        self.closed(entry)
        total = session.info.usage
        for field in (
            "input_tokens",
            "cached_input_tokens",
            "cache_write_tokens",
            "output_tokens",
            "reasoning_tokens",
            "requests",
        ):
            setattr(total, field, getattr(total, field) + getattr(used, field))
        total.cost_usd += used.cost_usd
        session.emit(
            UsageReported(
                session=session.id,
                request=used,
                total=msgspec.structs.replace(total),
                model=entry.model,
                context_tokens=context_tokens,
                context_window=self.context_window(entry.model),
                ledger_id=entry.id,
                cost_source=entry.cost_source,
            )
        )
        if cancelled is not None:
            raise cancelled

    def closed(self, entry: LedgerEntry) -> None:
        """A request's row is final: tell whoever watches (telemetry)."""
        if self.on_closed is not None:
            self.on_closed(entry)

    async def close_unfinished(self) -> list[LedgerEntry]:
        """At start: close the rows a crash left ``sent`` as ``interrupted``."""
        return await self.ledger.close_unfinished(UNFINISHED)

    # -- the gateway's figure -------------------------------------------------

    async def resume_gateway_costs(
        self, session_of: Callable[[str], Awaitable[Billed]], within_s: float = 86_400
    ) -> int:
        """Start again the look-ups a stop interrupted (rows of the last day whose
        estimate the gateway's figure has not replaced). Returns how many."""
        resumed = 0
        for entry in await self.ledger.awaiting_gateway_cost(time.time() - within_s):
            info = RequestInfo(
                provider=entry.provider,
                model=entry.model,
                request_id=entry.request_id or None,
                extra={"gateway_log_id": entry.gateway_log_id},
            )
            if not self.gateway_costs.wanted(info):
                continue
            try:
                session = await session_of(entry.session)
            except RequestError:
                continue  # the session is gone; its row keeps the estimate
            self.gateway_costs.start(session, entry, info)
            resumed += 1
        return resumed

    async def _confirm(self, session: Billed, entry: LedgerEntry, cost: float) -> None:
        """The gateway's cost replaces the estimate: in the ledger, the totals, the log."""
        if not await self.ledger.set_cost(entry.id, cost, "gateway"):
            return
        total = session.info.usage
        total.cost_usd += cost - entry.cost_usd
        total.confirmed_cost_usd += cost
        session.emit(
            CostUpdated(
                session=session.id,
                ledger_id=entry.id,
                cost_usd=cost,
                estimate_usd=entry.estimate_usd,
                total=msgspec.structs.replace(total),
            )
        )
        await self._warn(session, cost - entry.cost_usd)

    # -- budgets ---------------------------------------------------------------

    async def _spent(
        self, session_id: str, applying: list[budgets.Limit]
    ) -> dict[BudgetName, float]:
        now = datetime.now().astimezone()
        spent: dict[BudgetName, float] = {}
        for limit in applying:
            if limit.budget == "session":
                spent["session"] = await self.ledger.spent(session=session_id)
            else:
                since = budgets.period_start(limit.budget, now)
                spent[limit.budget] = await self.ledger.spent(since=since)
        return spent

    async def _warn(self, session: Billed, added: float) -> None:
        """Warn about the thresholds ``added`` dollars just crossed."""
        if added <= 0:
            return
        applying = budgets.limits(self.config.budget, session.info.budget_usd)
        if not applying:
            return
        after = await self._spent(session.id, applying)
        before = {name: value - added for name, value in after.items()}
        warn_at = self.config.budget.warn_at
        for limit, spent, message in budgets.crossings(
            applying, before, after, warn_at, session.id
        ):
            session.emit(
                BudgetWarning(
                    session=session.id,
                    budget=limit.budget,
                    limit_usd=limit.usd,
                    spent_usd=spent,
                    message=message,
                )
            )

    async def budget_states(self, session: SessionInfo | None) -> list[BudgetState]:
        """The limits that apply (the session's only with ``session``), and their spending."""
        applying = budgets.limits(
            self.config.budget, session.budget_usd if session is not None else None
        )
        if session is None:
            applying = [limit for limit in applying if limit.budget != "session"]
        spent = await self._spent(session.id if session else "", applying)
        return [
            BudgetState(
                budget=limit.budget,
                limit_usd=limit.usd,
                spent_usd=spent[limit.budget],
                session=session.id if session is not None and limit.budget == "session" else "",
            )
            for limit in applying
        ]

    # -- requests --------------------------------------------------------------

    async def query(self, request: CostQuery, session: SessionInfo | None) -> CostResult:
        """Answer ``cost.query`` (the session, if named, already resolved)."""
        session_id = session.id if session is not None else None
        total, rows = await self.ledger.summary(
            session=session_id, since=request.since, until=request.until, by=request.by
        )
        entries = []
        if request.entries > 0:
            entries = await self.ledger.entries(
                session=session_id,
                since=request.since,
                until=request.until,
                limit=min(request.entries, ENTRIES_LIMIT),
            )
        return CostResult(
            total=total, rows=rows, entries=entries, budgets=await self.budget_states(session)
        )

    def models(self) -> ModelListResult:
        """Answer ``model.list`` from the model table."""
        models = [
            ModelInfo(
                name=name,
                provider=entry.provider,
                context_window=entry.context_window,
                input=entry.input,
                cached_input=entry.cached_input,
                cache_write=entry.cache_write,
                output=entry.output,
                aliases=list(entry.aliases),
            )
            for name, entry in self.catalog.entries.items()
        ]
        models.sort(key=lambda m: (m.provider, m.name))
        return ModelListResult(
            models=models, provider=self.config.model.provider, default=self.config.model.model
        )

    def context_window(self, model: str) -> int:
        """The window of ``model``: ``[model] context_window`` for the configured one."""
        if model == self.config.model.model:
            return self.config.model.context_window
        return self.catalog.context_window(model) or FALLBACK_CONTEXT_WINDOW


async def _finish(closing: Awaitable[None]) -> None:
    """Run ``closing`` to its end even if cancellations arrive meanwhile, then
    let the first of them go on."""
    task = asyncio.ensure_future(closing)
    cancelled = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            cancelled = True
    task.result()
    if cancelled:
        raise asyncio.CancelledError


def valid_usd(value: float | None) -> bool:
    """Whether ``value`` can be a spending limit (None: the config's)."""
    return value is None or (math.isfinite(value) and 0 < value <= 1_000_000)
