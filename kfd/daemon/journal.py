"""The journal: durable before visible.

Every session event passes through here. Durable events are written to the
store in group commits (whatever queued up while the previous commit ran goes
into the next one), and only then published on the bus, in the order they were
emitted. Ephemeral events (streamed deltas) are never written; they are
published in order behind any durable event still on its way to disk, and
straight away when nothing is.

Observers (the ``kfd_event`` hook) see each event after it is published.

A write the disk refuses (full, failing) is retried with backoff by the store
until it succeeds: never dropped, since a dropped batch would leave a hole in
the numbered log. Meanwhile everything behind it waits in order, the sessions
pause at their next durable step, and `notice` reaches every frontend with
what is wrong (the daemon wires the store's trouble to it). At shutdown,
`unwritten` says exactly what never reached the disk.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import msgspec

from kfd.daemon.outbox import Delivery, Kind, kind_of
from kfd.protocol import Event, MessageDelta, SessionInfo, ToolOutput, event_type
from kfd.redact import redact_struct, scrub
from kfd.store.db import Batch, EventRow, MessageRow, Store

log = logging.getLogger(__name__)

encoder = msgspec.json.Encoder()

Publisher = Callable[[Delivery], None]
GlobalPublisher = Callable[[bytes, bytes], None]
Observer = Callable[[Event], None]

OFF_LOOP_CHARS = 32 * 1024
"""Events carrying more text than this are redacted and encoded off the event loop."""

MAX_WAITING_EPHEMERAL = 20_000
"""Streamed pieces kept in order behind a stuck write; later ones are dropped
(clients fill the gap from the snapshot once writes succeed again)."""

_BARRIER = Event(session="")
"""Marks a drain point in the queue; never published."""


@dataclass(slots=True)
class _Entry:
    topic: bytes
    body: bytes
    event: Event
    durable: bool
    future: asyncio.Future[None] | None = None
    sync: bool = False
    message: MessageRow | None = None
    session: SessionInfo | None = None
    tool_output: tuple[str, str, str] | None = None


@dataclass(slots=True)
class _Stats:
    commits: int = 0
    events: int = 0
    largest_batch: int = 0
    failures: list[str] = field(default_factory=list)


class Journal:
    """Orders, persists and publishes events. Run `run` as a task."""

    def __init__(
        self,
        store: Store,
        publish: Publisher,
        observe: Observer | None = None,
        commit_interval_s: float = 0.0,
        publish_global: GlobalPublisher | None = None,
    ) -> None:
        self._store = store
        self._publish = publish
        self._publish_global = publish_global
        self._observe = observe
        self._commit_interval_s = commit_interval_s
        self._queue: asyncio.Queue[_Entry] = asyncio.Queue()
        self._busy = False
        self._waiting_ephemeral = 0
        self._dropped_ephemeral = 0
        self.published: dict[str, int] = {}
        """The last durable seq published, per session."""
        self._writing: list[_Entry] = []
        self.stats = _Stats()

    def append(
        self,
        event: Event,
        *,
        session: SessionInfo | None = None,
        message: MessageRow | None = None,
        tool_output: tuple[str, str, str] | None = None,
        sync: bool = False,
    ) -> asyncio.Future[None]:
        """Queue a durable event (seq already set); the future resolves once
        it is on disk and published, or fails if the write failed. ``sync``:
        its commit is synced to disk (``synchronous=FULL``).

        Secrets are taken out of all of it first (`kfd.redact`): what is kept
        and shown never holds them.
        """
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = _Entry(
            topic=event.session.encode(),
            body=b"",
            event=event,
            durable=True,
            future=future,
            message=message,
            session=session,
            tool_output=tool_output,
            sync=sync,
        )
        if _size_hint(entry) <= OFF_LOOP_CHARS:
            _prepare(entry)
        # else: redacted and encoded on a thread by the writer, in its turn
        self._queue.put_nowait(entry)
        return future

    def publish(self, event: Event) -> None:
        """Publish an ephemeral event, in order behind pending durable ones."""
        event = _redact_ephemeral(event)
        entry = _Entry(event.session.encode(), encoder.encode(event), event, durable=False)
        if not self._busy and self._queue.empty():
            self._send(entry)
        elif self._waiting_ephemeral < MAX_WAITING_EPHEMERAL:
            self._waiting_ephemeral += 1
            self._queue.put_nowait(entry)
        else:
            self._dropped_ephemeral += 1

    def publish_global(self, topic: bytes, event: Event) -> None:
        """Publish a daemon-wide event (not logged) on ``topic``."""
        if self._publish_global is not None:
            self._publish_global(topic, encoder.encode(redact_struct(event)))

    def notice(self, event: Event, sessions: list[str]) -> None:
        """Publish an ephemeral ``event`` on each of ``sessions`` at once, ahead
        of anything queued (it tells about the queue being stuck). Its seq is the
        last one each session published, so clients place it without a gap."""
        for session in sessions:
            copy = msgspec.structs.replace(
                event, session=session, seq=self.published.get(session, 0), ephemeral=True
            )
            body = encoder.encode(copy)
            self._publish(Delivery(session.encode(), body, copy.seq, Kind.LIFECYCLE))

    def unwritten(self) -> list[str]:
        """The durable events not on disk yet, per session: ``session seq a..b (n events)``."""
        spans: dict[str, list[int]] = {}
        for entry in [*self._writing, *list(self._queue._queue)]:  # type: ignore[attr-defined]
            if entry.durable and entry.event is not _BARRIER:
                spans.setdefault(entry.event.session, []).append(entry.event.seq)
        return [
            f"session {session} events {min(seqs)}..{max(seqs)} ({len(seqs)} events)"
            for session, seqs in spans.items()
        ]

    async def run(self) -> None:
        while True:
            first = await self._queue.get()
            self._busy = True
            try:
                if self._commit_interval_s and first.durable:
                    await asyncio.sleep(self._commit_interval_s)
                entries = [first]
                while not self._queue.empty():
                    entries.append(self._queue.get_nowait())
                self._writing = entries
                self._waiting_ephemeral = 0
                await self._commit(entries)
            finally:
                self._writing = []
                self._busy = False

    async def drain(self) -> None:
        """Wait until everything queued so far is written and published."""
        if self._queue.empty() and not self._busy:
            return
        barrier: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Entry(b"", b"", _BARRIER, durable=False, future=barrier))
        await barrier

    async def _commit(self, entries: list[_Entry]) -> None:
        durable = [e for e in entries if e.durable]
        large = [e for e in durable if not e.body]
        if large:
            # Redacting and encoding megabytes of tool output is CPU work that
            # would stall every other session: off the event loop.
            await asyncio.to_thread(_prepare_all, large)
        if durable:
            sessions: dict[str, SessionInfo] = {}
            for e in durable:
                if e.session is not None:
                    sessions[e.session.id] = e.session
            batch = Batch(
                events=[
                    EventRow(e.event.session, e.event.seq, event_type(e.event), e.event.ts, e.body)
                    for e in durable
                ],
                messages=[e.message for e in durable if e.message is not None],
                sessions=list(sessions.values()),
                tool_outputs=[e.tool_output for e in durable if e.tool_output is not None],
            )
            try:
                # Retried while the disk is in trouble (full, failing, locked):
                # a dropped batch would leave a hole in the numbered log.
                await self._store.commit(batch, durable=any(e.sync for e in durable), retry=True)
            except Exception as exc:
                # Not on disk, so never shown: fail the emitters, publish nothing
                # durable; the sessions end their turns with an error.
                log.exception("journal commit of %d events failed", len(durable))
                self.stats.failures.append(str(exc))
                for e in durable:
                    if e.future is not None and not e.future.done():
                        e.future.set_exception(exc)
                for e in entries:
                    if not e.durable:
                        self._send(e)
                        if e.future is not None and not e.future.done():
                            e.future.set_result(None)
                return
            self.stats.commits += 1
            self.stats.events += len(durable)
            self.stats.largest_batch = max(self.stats.largest_batch, len(durable))
        for e in entries:
            self._send(e)
            if e.future is not None and not e.future.done():
                e.future.set_result(None)

    def _send(self, entry: _Entry) -> None:
        if entry.event is _BARRIER:
            return
        event = entry.event
        if entry.durable:
            self.published[event.session] = event.seq
        self._publish(
            Delivery(
                entry.topic, entry.body, event.seq, kind_of(event_type(event), not entry.durable)
            )
        )
        if self._observe is not None:
            try:
                self._observe(entry.event)
            except Exception:
                log.exception("an event observer failed on %s", event_type(entry.event))


def _redact_ephemeral(event: Event) -> Event:
    """`redact_struct`, with a fast path for the streamed pieces (thousands a
    second): only their text can carry a secret, the rest is kfd's own ids."""
    if isinstance(event, MessageDelta):
        event.text = scrub(event.text)
        return event
    if isinstance(event, ToolOutput):
        event.data = scrub(event.data)
        return event
    return redact_struct(event)


def _size_hint(entry: _Entry) -> int:
    """Roughly how much text an entry carries (without encoding it)."""
    event = entry.event
    size = len(getattr(event, "output", "") or "") + len(getattr(event, "text", "") or "")
    if entry.tool_output is not None:
        size += len(entry.tool_output[2])
    if entry.message is not None:
        message = entry.message.message
        size += len(getattr(message, "content", "") or "") + len(getattr(message, "text", "") or "")
    return size


def _prepare_all(entries: list[_Entry]) -> None:
    for entry in entries:
        _prepare(entry)


def _prepare(entry: _Entry) -> None:
    """Take the secrets out of an entry and encode its event (any thread)."""
    entry.event = redact_struct(entry.event)
    if entry.session is not None:
        entry.session = redact_struct(entry.session)
    if entry.message is not None:
        entry.message = entry.message._replace(message=redact_struct(entry.message.message))
    if entry.tool_output is not None:
        call = entry.tool_output
        entry.tool_output = (call[0], call[1], scrub(call[2]))
    entry.body = encoder.encode(entry.event)
