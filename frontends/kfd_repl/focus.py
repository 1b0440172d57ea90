"""Telling the other frontends whether the user is looking at this terminal.

A REPL in a focused terminal means the user sees what happens in its session,
so the desktop notifier stays quiet about it. Terminals report focus changes
when asked to (DECSET 1004: ``ESC [ I`` on focus, ``ESC [ O`` on leaving);
prompt-toolkit does not know these two sequences, so they are registered as
two keys no keyboard sends (F23, F24) and bound like any key.
"""

from __future__ import annotations

from prompt_toolkit.input.ansi_escape_sequences import ANSI_SEQUENCES
from prompt_toolkit.keys import Keys

from kfd import protocol as p
from kfd_repl import backend

FOCUS_IN = Keys.F23
FOCUS_OUT = Keys.F24
REPORTING_ON = "\x1b[?1004h"
REPORTING_OFF = "\x1b[?1004l"
METHOD = "frontend.focus"


def register_sequences() -> None:
    """Teach prompt-toolkit's input parser the focus reports (idempotent)."""
    ANSI_SEQUENCES.setdefault("\x1b[I", FOCUS_IN)
    ANSI_SEQUENCES.setdefault("\x1b[O", FOCUS_OUT)


def supported() -> bool:
    """True when the protocol has the focus request (older daemons do not)."""
    return backend.by_method(METHOD) is not None


def request(session: str, focused: bool) -> p.Request | None:
    """The focus request for ``session``, or None when the protocol has none."""
    request_type = backend.by_method(METHOD)
    if request_type is None:
        return None
    values = {"session": session, "focused": focused}
    return request_type(id="", **values)
