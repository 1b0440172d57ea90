"""Printing above the prompt in a real pseudo-terminal: keys typed meanwhile stay keys."""

from __future__ import annotations

import asyncio
import os
import pty
import termios
from collections.abc import Iterator

import pytest
from prompt_toolkit.application import Application
from prompt_toolkit.data_structures import Size
from prompt_toolkit.input.vt100 import Vt100Input
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
from prompt_toolkit.layout import Layout
from prompt_toolkit.layout.containers import Window
from prompt_toolkit.layout.controls import FormattedTextControl
from prompt_toolkit.output.vt100 import Vt100_Output
from prompt_toolkit.styles import Style

from kfd_repl.blocks import Note
from kfd_repl.printer import Printer


@pytest.fixture
def terminal() -> Iterator[tuple[int, int]]:
    """A pseudo-terminal: (the terminal's side, the program's side)."""
    master, slave = pty.openpty()
    yield master, slave
    os.close(master)
    os.close(slave)


async def test_an_enter_typed_while_a_block_prints_is_an_enter_and_not_a_new_line(
    terminal: tuple[int, int],
) -> None:
    master, slave = terminal
    program_in = os.fdopen(os.dup(slave), "r", closefd=True)
    program_out = os.fdopen(os.dup(slave), "w", closefd=True)
    pressed: list[str] = []
    got_key = asyncio.Event()
    bindings = KeyBindings()

    @bindings.add("enter")
    def _enter(event: KeyPressEvent) -> None:
        pressed.append("enter")
        got_key.set()

    @bindings.add("c-j")
    def _newline(event: KeyPressEvent) -> None:
        pressed.append("c-j")
        got_key.set()

    app: Application[None] = Application(
        layout=Layout(Window(FormattedTextControl("› "))),
        key_bindings=bindings,
        input=Vt100Input(program_in),
        output=Vt100_Output(program_out, lambda: Size(rows=24, columns=80), enable_cpr=False),
    )
    modes: list[int] = []

    def type_enter_while_printing() -> None:
        # What the terminal does with a key depends on its mode at that moment.
        modes.append(termios.tcgetattr(slave)[3] & termios.ICANON)
        os.write(master, b"\r")

    printer = Printer(app, Style([]), on_printed=type_enter_while_printing)
    loop = asyncio.get_running_loop()
    loop.add_reader(master, os.read, master, 65536)  # the screen: read and dropped
    drawn = asyncio.Event()
    app.after_render += lambda _: drawn.set()
    running = asyncio.create_task(app.run_async())
    try:
        async with asyncio.timeout(10):
            await drawn.wait()  # the prompt is up
            printer.show(Note("a block printed above the prompt"))
            await printer.drain()
            await got_key.wait()
        assert modes == [0], "the terminal left raw mode while printing"
        assert pressed == ["enter"]
    finally:
        app.exit()
        await asyncio.gather(running, return_exceptions=True)
        loop.remove_reader(master)
        program_in.close()
        program_out.close()
