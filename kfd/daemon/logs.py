"""The daemon's log: JSON lines, rotated by size, written by a thread.

One line per record::

    {"ts": "2025-01-31T12:00:00.123+00:00", "level": "warning", "logger": "kfd.store.db",
     "message": "...", "session": "s...", "turn": 3, "request": "17"}

``session``, ``turn``, ``request`` (the client's request id) and
``model_request`` (the ledger row of a model request) come from
`kfd.logcontext` when set. Records are redacted (`kfd.redact`) and written by
a listener thread, so no write blocks the event loop; the file rotates past
``[daemon] log_max_kib`` keeping ``log_backups`` old files. ``kfd logs``
reads them back (`kfd.cli.logs`).
"""

from __future__ import annotations

import logging
import logging.handlers
import queue
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import msgspec

from kfd import logcontext, redact

_encoder = msgspec.json.Encoder()


class ContextFilter(logging.Filter):
    """Copies the context variables onto the record, in the thread that logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, variable in logcontext.FIELDS:
            value = variable.get()
            if value:
                setattr(record, f"kfd_{name}", value)
        return True


class _Prepare(logging.Formatter):
    """For the queue: the message alone, the (redacted) traceback kept aside."""

    def format(self, record: logging.LogRecord) -> str:
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            record.kfd_exception = record.exc_text
        return record.getMessage()


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, _ in logcontext.FIELDS:
            value = getattr(record, f"kfd_{name}", None)
            if value:
                line[name] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        exception = getattr(record, "kfd_exception", None) or record.exc_text
        if exception:
            line["exception"] = exception
        return _encoder.encode(line).decode()


def start_logging(
    path: Path, level: str, *, max_bytes: int = 10 * 1024 * 1024, backups: int = 5
) -> Callable[[], None]:
    """Log JSON lines to ``path`` through a thread; returns the function that stops it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    file_handler = logging.handlers.RotatingFileHandler(
        path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8"
    )
    file_handler.setFormatter(JsonFormatter())
    listener = logging.handlers.QueueListener(records, file_handler)
    handler = logging.handlers.QueueHandler(records)
    handler.setFormatter(_Prepare())
    context = ContextFilter()
    handler.addFilter(context)
    root = logging.getLogger()
    root.addHandler(handler)
    redacting = redact.RedactingFilter()
    filtered = list(root.handlers)  # the file, and stderr when `kfd daemon --log-stderr`
    for each in filtered:
        each.addFilter(redacting)
    root.setLevel(level.upper())
    listener.start()

    def stop() -> None:
        for each in filtered:
            each.removeFilter(redacting)
        handler.removeFilter(context)
        root.removeHandler(handler)
        listener.stop()
        file_handler.close()

    return stop


def flush() -> None:
    """Make every handler write what it holds (before a forced exit)."""
    for each in logging.getLogger().handlers:
        each.flush()
