"""What a turn spends: usage totals per session, checked before each request.

The turn loop calls `Accounting.before_request` before every model request
(a budget may refuse it) and `after_request` / `after_failure` after it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from kfd.protocol import UsageReported

if TYPE_CHECKING:
    from kfd.agent.session import Session
    from kfd.errors import ProviderError
    from kfd.gateway.types import Completed, ModelRequest


class Accounting:
    """Counts usage into the session's totals and reports it."""

    async def before_request(self, session: Session, request: ModelRequest) -> None:
        """Raise to refuse the request (e.g. a budget would be exceeded)."""

    async def after_request(self, session: Session, turn: int, completed: Completed) -> None:
        total = session.info.usage
        used = completed.usage
        total.input_tokens += used.input_tokens
        total.cached_input_tokens += used.cached_input_tokens
        total.output_tokens += used.output_tokens
        total.reasoning_tokens += used.reasoning_tokens
        total.requests += 1
        total.cost_usd += used.cost_usd
        session.emit(
            UsageReported(
                session=session.id,
                request=used,
                total=msgspec.structs.replace(total),
                model=completed.info.model,
                context_tokens=used.input_tokens + used.output_tokens,
                context_window=session.runtime.config.model.context_window,
            )
        )

    async def after_failure(self, session: Session, turn: int, error: ProviderError) -> None:
        """A request failed for good (nothing to count yet)."""
