"""Printing above the live prompt, in order, without tearing it.

While the application runs, `print_above` erases the live part, prints, and
draws it again below. Blocks that arrive together are printed in one go (one
erase and redraw, not one per event). Before the application starts and after
it ends, blocks are printed directly.
"""

from __future__ import annotations

import asyncio
import functools
from collections import deque
from collections.abc import Callable
from typing import Any

from prompt_toolkit.application import Application
from prompt_toolkit.formatted_text import ANSI
from prompt_toolkit.renderer import print_formatted_text as print_fragments
from prompt_toolkit.styles import BaseStyle

from kfd_repl.blocks import ApprovalAsk, Block, Listing, ToolLine
from kfd_repl.render import plain, render

RECORD_KEPT = 2000
"""Printed blocks remembered as plain text (for `Printer.text`)."""

HEAVY_CHARS = 200_000
"""Blocks carrying more text than this are rendered in a worker thread."""


class Printer:
    """Renders blocks at the terminal's current width and prints them above the app.

    One batch at a time, in the order shown. A heavy batch (a whole-diff
    approval of thousands of lines takes a good part of a second) is rendered
    in a worker thread, so the prompt stays live meanwhile.
    """

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
        self._printing: asyncio.Task[None] | None = None

    def show(self, *blocks: Block) -> None:
        """Print ``blocks`` soon, after everything shown before them."""
        if not blocks:
            return
        self._pending.extend(blocks)
        if self._printing is None or self._printing.done():
            self._printing = asyncio.get_running_loop().create_task(self._print_pending())

    async def drain(self) -> None:
        """Wait until everything shown so far is printed."""
        while self._printing is not None and not self._printing.done():
            await asyncio.shield(self._printing)

    def text(self) -> str:
        """The plain text of what was printed lately."""
        return "".join(self.record)

    async def _print_pending(self) -> None:
        while self._pending:
            blocks, self._pending = self._pending, []
            width = self.app.output.get_size().columns
            if sum(map(_weight, blocks)) > HEAVY_CHARS:
                text = await asyncio.to_thread(_render_all, blocks, width)
            else:
                text = _render_all(blocks, width)  # at once: the usual, small case
            await print_above(self.app, functools.partial(self._write, text))

    def _write(self, text: str) -> None:
        output = self.app.output
        print_fragments(output, ANSI(text), self.style, color_depth=self.app.color_depth)
        self.record.append(plain(text))
        self.on_printed()


async def print_above(app: Application[Any], write: Callable[[], None]) -> None:
    """Run ``write`` (which prints) above the running application's live part.

    prompt-toolkit's `run_in_terminal` does the same but also puts the terminal
    in cooked mode meanwhile (made for running programs that read the
    terminal): a key typed while a block printed was echoed into the output,
    and an Enter arrived as Ctrl-J, a new line in the draft rather than a send.
    Printing needs none of that, so the terminal stays raw: the erase, the
    write and the redraw are one synchronous step, no key is read in between,
    and keys typed meanwhile wait, unchanged, in the terminal's input queue.
    This uses the application's renderer the way `run_in_terminal` does
    (private names, prompt-toolkit is pinned in the lock files).
    """
    if not app.is_running or app.is_done:
        write()
        return
    # A program that has the terminal (the session picker's full screen) keeps
    # it until it is done: printing waits behind it, as run_in_terminal would.
    while (busy := app._running_in_terminal_f) is not None and not busy.done():
        await asyncio.shield(busy)
    if app.output.responds_to_cpr:
        # A cursor position answer still to come would land in the output.
        await app.renderer.wait_for_cpr_responses()
    if not app.is_running or app.is_done:
        write()
        return
    app.renderer.erase()
    try:
        write()
    finally:
        app.renderer.reset()
        app._request_absolute_cursor_position()
        app._redraw()


def _weight(block: Block) -> int:
    """Roughly how much text ``block`` renders."""
    if isinstance(block, ApprovalAsk):
        preview = block.event.preview
        return len(preview.diff or "") + len(preview.command or "")
    if isinstance(block, ToolLine):
        return len(block.diff) + len(block.output)
    if isinstance(block, Listing):
        return sum(map(len, block.lines))
    return len(getattr(block, "text", ""))


def _render_all(blocks: list[Block], width: int) -> str:
    return "".join(_render_safely(block, width) for block in blocks)


def _render_safely(block: Block, width: int) -> str:
    try:
        return render(block, width)
    except Exception as exc:  # a rendering bug must not take the terminal down
        return f"(this {type(block).__name__} could not be shown: {exc!r})\n"
