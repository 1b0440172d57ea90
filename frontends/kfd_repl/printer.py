"""Printing above the live prompt, in order, without tearing it.

While the application runs, prompt-toolkit's `run_in_terminal` erases the
live part, lets us print, and draws it again below. Blocks that arrive
together are printed in one go (one erase and redraw, not one per event).
Before the application starts and after it ends, blocks are printed
directly.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any

from prompt_toolkit.application import Application, run_in_terminal
from prompt_toolkit.application.current import set_app
from prompt_toolkit.formatted_text import ANSI
from prompt_toolkit.renderer import print_formatted_text as print_fragments
from prompt_toolkit.styles import BaseStyle

from kfd_repl.blocks import Block
from kfd_repl.render import plain, render

RECORD_KEPT = 2000
"""Printed blocks remembered as plain text (for `Printer.text`)."""


class Printer:
    """Renders blocks at the terminal's current width and prints them above the app."""

    def __init__(
        self,
        app: Application[Any],
        style: BaseStyle,
        on_printed: Callable[[], None] = lambda: None,
    ) -> None:
        self.app = app
        self.style = style
        self.on_printed = on_printed
        self.record: deque[str] = deque(maxlen=RECORD_KEPT)
        self._pending: list[Block] = []
        self._scheduled = False

    def show(self, *blocks: Block) -> None:
        """Print ``blocks`` soon, after everything shown before them."""
        if not blocks:
            return
        self._pending.extend(blocks)
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def text(self) -> str:
        """The plain text of what was printed lately."""
        return "".join(self.record)

    def _flush(self) -> None:
        if not self.app.is_running:
            self._write()
            return
        # run_in_terminal finds the application in the context; this callback
        # may come from a task started before the application ran.
        with set_app(self.app):
            run_in_terminal(self._write)

    def _write(self) -> None:
        self._scheduled = False
        blocks, self._pending = self._pending, []
        if not blocks:
            return
        output = self.app.output
        width = output.get_size().columns
        text = "".join(_render_safely(block, width) for block in blocks)
        print_fragments(output, ANSI(text), self.style, color_depth=self.app.color_depth)
        self.record.append(plain(text))
        self.on_printed()


def _render_safely(block: Block, width: int) -> str:
    try:
        return render(block, width)
    except Exception as exc:  # a rendering bug must not take the terminal down
        return f"(this {type(block).__name__} could not be shown: {exc!r})\n"
