"""Requests about money and models: cost.query, model.list, session.set_budget.

Every figure comes from the ledger through `kfd.agent.accounting.Accounting`;
input is checked here, so a hostile request gets a `RequestError` saying what
is wrong and the daemon goes on.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from kfd.agent.accounting import valid_usd
from kfd.errors import RequestError
from kfd.protocol import (
    CostQuery,
    CostResult,
    FrontendRef,
    ModelList,
    ModelListResult,
    SessionResult,
    SessionSetBudget,
)

if TYPE_CHECKING:
    from kfd.daemon.ports import DaemonPort

CostRequest = CostQuery | ModelList | SessionSetBudget


async def answer(
    daemon: DaemonPort, request: CostRequest, by: FrontendRef
) -> CostResult | ModelListResult | SessionResult:
    """The result of one cost, model or budget request."""
    accounting = daemon.runtime.accounting
    match request:
        case CostQuery():
            for name, value in (("since", request.since), ("until", request.until)):
                if value is not None and not (math.isfinite(value) and value >= 0):
                    raise RequestError("bad_request", f"{name}: a Unix time in seconds (0 or more)")
            if request.entries < 0:
                raise RequestError("bad_request", "entries: 0 or more")
            info = None
            if request.session is not None:
                info = (await daemon.sessions.get(request.session)).info
            return await accounting.query(request, info)
        case ModelList():
            return accounting.models()
        case SessionSetBudget():
            if not valid_usd(request.usd):
                raise RequestError(
                    "bad_request",
                    "usd: a limit in US dollars above 0 (at most 1,000,000), "
                    "or null for the config's [budget] session_usd",
                )
            session = await daemon.sessions.get(request.session)
            await session.update(by=by, budget_usd=request.usd)
            return SessionResult(session=session.info)
