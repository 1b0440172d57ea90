"""The session picker of ``kfd resume`` and ``/resume``: this project's sessions,
newest first, with title, age, turns and cost; Enter attaches to the chosen one.

`Picker` is the state (which sessions match what was typed, which one is
chosen), with no I/O; `choose` draws it under the prompt with prompt-toolkit
and returns the choice. Up/Down (or Ctrl-P/Ctrl-N) move, typing filters by
title or id, Enter chooses, Esc or Ctrl-C leaves without choosing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from prompt_toolkit.application import Application
from prompt_toolkit.formatted_text import StyleAndTextTuples
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
from prompt_toolkit.layout import Layout, Window
from prompt_toolkit.layout.controls import FormattedTextControl
from prompt_toolkit.styles import Style

from kfd import protocol as p
from kfd.client import Client
from kfd.client.exact import visible
from kfd.client.tables import session_line
from kfd_repl.history import project_root
from kfd_repl.live import fit

ROWS_SHOWN = 12
"""Sessions on screen at once; the list scrolls past them."""

LISTED = 2000
"""Most recent sessions asked of the daemon (those of this project are picked from them)."""

STYLE = Style.from_dict(
    {
        "picker.title": "bold",
        "picker.chosen": "reverse",
        "picker.id": "ansibrightblack",
        "picker.hint": "ansibrightblack",
    }
)


async def project_sessions(client: Client, cwd: str) -> tuple[Path, list[p.SessionInfo]]:
    """The project around ``cwd`` (its git work tree) and its sessions, newest first."""
    root = project_root(cwd)
    listed = await client.sessions(limit=LISTED)
    return root, [info for info in listed if in_project(info, root)]


def in_project(info: p.SessionInfo, root: Path) -> bool:
    """Whether the session's workspace is ``root`` or a directory under it."""
    cwd = info.cwd.rstrip(os.sep)
    top = str(root).rstrip(os.sep)
    return cwd == top or cwd.startswith(top + os.sep)


@dataclass(slots=True)
class Picker:
    """Sessions to choose from, what was typed to narrow them, and the choice."""

    sessions: list[p.SessionInfo]
    query: str = ""
    index: int = 0
    _shown: list[p.SessionInfo] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._shown = list(self.sessions)

    @property
    def shown(self) -> list[p.SessionInfo]:
        """The sessions that match the query, newest first."""
        return self._shown

    @property
    def chosen(self) -> p.SessionInfo | None:
        """The session Enter would attach to (None when nothing matches)."""
        return self._shown[self.index] if self._shown else None

    def move(self, step: int) -> None:
        """Choose the session ``step`` rows down (up, when negative), within the list."""
        if self._shown:
            self.index = max(0, min(len(self._shown) - 1, self.index + step))

    def type(self, text: str) -> None:
        """Narrow the list: every typed word must be in the title or the id."""
        self._narrow(self.query + text)

    def erase(self) -> None:
        """Take back the last character typed."""
        self._narrow(self.query[:-1])

    def _narrow(self, query: str) -> None:
        self.query = query
        words = query.lower().split()
        self._shown = [
            info
            for info in self.sessions
            if all(word in f"{info.title} {info.id}".lower() for word in words)
        ]
        self.index = 0

    def lines(self, width: int, title: str, current: str = "") -> StyleAndTextTuples:
        """The picker as formatted text ``width`` columns wide."""
        width = max(20, width - 1)
        out: StyleAndTextTuples = [("class:picker.title", fit(title, width) + "\n")]
        shown = self._shown
        start = max(0, min(self.index - ROWS_SHOWN // 2, len(shown) - ROWS_SHOWN))
        for number, info in enumerate(shown[start : start + ROWS_SHOWN], start=start):
            mark = "•" if info.id == current else " "
            row = f"{mark} {visible(session_line(info))}"
            style = "class:picker.chosen" if number == self.index else ""
            room = width - len(info.id) - 2
            out.append((style, fit(row, room).ljust(room)))
            out.append(("class:picker.id", f"  {info.id}\n"))
        if not shown:
            out.append(("class:picker.hint", f"  no session matches {self.query!r}\n"))
        elif len(shown) > ROWS_SHOWN:
            out.append(("class:picker.hint", f"  {self.index + 1} of {len(shown)}\n"))
        typed = f" · filter: {self.query}" if self.query else " · type to filter"
        hint = f"↑↓ choose · Enter attach · Esc cancel{typed}"
        out.append(("class:picker.hint", fit(hint, width)))
        return out


async def choose(
    sessions: list[p.SessionInfo], *, title: str, current: str = ""
) -> p.SessionInfo | None:
    """Let the user pick one of ``sessions`` in this terminal; None if they left."""
    picker = Picker(sessions)
    keys = KeyBindings()

    @keys.add("up")
    @keys.add("c-p")
    def _up(event: KeyPressEvent) -> None:
        picker.move(-1)

    @keys.add("down")
    @keys.add("c-n")
    def _down(event: KeyPressEvent) -> None:
        picker.move(1)

    @keys.add("pageup")
    def _page_up(event: KeyPressEvent) -> None:
        picker.move(-ROWS_SHOWN)

    @keys.add("pagedown")
    def _page_down(event: KeyPressEvent) -> None:
        picker.move(ROWS_SHOWN)

    @keys.add("enter")
    def _choose(event: KeyPressEvent) -> None:
        if picker.chosen is not None:
            event.app.exit(result=picker.chosen)

    @keys.add("escape", eager=True)
    @keys.add("c-c")
    @keys.add("c-d")
    def _leave(event: KeyPressEvent) -> None:
        event.app.exit(result=None)

    @keys.add("backspace")
    def _erase(event: KeyPressEvent) -> None:
        picker.erase()

    @keys.add("<any>")
    def _type(event: KeyPressEvent) -> None:
        if event.data.isprintable():
            picker.type(event.data)

    def draw() -> StyleAndTextTuples:
        return picker.lines(app.output.get_size().columns, title, current)

    app: Application[p.SessionInfo | None] = Application(
        layout=Layout(Window(FormattedTextControl(draw), dont_extend_height=True)),
        key_bindings=keys,
        style=STYLE,
        erase_when_done=True,
        mouse_support=False,
    )
    return await app.run_async()
