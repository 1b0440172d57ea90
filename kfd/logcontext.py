"""What the daemon is working on, for every log line written meanwhile.

Context variables, so each asyncio task carries its own: a session's turn
task sets `SESSION` and `TURN`, the request handler sets `REQUEST` (the
client's request id), a model request sets `MODEL_REQUEST` (its ledger row).
The daemon's log formatter (`kfd.daemon.logs`) writes them into each line.
"""

from __future__ import annotations

from contextvars import ContextVar

SESSION: ContextVar[str] = ContextVar("kfd_session", default="")
TURN: ContextVar[int] = ContextVar("kfd_turn", default=0)
REQUEST: ContextVar[str] = ContextVar("kfd_request", default="")
MODEL_REQUEST: ContextVar[str] = ContextVar("kfd_model_request", default="")

FIELDS: tuple[tuple[str, ContextVar[str] | ContextVar[int]], ...] = (
    ("session", SESSION),
    ("turn", TURN),
    ("request", REQUEST),
    ("model_request", MODEL_REQUEST),
)
"""The name each variable has in a log line."""
