"""One model request between its write-ahead ledger row and its end.

Every model request (a turn's step, a compaction) goes through
`Accounting.metered`::

    async with accounting.metered(session, turn, request) as meter:
        async for event in meter.stream(provider):
            ...

Before the first byte of each attempt leaves, the ledger row is committed
(state ``sent``, the request's input tokens as counted here, marked
estimated) or its retry count raised; once the stream ends the row is
completed with what the provider reported. Whatever ends the block early,
the row is closed with what is known:

- the stream completed (even if a cancellation arrived right after): the
  provider's figures, ``completed``;
- the provider failed for good: ``failed``, with the error (refusals are not
  billed: no tokens);
- a cancellation, a stop, any other error: ``interrupted``, input tokens as
  sent, output tokens estimated from what arrived (text, reasoning and
  tool-call arguments alike), marked estimated;
- no attempt's bytes ever left (cancelled while the row was being written):
  the row is withdrawn, since no provider received anything.

One answer is bounded, whatever the provider does: once what arrived passes
`OVERRUN_FACTOR` times the request's output limit (a provider that ignores
``max_tokens``; `kfd.errors.AnswerOverrun`), or its estimated cost passes what
the tightest budget had left (`kfd.errors.BudgetExceeded`), the stream is
closed and the row is ``interrupted`` with what arrived, saying why.

A crash leaves the row ``sent``; the daemon closes it as ``interrupted`` when
it starts again (`Accounting.close_unfinished`). So every request a provider
received has its row, whatever happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Protocol

import msgspec

from kfd import logcontext
from kfd.agent import budgets
from kfd.agent.tokens import request_tokens
from kfd.errors import AnswerOverrun, BudgetExceeded, ProviderError
from kfd.gateway.types import Completed, ReasoningDelta, Retrying, TextDelta, ToolCallDelta
from kfd.ids import new_id
from kfd.protocol import LedgerEntry, Usage
from kfd.redact import scrub

if TYPE_CHECKING:
    from kfd.agent.context_state import ContextState
    from kfd.gateway.catalog import ModelCatalog
    from kfd.gateway.types import ModelRequest, Provider, StreamEvent
    from kfd.protocol import Event, SessionInfo
    from kfd.store.ledger import Ledger

log = logging.getLogger(__name__)

ERROR_CHARS = 2000
CHARS_PER_TOKEN = 4
"""Output tokens of an interrupted stream are estimated from its characters."""

OVERRUN_FACTOR = 2
"""An answer is no longer read once what one attempt brought passes this many
times its output limit (estimated at `CHARS_PER_TOKEN`): an answer that keeps
to its limit averages far fewer than 8 characters a token."""


class MeteredSession(Protocol):
    """What a metered request uses of its session (`kfd.agent.session.Session` is one)."""

    info: SessionInfo
    context: ContextState

    @property
    def id(self) -> str:
        """The session id."""
        ...

    def emit(self, event: Event) -> asyncio.Future[None]:
        """Log a durable event."""
        ...


class Books(Protocol):
    """What a metered request uses of the accounting (`kfd.agent.accounting.Accounting`)."""

    ledger: Ledger
    catalog: ModelCatalog
    provider_name: str

    async def after_request(
        self,
        session: MeteredSession,
        turn: int,
        completed: Completed,
        written: LedgerEntry | None,
    ) -> None:
        """Complete the row from what the provider reported, and say so."""
        ...

    async def count(
        self, session: MeteredSession, entry: LedgerEntry, used: Usage, *, context_tokens: int
    ) -> None:
        """Commit the row, add it to the session's totals, and say so."""
        ...

    def closed(self, entry: LedgerEntry) -> None:
        """A row is final."""
        ...


