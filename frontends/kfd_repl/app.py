"""The REPL: one prompt-toolkit application attached to one session at a time.

Events flow one way: the `Attachment` yields them, `SessionView` turns them
into blocks and state, the `Printer` prints the blocks above the prompt and
the live area redraws from the state. Input flows the other way: a message
goes to the daemon and comes back as an event like everyone else's, so every
attached terminal shows the same transcript.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import signal
import time
from collections.abc import Callable, Coroutine, Iterable
from pathlib import Path
from typing import Any

from prompt_toolkit.application import Application
from prompt_toolkit.buffer import Buffer
from prompt_toolkit.completion import ThreadedCompleter
from prompt_toolkit.filters import Condition
from prompt_toolkit.formatted_text import StyleAndTextTuples
from prompt_toolkit.history import History, InMemoryHistory
from prompt_toolkit.layout import (
    ConditionalContainer,
    Float,
    FloatContainer,
    HSplit,
    Layout,
    Window,
)
from prompt_toolkit.layout.controls import BufferControl, FormattedTextControl
from prompt_toolkit.layout.dimension import Dimension
from prompt_toolkit.layout.menus import CompletionsMenu
from prompt_toolkit.layout.processors import BeforeInput
from prompt_toolkit.styles import Style
from prompt_toolkit.widgets import SearchToolbar

from kfd import protocol as p
from kfd.client import Attachment, Client, ClientError, RequestFailed, drift_message
from kfd_repl import commands, focus, live
from kfd_repl.blocks import Block, Header, Note
from kfd_repl.completion import ReplCompleter
from kfd_repl.keys import key_bindings
from kfd_repl.live import ApprovalKeys
from kfd_repl.printer import Printer
from kfd_repl.rewind import PendingUndo
from kfd_repl.view import Me, SessionView

HISTORY_TAIL = 400
"""Events replayed when attaching; older history is summarised as "not shown"."""

MESSAGE_LIMIT = p.MAX_REQUEST_BYTES - 64 * 1024
"""Bytes of one message: the daemon drops larger requests (and the connection)."""

ANIMATION_S = 0.2
"""Redraw interval of the live area while a turn runs."""

DOUBLE_PRESS_S = 2.0
"""A second Ctrl-C on an idle prompt within this many seconds detaches."""

ANSWER_DELAY_S = 0.6
TYPING_GAP_S = 1.0
"""An approval that appears while the user is typing (a key less than
`TYPING_GAP_S` before it) takes no keys for `ANSWER_DELAY_S`: a word typed
on an empty line as the question pops up goes to the input, not to it."""

STYLE = Style.from_dict(
    {
        "prompt": "bold ansicyan",
        "continuation": "ansibrightblack",
        "toolbar": "reverse",
        "live.tool": "ansiyellow",
        "live.output": "ansibrightblack",
        "live.reasoning": "italic ansibrightblack",
        "live.queued": "ansimagenta",
        "live.tasks": "ansicyan",
        "live.status": "ansibrightblack",
        "live.warn": "bold ansiyellow",
        "live.hint": "ansibrightblack",
        "approval": "bold ansiyellow",
        "approval.keys": "bold",
        "approval.rule": "ansibrightblack",
        "deny": "ansired",
    }
)

_REFERENCE = re.compile(r"(?<!\S)@(\S+)")


class Repl:
    """A terminal attached to a session; `run` until the user detaches."""

    def __init__(
        self,
        client: Client,
        info: p.SessionInfo,
        *,
        cwd: str,
        history: History | None = None,
    ) -> None:
        self.client = client
        self.cwd = cwd
        self.me = Me(client.id, client.name)
        self.view = SessionView(self.me, info)
        self.denying = False
        self._denied_id = ""
        self.approval_focused = False
        """The user moved the focus to the open approval (Tab): its keys answer it."""
        self._approval_id = ""
        self._approval_since = 0.0
        self._last_key = float("-inf")
        """When the input last changed (typing, sending): the user is typing."""
        self.hint = ""
        self._hint_until = 0.0
        self._last_interrupt = 0.0
        self._answered: set[str] = set()
        self._session_ids: list[str] = []
        self._attachment: Attachment | None = None
        self._follower: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._changed = asyncio.Event()
        self.focused = True
        """Whether the terminal has the user's focus (as far as it reports)."""
        focus.register_sequences()

        self.custom_commands: dict[str, p.CommandInfo] = {}
        """The custom commands of this session's workspace (``/name``)."""
        self.commands_loaded = asyncio.Event()
        """Set once the custom commands were asked for (``/help`` and ``/name`` wait for it)."""
        self.pending_undo: PendingUndo | None = None
        """An undo that stopped at conflicts (``/undo overwrite|keep|merge`` answers it)."""
        completer = ReplCompleter(
            lambda: Path(self.view.info.cwd),
            lambda: self._session_ids,
            lambda: self.custom_commands,
        )
        self.input = Buffer(
            name="input",
            multiline=True,
            history=history or InMemoryHistory(),
            completer=ThreadedCompleter(completer),
            complete_while_typing=True,
        )
        self.deny_input = Buffer(name="deny", multiline=False)
        self.app: Application[int] = Application(
            layout=self._layout(),
            key_bindings=key_bindings(self),
            style=STYLE,
            erase_when_done=True,
            mouse_support=False,
        )
        self.app.after_render += lambda _: self._notify()
        self.input.on_text_changed += self._typed
        self.printer = Printer(self.app, STYLE, self._notify)

    # -- running ------------------------------------------------------------

    async def run(self) -> int:
        """Attach, take input until the user detaches; the exit status."""
        loop = asyncio.get_running_loop()
        await self.switch_to(self.view.info)
        drift = self.client.environment_drift
        if drift:  # a key or model set in this shell that the daemon does not use
            self.show(Note(drift_message(drift), "warn"))
        handled = []
        for signum in (signal.SIGTERM, signal.SIGHUP):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(signum, self.exit, 128 + signum)
                handled.append(signum)
        self.spawn(self._animate())
        self.spawn(self._notices())
        reporting = focus.supported()
        if reporting:
            self._write_raw(focus.REPORTING_ON)
        try:
            return await self.app.run_async() or 0
        finally:
            if reporting:
                self._write_raw(focus.REPORTING_OFF)
            for signum in handled:
                loop.remove_signal_handler(signum)
            await self._tell_focus(self.view.info.id, False)
            await self._detach()
            await self.printer.drain()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def exit(self, status: int = 0) -> None:
        """Leave the REPL (the session goes on in the daemon)."""
        if self.app.is_running and not self.app.is_done:
            self.app.exit(result=status)

    async def switch_to(self, info: p.SessionInfo) -> None:
        """Show ``info``'s session in this terminal from now on: history, then live."""
        attachment = await self.client.attach(info.id, tail=HISTORY_TAIL)
        await self._detach()
        if info.id != self.view.info.id:
            self.spawn(self._tell_focus(self.view.info.id, False))
        self.spawn(self._tell_focus(info.id, self.focused))
        snapshot = attachment.snapshot
        assert snapshot is not None
        self.end_deny()
        self.view = SessionView(self.me, snapshot.session)
        # The replay that follows holds the last HISTORY_TAIL events (seqs are dense).
        asked = self.view.load(snapshot, replayed_from=snapshot.seq - HISTORY_TAIL + 1)
        self.show(Header(snapshot.session, history_cut=snapshot.seq > HISTORY_TAIL), *asked)
        self._attachment = attachment
        self._follower = asyncio.create_task(self._follow(attachment))
        self.spawn(self.load_commands())

    async def load_commands(self) -> None:
        """Ask the daemon for this workspace's custom commands (for ``/name`` and Tab)."""
        self.commands_loaded.clear()
        try:
            await self._load_commands()
        finally:
            self.commands_loaded.set()

    async def _load_commands(self) -> None:
        try:
            listed = await self.client.commands(session_id=self.view.info.id)
        except RequestFailed as exc:  # an older daemon: no custom commands
            if exc.code != "bad_request":
                self.show(Note(f"custom commands: {exc.message}", "warn"))
            return
        self.custom_commands = {command.name: command for command in listed.commands}

    def set_focus(self, focused: bool) -> None:
        """The terminal gained or lost focus: tell the other frontends."""
        if focused != self.focused:
            self.focused = focused
            self.spawn(self._tell_focus(self.view.info.id, focused))

    async def _tell_focus(self, session: str, focused: bool) -> None:
        request = focus.request(session, focused)
        if request is None or not self.view.connected:
            return
        # Best effort: an older daemon, or one that is away, just misses a hint.
        with contextlib.suppress(ClientError):
            await self.client.request(request, timeout=2.0)

    def _write_raw(self, sequence: str) -> None:
        self.app.output.write_raw(sequence)
        self.app.output.flush()

    async def _detach(self) -> None:
        follower, self._follower = self._follower, None
        if follower is not None:
            follower.cancel()
            await asyncio.gather(follower, return_exceptions=True)
        attachment, self._attachment = self._attachment, None
        if attachment is not None:
            await attachment.close()

    async def _follow(self, attachment: Attachment) -> None:
        while True:
            try:
                async for item in attachment:
                    self._apply(item)
                    if isinstance(item, p.TrustChanged):  # project commands come or go
                        self.spawn(self.load_commands())
                return
            except Exception as exc:  # the client's errors, or a bug: never stop following
                self.show(Note(f"lost track of the session ({exc!r}); attaching again", "warn"))
                attachment = await self._reattach(attachment)

    async def _reattach(self, old: Attachment) -> Attachment:
        await old.close()
        while True:
            try:
                attachment = await self.client.attach(self.view.info.id, since_seq=old.last_seq)
            except ClientError:
                await asyncio.sleep(1.0)
                continue
            self._attachment = attachment
            return attachment

    async def _notices(self) -> None:
        """Daemon-wide news that concerns this terminal: the config reloaded or broken."""
        async with await self.client.notices() as notices:
            async for event in notices:
                if isinstance(event, p.ConfigInvalid):
                    self.show(Note(f"config not reloaded: {event.message}", "error"))
                elif isinstance(event, p.ConfigReloaded):
                    changed = "; ".join([*event.applied, *event.not_applied]) or "fixed"
                    self.show(Note(f"config reloaded: {changed}"))
                else:
                    continue
                self.app.invalidate()

    async def _animate(self) -> None:
        # Spinners and elapsed times move only while something runs; an idle
        # REPL does not redraw (a huge draft would make every redraw costly).
        while True:
            await asyncio.sleep(ANIMATION_S)
            if self.view.busy or not self.view.connected or time.monotonic() < self._hint_until:
                self.app.invalidate()

    def _apply(self, item: Any) -> None:
        try:
            blocks = self.view.apply(item)
        except Exception as exc:  # one odd event must not end the REPL
            blocks = [Note(f"could not show an event: {exc!r}", "error")]
        self.show(*blocks)
        approval = self.view.approval
        if self.denying and (approval is None or approval.approval_id != self._denied_id):
            self.end_deny()
        self.app.invalidate()
        self._notify()

    # -- output -------------------------------------------------------------

    def show(self, *blocks: Block) -> None:
        """Print blocks above the prompt."""
        self.printer.show(*blocks)

    def flash(self, hint: str, seconds: float = 2.5) -> None:
        """A short-lived line in the live area."""
        self.hint = hint
        self._hint_until = time.monotonic() + seconds
        self.app.invalidate()

    def clear_screen(self) -> None:
        self.app.renderer.clear()

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def wait_until(self, condition: Callable[[], bool], timeout: float = 10.0) -> None:
        """Wait until ``condition()`` holds after an event or a print (for tests and scripts)."""
        async with asyncio.timeout(timeout):
            while not condition():
                await self._changed.wait()

    # -- input --------------------------------------------------------------

    def submit(self) -> None:
        """Enter: run the command, or send the message."""
        text = self.input.text
        if not text.strip():
            return
        if commands.is_command(text.strip()):
            self._take_input()
            self.spawn(commands.run(self, text.strip()))
            return
        if not self.view.connected:
            self.show(
                Note(
                    "not connected to the daemon; the message stays in the input: "
                    "press Enter again once it is back",
                    "warn",
                )
            )
            return
        size = len(text.encode("utf-8", "replace"))
        if size > MESSAGE_LIMIT:
            self.show(
                Note(
                    f"the message is too large ({size:,} bytes; at most {MESSAGE_LIMIT:,}): "
                    "put it in a file and mention it as @path",
                    "warn",
                )
            )
            return
        self._take_input()
        self.spawn(self._send(text))

    def _take_input(self) -> None:
        self.input.append_to_history()
        self.input.reset()

    async def _send(self, text: str) -> None:
        workspace = Path(self.view.info.cwd)
        missing = [ref for ref in self._references(text) if not (workspace / ref).exists()]
        try:
            await self.client.send(
                self.view.info.id, text, client_msg_id=f"repl.{secrets.token_hex(8)}"
            )
        except ClientError:
            if not self.input.text:
                self.input.text = text  # nothing typed since: give it back
            raise
        for ref in missing:
            self.show(Note(f"@{ref}: no such file in {self.view.info.cwd}", "warn"))

    @staticmethod
    def _references(text: str) -> list[str]:
        return [match.rstrip(",.;:!?)]'\"") for match in _REFERENCE.findall(text)]

    def cancel_turn(self) -> None:
        """Esc: cancel the running turn (the live area says so until it ends)."""
        if self.view.busy and not self.view.cancelling:
            self.view.cancelling = True
            self.spawn(self.client.cancel(self.view.info.id))
            self.app.invalidate()

    def interrupt(self) -> None:
        """Ctrl-C: cancel the turn; clear the input; twice on an idle prompt, detach."""
        if self.view.busy:
            self.cancel_turn()
            return
        if self.input.text:
            self.input.reset()
            return
        now = time.monotonic()
        if now - self._last_interrupt < DOUBLE_PRESS_S:
            self.exit()
            return
        self._last_interrupt = now
        self.flash("press Ctrl-C again to detach (the session goes on in the daemon)")

    async def set_mode(self, mode: p.Mode | None = None) -> None:
        """Set the permission mode, or move to the next one."""
        if mode is None:
            modes = p.MODES
            current = self.view.info.mode
            mode = modes[(modes.index(current) + 1) % len(modes)] if current in modes else modes[0]
        await self.client.set_mode(self.view.info.id, mode)

    def remember_sessions(self, listed: Iterable[p.SessionInfo]) -> None:
        """Session ids offered by /attach completion."""
        self._session_ids = [info.id for info in listed]

    # -- approvals ----------------------------------------------------------

    def approval_keys(self) -> ApprovalKeys | None:
        """Where keys go while an approval is open (None: no approval, or a
        denial's reason is being typed). See `kfd_repl.live.ApprovalKeys`."""
        approval = self.view.approval
        if approval is None or self.denying:
            return None
        if approval.approval_id != self._approval_id:
            # A new question: the focus starts on the input again.
            self._approval_id = approval.approval_id
            self._approval_since = time.monotonic()
            self.approval_focused = False
        if self.approval_focused:
            return "focused"
        if self.input.text:
            return "draft"
        typing = self._approval_since - self._last_key < TYPING_GAP_S
        if typing and time.monotonic() - self._approval_since < ANSWER_DELAY_S:
            return "arming"
        return "answer"

    def focus_approval(self, focused: bool) -> None:
        """Move the keys to the open approval (Tab) or back to the input."""
        self.approval_focused = focused and self.view.approval is not None
        self.app.invalidate()

    def type_into_input(self, data: str) -> None:
        """A key the approval does not take: it goes to the input (nothing typed is lost)."""
        self.approval_focused = False
        self.input.insert_text(data)

    def _typed(self, _: object) -> None:
        self._last_key = time.monotonic()

    def answer(self, decision: p.ApprovalDecision, message: str = "") -> None:
        approval = self.view.approval
        if approval is None or approval.approval_id in self._answered:
            return
        self._answered.add(approval.approval_id)
        self.spawn(self._respond(approval, decision, message))

    async def _respond(
        self, approval: p.ApprovalRequested, decision: p.ApprovalDecision, message: str
    ) -> None:
        try:
            await self.client.respond(approval.session, approval.approval_id, decision, message)
        except RequestFailed as exc:
            if exc.code not in ("conflict", "not_found"):
                # Refused (say, "allow always" with no rule to keep): still open, answer again.
                self._answered.discard(approval.approval_id)
            self.show(Note(exc.message, "warn"))
        except ClientError:
            self._answered.discard(approval.approval_id)
            raise

    def start_deny(self) -> None:
        approval = self.view.approval
        if approval is None:
            return
        self.denying = True
        self._denied_id = approval.approval_id
        self.deny_input.reset()
        self.app.layout.focus(self.deny_input)

    def finish_deny(self) -> None:
        message = self.deny_input.text.strip()
        self.end_deny()
        self.answer("deny", message)

    def end_deny(self) -> None:
        if not self.denying:
            return
        self.denying = False
        self.deny_input.reset()
        with contextlib.suppress(ValueError):
            self.app.layout.focus(self.input)

    # -- tasks --------------------------------------------------------------

    def spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        """Run ``work`` in the background; its failures become notes."""

        async def guarded() -> None:
            try:
                await work
            except ClientError as exc:
                self.show(Note(_client_error(exc), "error"))
            except Exception as exc:  # a bug in one command must not end the REPL
                self.show(Note(f"internal error in the REPL: {exc!r}", "error"))

        task = asyncio.create_task(guarded())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- layout -------------------------------------------------------------

    def _width(self) -> int:
        return self.app.output.get_size().columns

    def _live(self) -> StyleAndTextTuples:
        hint = self.hint if time.monotonic() < self._hint_until else ""
        return live.live_area(self.view, self._width(), hint)

    def _layout(self) -> Layout:
        answering = Condition(lambda: self.view.approval is not None and not self.denying)
        denying = Condition(lambda: self.denying)
        search = SearchToolbar()
        prompt = Window(
            BufferControl(self.input, search_buffer_control=search.control),
            get_line_prefix=_prefix,
            wrap_lines=True,
            dont_extend_height=True,
            height=Dimension(min=1),
        )
        deny = Window(
            BufferControl(
                self.deny_input,
                input_processors=[
                    BeforeInput("deny · why, for the model (optional; Esc: back) › ", "class:deny")
                ],
            ),
            height=1,
        )
        body = HSplit(
            [
                ConditionalContainer(
                    Window(FormattedTextControl(self._live), dont_extend_height=True),
                    filter=Condition(lambda: bool(self._live())),
                ),
                ConditionalContainer(
                    Window(
                        FormattedTextControl(
                            lambda: live.approval_prompt(
                                self.view, self._width(), self.approval_keys() or "answer"
                            )
                        ),
                        dont_extend_height=True,
                    ),
                    filter=answering,
                ),
                ConditionalContainer(deny, filter=denying),
                prompt,
                search,
                Window(
                    FormattedTextControl(lambda: live.toolbar(self.view, self._width())),
                    height=1,
                ),
            ]
        )
        menu = Float(xcursor=True, ycursor=True, content=CompletionsMenu(max_height=10))
        return Layout(FloatContainer(body, floats=[menu]), focused_element=prompt)


def _prefix(line: int, wrap_count: int) -> StyleAndTextTuples:
    if line == 0 and wrap_count == 0:
        return [("class:prompt", "› ")]
    return [("class:continuation", "  ")]


def _client_error(exc: ClientError) -> str:
    if isinstance(exc, RequestFailed):
        return exc.message
    return str(exc)
