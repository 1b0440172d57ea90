"""kfd -> chat: how each session's events appear where the session lives.

Every session's events arrive exactly once and in order (`kfd.client`'s
`Follower`), resumed after a restart from the seq stored for the session.
What they become:

- An answer streams into one message, edited no faster than the service
  allows. When the bridge died mid-answer, the completed answer (replayed
  from the session's log) is edited into the message posted before, found
  through the outbox: the cut-off text never stays.
- Tool calls are lines coalesced into one message while they come quickly
  (``tool_linger_s``), and whenever anything else is about to be posted to the
  same place: a turn with 14 tool calls is a few messages, not 14, and stays
  inside the homeserver's burst. The stored seq stays before a batch not yet
  posted, so a crash replays it instead of losing it.
- Approvals are posted with the whole command, exactly; once decided, the
  message keeps the question and says what was decided and by whom.
- A session no room maps to reports only what needs the user to
  ``notify_room``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field

from kfd import protocol as p
from kfd.client.exact import visible
from kfd_chat import render
from kfd_chat.poster import Place, Poster, digest
from kfd_chat.state import Posted

log = logging.getLogger("kfd_chat")

FRONTEND_NAME = "kfd-chat"
ANSWER_WAIT_S = 10.0
"""How long an answer waits for an approval still being posted (`Outgoing.approvals_posted`)."""


@dataclass(slots=True)
class _Stream:
    place: Place
    key: str
    text: str = ""
    posted: str | None = None
    shown: str = ""
    last_edit: float = 0.0
    flush: asyncio.Task[None] | None = None


@dataclass(slots=True)
class _Tools:
    place: Place
    session: str
    first_seq: int
    last_seq: int = 0
    lines: list[str] = field(default_factory=list)
    flush: asyncio.Task[None] | None = None


class Outgoing:
    """Shows session events in chat. ``places`` maps a session to its place."""

    def __init__(
        self,
        poster: Poster,
        *,
        edit_interval_s: float,
        tool_linger_s: float,
        notify_room: str = "",
    ) -> None:
        self.poster = poster
        self.state = poster.store.state
        self.edit_interval_s = edit_interval_s
        self.tool_linger_s = tool_linger_s
        self.notify_room = notify_room
        self.triggered: set[str] = set()
        self._streams: dict[str, _Stream] = {}
        self._tools: dict[str, _Tools] = {}
        self._answers: dict[str, str] = {}
        self.trust_shown: dict[str, str] = {}
        """session -> the project config content (sha256) whose every grant ``!trust``
        last listed: what ``!trust yes`` trusts (a trust question never sets it)."""
        self.config_shown: dict[str, dict[str, str]] = {}
        """Place (room and thread) -> config file path -> the problem shown there,
        until the file loads again."""
        self._lock = asyncio.Lock()
        """One writer at a time: what a session shows stays in order."""
        self._asking = 0
        self._asked = asyncio.Event()
        """Set while no approval is being posted (`approvals_posted`)."""
        self._asked.set()
        self._tasks: set[asyncio.Task[None]] = set()

    def place(self, session: str) -> Place | None:
        for key, mapped in self.state.rooms.items():
            if mapped == session:
                room, _, thread = key.partition("|")
                return Place(room, thread or None)
        return None

    def held(self, session: str) -> int | None:
        """The first seq of ``session`` not yet shown for sure (a tool batch waiting)."""
        batch = self._tools.get(session)
        return batch.first_seq if batch is not None else None

    async def on_event(self, event: p.Event) -> None:
        """Show one event where its session lives."""
        if isinstance(event, p.TriggerFired):
            self.triggered.add(event.session)
        place = self.place(event.session)
        async with self._lock:
            if place is not None:
                await self._show(event, place)
            elif self.notify_room:
                await self._notify(event, Place(self.notify_room))

    async def _show(self, event: p.Event, place: Place) -> None:
        sid = event.session
        key = f"{sid}.{event.seq}"
        match event:
            case p.ConfigInvalid() | p.ConfigReloaded():
                await self._config(event, place, key)
                return
            case p.MessageDelta(kind="text"):
                await self._delta(event, place)
                return
            case p.ToolStarted():
                self._tool_line(event, place, render.tool_line(event))
                return
            case p.ToolCompleted() if event.status not in ("ok", "denied"):
                self._tool_line(event, place, render.tool_failed(event))
                return
        if _posts(event) or (
            isinstance(event, p.MessageCompleted) and event.message_id in self._streams
        ):
            await self._flush_tools(sid)  # tool lines first: what a session shows stays in order
        match event:
            case p.MessageCompleted():
                await self._complete(event, place)
            case p.MessageDiscarded():
                await self._discarded(event)
            case p.MessageUser() if _posts(event):
                who = event.frontend.name if event.frontend else "someone"
                quoted = render.block(event.text[:1000])
                await self.poster.post(place, f"💬 {render.code(who)}:\n{quoted}", key)
            case p.ApprovalRequested():
                await self._ask(event, place)
            case p.ApprovalResolved():
                await self._resolved(event)
            case p.TurnCompleted():
                text = render.turn_end(event)
                if text:
                    await self.poster.post(place, text, key)
            case p.ErrorEvent():
                await self.poster.post(place, f"⚠ {visible(event.message)}", key)
            case p.BudgetWarning():
                await self.poster.post(place, f"💸 {event.message or event.budget}", key)
            case p.TriggerFired():
                await self.poster.post(place, render.trigger(event), key)
            case p.TrustRequired():
                # Not armed for !trust yes: the question does not list all trusting grants.
                await self.poster.post(place, render.trust_required(event), key)
            case p.TrustChanged():
                who = event.by.name if event.by else "kfd"
                state = "trusted" if event.trusted else "no longer trusted"
                await self.poster.post(
                    place, f"🔐 {render.code(event.path)} is {state} (by {visible(who)})", key
                )

    async def _config(
        self, event: p.ConfigInvalid | p.ConfigReloaded, place: Place, key: str
    ) -> None:
        """A config file that does not load, once per place (the daemon says so in
        each session it concerns, at every message), and that it loads again."""
        shown = self.config_shown.setdefault(f"{place.room}|{place.thread or ''}", {})
        if isinstance(event, p.ConfigInvalid):
            if shown.get(event.path) == event.message:
                return
            shown[event.path] = event.message
            text = render.config_error(event)
        elif shown.pop(event.path, None) is not None:
            text = render.config_reloaded(event)
        else:
            return
        await self._flush_tools(event.session)  # tool lines first, as for any post
        await self.poster.post(place, text, key)

    async def _notify(self, event: p.Event, place: Place) -> None:
        """A session no room maps to: only what needs the user goes to notify_room."""
        sid = event.session
        key = f"{sid}.{event.seq}"
        match event:
            case p.ConfigInvalid() | p.ConfigReloaded():
                await self._config(event, place, key)
            case p.ApprovalRequested():
                await self._ask(event, place, prefix=f"[{sid}] ")
            case p.ApprovalResolved():
                await self._resolved(event)
            case p.TriggerFired():
                await self.poster.post(place, f"[{sid}] {render.trigger(event)}", key)
            case p.ErrorEvent():
                await self.poster.post(place, f"[{sid}] ⚠ {visible(event.message)}", key)
            case p.MessageCompleted() if sid in self.triggered and event.text:
                self._answers[sid] = event.text
            case p.TurnCompleted() if sid in self.triggered:
                self.triggered.discard(sid)
                answer = self._answers.pop(sid, "")
                if answer:
                    await self.poster.post(place, render.triggered_answer(sid, answer), key)

    # -- approvals --------------------------------------------------------------

    async def approvals_posted(self, timeout: float = ANSWER_WAIT_S) -> None:
        """Return once no approval is being posted (or after ``timeout``).

        A user can answer an approval the moment it shows, before the service
        has told the bridge its message id: the answer waits for the post to be
        recorded rather than pass for a plain message.
        """
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._asked.wait()

    async def _ask(self, event: p.ApprovalRequested, place: Place, prefix: str = "") -> None:
        if self._approval(event.approval_id) is not None:
            return  # posted already (an attach snapshot repeats open approvals)
        self._asking += 1
        self._asked.clear()
        try:
            await self._post_approval(event, place, prefix)
        finally:
            self._asking -= 1
            if not self._asking:
                self._asked.set()

    async def _post_approval(self, event: p.ApprovalRequested, place: Place, prefix: str) -> None:
        message = await self.poster.post(
            place, prefix + render.approval(event), f"{event.session}.{event.approval_id}"
        )
        if not message:
            return
        fits = render.fits(event)
        self.state.approvals[message] = Posted(
            event.session,
            event.approval_id,
            place.room,
            message,
            event.session_rule if render.offers_always(event) else "",
            event.session_rule,
            question=prefix + (render.question(event) if fits else render.approval(event)),
            thread=place.thread,
            allowable=fits,
        )
        await self.poster.save()

    def _approval(self, approval_id: str) -> Posted | None:
        return next(
            (a for a in self.state.approvals.values() if a.approval_id == approval_id), None
        )

    async def _resolved(self, event: p.ApprovalResolved) -> None:
        posted = self._approval(event.approval_id)
        if posted is None:
            return
        del self.state.approvals[posted.message]
        by_bridge = event.by is not None and event.by.name.startswith(FRONTEND_NAME)
        if by_bridge and posted.answered_by:
            who = f"{posted.answered_by} (in chat)"
        else:
            who = event.by.name if event.by else "kfd"
        text = render.resolved(posted.question, event, who)
        await self.poster.edit(
            Place(posted.room, posted.thread), posted.message, text, f"{posted.message}.done"
        )
        await self.poster.save()

    # -- tool lines, coalesced -----------------------------------------------

    def _tool_line(self, event: p.Event, place: Place, line: str) -> None:
        batch = self._tools.get(event.session)
        if batch is None:
            batch = self._tools[event.session] = _Tools(place, event.session, event.seq)
            batch.flush = self._spawn(self._flush_tools_later(event.session))
        batch.lines.append(line)
        batch.last_seq = event.seq

    async def _flush_tools_later(self, session: str) -> None:
        await asyncio.sleep(self.tool_linger_s)
        async with self._lock:
            batch = self._tools.get(session)
            if batch is not None:
                batch.flush = None  # this very task: not to be cancelled by the flush
                await self._flush_tools(session)

    async def _flush_tools(self, session: str) -> None:
        batch = self._tools.pop(session, None)
        if batch is None:
            return
        if batch.flush is not None:
            batch.flush.cancel()
        key = f"{session}.tools.{batch.first_seq}-{batch.last_seq}"
        await self.poster.post(batch.place, "\n".join(batch.lines), key)

    async def flush(self) -> None:
        """Post every batch still waiting (the bridge is stopping)."""
        async with self._lock:
            for session in list(self._tools):
                await self._flush_tools(session)

    # -- streamed answers ---------------------------------------------------

    async def _delta(self, event: p.MessageDelta, place: Place) -> None:
        stream = self._streams.get(event.message_id)
        if stream is None:
            if event.offset > 0:
                return  # joined mid-answer: the completed message will show it whole
            key = f"{event.session}.{event.message_id}"
            stream = self._streams[event.message_id] = _Stream(place, key)
        elif event.offset != len(stream.text):
            return  # a piece missed: the completed message repairs it
        stream.text += event.text
        if stream.posted is None:
            if stream.text.strip():
                await self._flush_tools(event.session)
                stream.shown = stream.text
                stream.last_edit = time.monotonic()
                stream.posted = (
                    await self.poster.post(place, render.model_text(stream.text), stream.key)
                    or None
                )
        elif stream.flush is None:
            stream.flush = self._spawn(self._edit_later(stream))

    async def _edit_later(self, stream: _Stream) -> None:
        """Edit the streamed message no more often than the service allows."""
        wait = stream.last_edit + self.edit_interval_s - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        await self.poster.ready()
        async with self._lock:
            stream.flush = None
            if stream.posted is not None and stream.text != stream.shown:
                await self._edit_stream(stream, stream.text)

    async def _edit_stream(self, stream: _Stream, text: str) -> None:
        assert stream.posted is not None
        stream.last_edit = time.monotonic()
        quoted = render.model_text(text)
        await self.poster.edit(stream.place, stream.posted, quoted, stream.key)
        stream.shown = text
        record = self.poster.posted(stream.key)
        if record is not None:
            record.shown = digest(quoted)

    async def _complete(self, event: p.MessageCompleted, place: Place) -> None:
        stream = self._streams.pop(event.message_id, None)
        text = event.text
        if stream is not None and stream.flush is not None:
            stream.flush.cancel()
        if stream is not None and stream.posted is not None:
            if text != stream.shown:
                wait = stream.last_edit + self.edit_interval_s - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                await self._edit_stream(stream, text)
            return
        key = f"{event.session}.{event.message_id}"
        record = self.poster.posted(key)
        quoted = render.model_text(text)
        if record is None:
            if text.strip():
                await self.poster.post(place, quoted, key)
            return
        # Posted (or about to be) before the bridge stopped mid-answer: make it whole.
        message = await self.poster.post(place, quoted, key)
        if message and record.shown != digest(quoted):
            await self.poster.edit(place, message, quoted, key)
            record.shown = digest(quoted)
        log.info("completed an answer cut off by a restart (%s)", key)

    async def _discarded(self, event: p.MessageDiscarded) -> None:
        stream = self._streams.pop(event.message_id, None)
        if stream is None or stream.posted is None:
            return
        if stream.flush is not None:
            stream.flush.cancel()
        await self.poster.edit(stream.place, stream.posted, "⟳ (retrying the answer)", stream.key)

    def _spawn(self, coroutine: object) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coroutine)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def close(self) -> None:
        """Stop the timers (what they would post is replayed on the next start)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _posts(event: p.Event) -> bool:
    """Whether ``event`` makes a new message (so waiting tool lines go first)."""
    match event:
        case p.MessageCompleted():
            return bool(event.text.strip())
        case p.MessageUser():
            return event.frontend is None or not event.frontend.name.startswith(FRONTEND_NAME)
        case p.TurnCompleted():
            return render.turn_end(event) is not None
        case (
            p.ApprovalRequested()
            | p.ErrorEvent()
            | p.BudgetWarning()
            | p.TriggerFired()
            | p.TrustRequired()
            | p.TrustChanged()
        ):
            return True
    return False