class MeteredRequest:
    """A model request and its ledger row (a `kfd.gateway.types.SendObserver`)."""

    def __init__(
        self,
        accounting: Books,
        session: MeteredSession,
        turn: int,
        request: ModelRequest,
        max_output_tokens: int,
        headroom: budgets.Headroom | None = None,
    ) -> None:
        self.accounting = accounting
        self.session = session
        self.turn = turn
        self.request = request
        self.max_output_tokens = max_output_tokens
        """The request's output limit: an answer is read to `OVERRUN_FACTOR` times it."""
        self.headroom = headroom
        """What the tightest budget has left: an answer is read until its cost passes it."""
        self.entry: LedgerEntry | None = None
        """The row, once its write-ahead has begun."""
        self.completed: Completed | None = None
        self.received_chars = 0
        """Characters of output streamed (text, reasoning, tool-call arguments),
        over every attempt."""
        self.attempts_sent = 0
        """Attempts whose bytes all left (the provider received them)."""
        self.stopped = ""
        """Why the answer was no longer read, when it was cut off."""
        self._attempt_chars = 0
        self._started = time.monotonic()
        self._closed = False

    # -- the provider's side (SendObserver) ----------------------------------

    async def before_send(self, attempt: int) -> str:
        """Commit the row (first attempt) or count the retry, before any byte leaves."""
        if self.entry is None:
            self.entry = await self._open()
        else:
            self.entry = msgspec.structs.replace(self.entry, retries=attempt)
            await self.accounting.ledger.set_retries(self.entry.id, attempt)
        return f"{self.entry.id}.{attempt}"

    def sent(self, attempt: int) -> None:
        self.attempts_sent = max(self.attempts_sent, attempt + 1)

    async def _open(self) -> LedgerEntry:
        accounting = self.accounting
        provider, model = accounting.provider_name, self.request.model
        # Counting a large prompt is CPU work: off the event loop.
        estimated = await asyncio.to_thread(request_tokens, self.request)
        input_tokens = self.session.context.calibration.scale(estimated)
        price = accounting.catalog.estimate(model, Usage(input_tokens=input_tokens))
        entry = LedgerEntry(
            id=new_id("l"),
            session=self.session.id,
            turn=self.turn,
            ts=time.time(),
            provider=provider,
            model=model,
            input_tokens=input_tokens,
            cost_usd=price or 0.0,
            estimate_usd=price or 0.0,
            cost_source="estimate" if price is not None else "unpriced",
            state="sent",
            estimated=True,
        )
        self.entry = entry  # before the write: a cancellation meanwhile still closes it
        logcontext.MODEL_REQUEST.set(entry.id)
        await accounting.ledger.record(entry)
        log.info("model request %s to %s sent (%d input tokens)", entry.id, model, input_tokens)
        return entry

    # -- the consumer's side ---------------------------------------------------

    async def stream(self, provider: Provider) -> AsyncIterator[StreamEvent]:
        """The provider's stream of this request, watched for the ledger.

        Raises `AnswerOverrun` or `BudgetExceeded` (and closes the provider's
        stream) when the answer passes its bounds."""
        async with contextlib.aclosing(provider.stream(self.request, self)) as events:
            async for event in events:
                if isinstance(event, TextDelta | ReasoningDelta | ToolCallDelta):
                    self.received_chars += len(event.text)
                    self._attempt_chars += len(event.text)
                    self._within_bounds()
                elif isinstance(event, Retrying):
                    self._attempt_chars = 0  # a new answer starts
                elif isinstance(event, Completed):
                    self.completed = event
                yield event

    def _within_bounds(self) -> None:
        """Raise if the answer so far passes its output limit or the budget left."""
        limit = self.max_output_tokens
        if limit > 0 and self._attempt_chars > OVERRUN_FACTOR * limit * CHARS_PER_TOKEN:
            arrived = math.ceil(self._attempt_chars / CHARS_PER_TOKEN)
            self.stopped = f"stopped: the answer passed {OVERRUN_FACTOR}x its output limit"
            raise AnswerOverrun(
                f"the model's answer ran past its output limit of {limit:,} tokens (about "
                f"{arrived:,} arrived; the provider ignored max_tokens), so kfd stopped "
                "reading it and discarded it; ask for a shorter answer, or check that "
                "the provider honours max_tokens"
            )
        room, entry = self.headroom, self.entry
        if room is None or entry is None:
            return
        so_far = Usage(
            input_tokens=entry.input_tokens,
            output_tokens=math.ceil(self.received_chars / CHARS_PER_TOKEN),
        )
        cost = self.accounting.catalog.estimate(entry.model, so_far)
        if cost is not None and cost > room.usd:
            self.stopped = (
                f"stopped: the answer passed what the {room.limit.budget} budget had left"
            )
            raise BudgetExceeded(budgets.overrun(room, self.session.id), budget=room.limit.budget)

    async def close(self, error: BaseException | None) -> None:
        """Complete, fail, interrupt or withdraw the row (idempotent)."""
        if self._closed:
            return
        self._closed = True
        accounting, entry = self.accounting, self.entry
        if entry is not None:
            outcome = (
                "completed"
                if self.completed is not None
                else f"interrupted ({self.stopped})"
                if self.stopped
                else "failed"
                if isinstance(error, ProviderError)
                else f"interrupted ({type(error).__name__})"
            )
            log.info("model request %s %s", entry.id, outcome)
        if self.completed is not None:
            await accounting.after_request(self.session, self.turn, self.completed, entry)
            return
        if entry is None:
            return  # nothing was written, nothing was sent
        if self.attempts_sent == 0:
            # The row was written but no attempt left whole: no provider
            # received (or bills) anything.
            await accounting.ledger.withdraw(entry.id)
            return
        latency = round((time.monotonic() - self._started) * 1000, 1)
        retries = self.attempts_sent - 1
        if isinstance(error, ProviderError) and not self.stopped:
            failed = msgspec.structs.replace(
                entry,
                ts=time.time(),
                input_tokens=0,
                cost_usd=0.0,
                estimate_usd=0.0,
                latency_ms=latency,
                retries=retries,
                error=scrub(str(error))[:ERROR_CHARS] or type(error).__name__,
                state="failed",
                estimated=False,
            )
            await accounting.ledger.record(failed)
            accounting.closed(failed)
            return
        used = Usage(
            input_tokens=entry.input_tokens,
            output_tokens=math.ceil(self.received_chars / CHARS_PER_TOKEN),
            requests=1,
        )
        price = accounting.catalog.estimate(entry.model, used)
        used = msgspec.structs.replace(used, cost_usd=price or 0.0)
        why = self.stopped or (
            "cancelled"
            if isinstance(error, asyncio.CancelledError)
            else f"interrupted by {type(error).__name__}"
        )
        closed = msgspec.structs.replace(
            entry,
            ts=time.time(),
            output_tokens=used.output_tokens,
            cost_usd=used.cost_usd,
            estimate_usd=used.cost_usd,
            cost_source="estimate" if price is not None else "unpriced",
            latency_ms=latency,
            retries=retries,
            error=f"{why}; tokens estimated from what was sent and streamed",
            state="interrupted",
            estimated=True,
        )
        await accounting.count(self.session, closed, used, context_tokens=0)
