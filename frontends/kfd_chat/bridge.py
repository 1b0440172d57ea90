"""Sessions <-> chat rooms: the bridge's logic, the same for every service.

Incoming: a batch from the adapter is handled item by item (allow-list,
commands, approval answers, messages), then its cursor is stored. Every
message goes to the daemon with a ``client_msg_id`` derived from the chat
message's id, so a batch handled twice (a crash before the cursor was
stored) starts no second turn.

Outgoing: every session's events, exactly once and in order (`Follower`),
resumed from the stored seq of each session. A post that fails for a
transient reason is retried until it goes through, so nothing is dropped.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from kfd import protocol as p
from kfd.client import Client, ConnectionLost, ConnectionRestored, Followed, RequestFailed
from kfd_chat import render
from kfd_chat.adapter import Adapter, AdapterError, Incoming, TransientError
from kfd_chat.state import Posted, StateFile

log = logging.getLogger("kfd_chat")

RETRY_MAX_S = 30.0
FRONTEND_NAME = "kfd-chat"
ALLOW_WORDS = frozenset({"allow", "approve", "yes"})


@dataclass(slots=True)
class Place:
    room: str
    thread: str | None = None


@dataclass(slots=True)
class _Stream:
    place: Place
    text: str = ""
    posted: str | None = None
    shown: str = ""
    last_edit: float = 0.0
    edits: int = 0
    flush: asyncio.Task[None] | None = None


@dataclass(slots=True)
class Access:
    """Who and where: the allow-list and the rooms served."""

    rooms: set[str]
    allow: set[str]
    notify_room: str = ""
    workspace: str = ""
    mode: p.Mode = "default"
    triggered: set[str] = field(default_factory=set)


class Bridge:
    """One adapter, one daemon."""

    def __init__(self, adapter: Adapter, client: Client, store: StateFile, access: Access) -> None:
        self.adapter = adapter
        self.client = client
        self.store = store
        self.state = store.state
        self.access = access
        self._streams: dict[str, _Stream] = {}
        self._pending: dict[str, dict[str, str]] = {}
        """session -> approval id -> message id, for approvals still open."""
        self._answers: dict[str, str] = {}
        self._trust_shown: dict[str, str] = {}
        """session -> the project config content (sha256) last shown for `!trust yes`."""

    async def run(self) -> None:
        async with await self.client.follow(since=dict(self.state.cursors)) as follower:
            await self.adapter.start(self.state.chat_cursor)
            log.info("bridging %s rooms %s", self.adapter.name, sorted(self.access.rooms))
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self._incoming())
                tasks.create_task(self._outgoing(follower))

    # -- chat -> kfd -----------------------------------------------------------

    async def _incoming(self) -> None:
        async for batch in self.adapter.batches():
            for item in batch.items:
                try:
                    await self.handle(item)
                except RequestFailed as exc:
                    await self._say(Place(item.room, item.thread), f"⚠ {exc.message}", item.id)
            if batch.cursor is not None:
                self.state.chat_cursor = batch.cursor
            await self._save()

    async def handle(self, item: Incoming) -> None:
        """One incoming message or reaction."""
        if self.store.seen(item.id):
            return
        access = self.access
        if item.room not in access.rooms and item.room != access.notify_room:
            log.info(
                "ignored %s in room %s: not a room of [chat.%s]",
                item.id,
                item.room,
                self.adapter.name,
            )
            return
        if item.sender not in access.allow:
            log.warning(
                "ignored a message from %s in %s: not on the allow-list", item.sender, item.room
            )
            return
        if item.reaction is not None:
            await self._react(item)
            return
        text = item.text.strip()
        if not text:
            return
        if text.startswith("!"):
            await self._command(item, text)
            return
        if await self._answer(item, text):
            return
        session = await self._session_for(item, create=True)
        assert session is not None
        await self.client.send(session, text, client_msg_id=_client_msg_id(item.id))

    async def _react(self, item: Incoming) -> None:
        posted = self.state.approvals.get(item.reply_to or "")
        if posted is None:
            return
        if item.reaction in render.ALLOW_REACTIONS:
            await self._respond(posted, "allow", "")
        elif item.reaction in render.DENY_REACTIONS:
            await self._respond(posted, "deny", f"denied in chat by {item.sender}")

    async def _answer(self, item: Incoming, text: str) -> bool:
        """``allow`` / ``always`` / ``deny …`` as a reply to an approval (or with one open)."""
        word, _, rest = text.partition(" ")
        word = word.lower()
        decision: p.ApprovalDecision
        if word == "always" or (word in ALLOW_WORDS and rest.strip().lower() == "always"):
            decision = "allow_always"
        elif word in ALLOW_WORDS:
            decision = "allow"
        elif word in ("deny", "no"):
            decision = "deny"
        else:
            return False
        posted = self.state.approvals.get(item.reply_to or "")
        if posted is None:
            session = await self._session_for(item, create=False)
            open_ones = self._pending.get(session or "", {})
            if len(open_ones) != 1:
                if open_ones:
                    await self._say(
                        Place(item.room, item.thread),
                        f"{len(open_ones)} approvals wait: reply to the one you mean",
                        item.id,
                    )
                    return True
                return False  # no approval open: it is just a message
            message = next(iter(open_ones.values()))
            posted = self.state.approvals[message]
        if decision == "allow_always" and not posted.rule:
            await self._say(Place(item.room, item.thread), _no_always(posted.asked), item.id)
            return True
        await self._respond(posted, decision, rest.strip() if decision == "deny" else "")
        return True

    async def _respond(self, posted: Posted, decision: p.ApprovalDecision, message: str) -> None:
        try:
            await self.client.respond(posted.session, posted.approval_id, decision, message)
        except RequestFailed as exc:
            if exc.code not in ("conflict", "not_found"):
                raise
            log.info("approval %s: %s", posted.approval_id, exc.message)

    async def _command(self, item: Incoming, text: str) -> None:
        name, _, argument = text[1:].partition(" ")
        argument = argument.strip()
        place = Place(item.room, item.thread)
        session = await self._session_for(item, create=False)
        match name.lower():
            case "new":
                info = await self.client.create_session(
                    self.access.workspace,
                    title=argument or f"chat {item.room}",
                    mode=self.access.mode,
                )
                self.state.rooms[_key(item.room, item.thread)] = info.id
                self.state.cursors[info.id] = 0
                await self._save()
                await self._say(place, f"🆕 session {info.id} in {info.cwd}", item.id)
            case "cancel" if session:
                await self.client.cancel(session)
            case "mode" if session:
                if argument not in p.MODES:
                    await self._say(place, f"modes: {', '.join(p.MODES)}", item.id)
                    return
                info = await self.client.set_mode(session, argument)
                await self._say(place, f"mode is now {info.mode}", item.id)
            case "cost" if session:
                await self._say(place, render.cost(await self.client.session(session)), item.id)
            case "status" if session:
                await self._say(place, render.status(await self.client.session(session)), item.id)
            case "trust" if session:
                await self._trust(session, argument, place, item.id)
            case "cancel" | "mode" | "cost" | "status" | "trust":
                await self._say(place, "no session here yet: say something or `!new`", item.id)
            case _:
                await self._say(place, render.HELP, item.id)

    async def _trust(self, session: str, argument: str, place: Place, key: str) -> None:
        """``!trust`` shows the project config; ``!trust yes`` trusts what was shown."""
        cwd = (await self.client.session(session)).cwd
        if argument == "revoke":
            info = await self.client.set_trust(cwd, trusted=False)
            await self._say(place, f"🔒 {info.path} is no longer trusted", key)
        elif argument == "yes" and session in self._trust_shown:
            info = await self.client.set_trust(cwd, self._trust_shown.pop(session))
            await self._say(place, f"🔓 trusted {info.path} as shown", key)
        else:
            info = await self.client.trust(cwd)
            if info.grants and not info.problem and not info.trusted:
                self._trust_shown[session] = info.sha256
            await self._say(place, render.trust(info), key)

    async def _session_for(self, item: Incoming, *, create: bool) -> str | None:
        rooms = self.state.rooms
        for key in (_key(item.room, item.thread), item.room):
            if key in rooms:
                return rooms[key]
        if not create:
            return None
        info = await self.client.create_session(
            self.access.workspace, title=f"chat {item.room}", mode=self.access.mode
        )
        rooms[_key(item.room, item.thread)] = info.id
        self.state.cursors[info.id] = 0
        await self._save()
        return info.id

    # -- kfd -> chat -----------------------------------------------------------

    async def _outgoing(self, follower: Any) -> None:
        async for item in follower:
            match item:
                case Followed():
                    for approval in item.snapshot.pending_approvals:
                        await self.on_event(approval, replay=True)
                case ConnectionLost():
                    log.info("lost the daemon; reconnecting")
                case ConnectionRestored():
                    log.info("the daemon is back")
                case p.Event():
                    await self.on_event(item)

    async def on_event(self, event: p.Event, *, replay: bool = False) -> None:
        """Show one event of a session where it belongs, then note its seq."""
        sid = event.session
        place = self._place(sid)
        if isinstance(event, p.TriggerFired):
            self.access.triggered.add(sid)
        if place is not None:
            await self._show(event, place)
        elif self.access.notify_room:
            await self._notify(event, Place(self.access.notify_room))
        if not event.ephemeral and not replay and event.seq > self.state.cursors.get(sid, 0):
            self.state.cursors[sid] = event.seq
            if place is not None or self.access.notify_room:
                await self._save()

    def _place(self, session: str) -> Place | None:
        for key, mapped in self.state.rooms.items():
            if mapped == session:
                room, _, thread = key.partition("|")
                return Place(room, thread or None)
        return None

    async def _show(self, event: p.Event, place: Place) -> None:
        sid = event.session
        key = f"{sid}.{event.seq}"
        match event:
            case p.MessageDelta(kind="text"):
                await self._delta(event, place)
            case p.MessageCompleted():
                await self._complete(sid, event.message_id, event.text, place)
            case p.MessageUser() if event.frontend is None or not event.frontend.name.startswith(
                FRONTEND_NAME
            ):
                who = event.frontend.name if event.frontend else "someone"
                await self._say(place, f"💬 {who}: {event.text[:1000]}", key)
            case p.ToolStarted():
                await self._say(place, render.tool_line(event), key)
            case p.ToolCompleted() if event.status not in ("ok", "denied"):
                await self._say(place, render.tool_failed(event), key)
            case p.ApprovalRequested():
                await self._ask(event, place)
            case p.ApprovalResolved():
                await self._resolved(event, place)
            case p.TurnCompleted():
                text = render.turn_end(event)
                if text:
                    await self._say(place, text, key)
            case p.ErrorEvent():
                await self._say(place, f"⚠ {event.message}", key)
            case p.BudgetWarning():
                await self._say(place, f"💸 {event.message or event.budget}", key)
            case p.TriggerFired():
                await self._say(place, render.trigger(event), key)
            case p.TrustRequired():
                if event.grants:
                    self._trust_shown[sid] = event.sha256
                await self._say(place, render.trust_required(event), key)
            case p.TrustChanged():
                who = event.by.name if event.by else "kfd"
                state = "trusted" if event.trusted else "no longer trusted"
                await self._say(place, f"🔐 {event.path} is {state} (by {who})", key)

    async def _notify(self, event: p.Event, place: Place) -> None:
        """A session no room maps to: only what needs the user goes to notify_room."""
        sid = event.session
        key = f"{sid}.{event.seq}"
        match event:
            case p.ApprovalRequested():
                await self._ask(event, place, prefix=f"[{sid}] ")
            case p.ApprovalResolved():
                await self._resolved(event, place)
            case p.TriggerFired():
                await self._say(place, f"[{sid}] {render.trigger(event)}", key)
            case p.ErrorEvent():
                await self._say(place, f"[{sid}] ⚠ {event.message}", key)
            case p.MessageCompleted() if sid in self.access.triggered and event.text:
                self._answers[sid] = event.text
            case p.TurnCompleted() if sid in self.access.triggered:
                self.access.triggered.discard(sid)
                answer = self._answers.pop(sid, "")
                if answer:
                    await self._say(place, f"[{sid}] {answer[:3000]}", key)

    async def _ask(self, event: p.ApprovalRequested, place: Place, prefix: str = "") -> None:
        open_ones = self._pending.setdefault(event.session, {})
        if event.approval_id in open_ones:
            return
        text = prefix + render.approval(event)
        message = await self._post(place, text, f"{event.session}.{event.approval_id}")
        open_ones[event.approval_id] = message
        self.state.approvals[message] = Posted(
            event.session,
            event.approval_id,
            place.room,
            message,
            event.session_rule if render.offers_always(event) else "",
            event.session_rule,
        )
        await self._save()

    async def _resolved(self, event: p.ApprovalResolved, place: Place) -> None:
        message = self._pending.get(event.session, {}).pop(event.approval_id, None)
        if message is None:
            return
        self.state.approvals.pop(message, None)
        await self._edit(place, message, render.resolved(event, "approval"), f"{message}.done")

    async def _delta(self, event: p.MessageDelta, place: Place) -> None:
        stream = self._streams.get(event.message_id)
        if stream is None:
            stream = self._streams[event.message_id] = _Stream(place)
        stream.text += event.text
        if stream.posted is None:
            if stream.text.strip():
                stream.shown = stream.text
                stream.last_edit = time.monotonic()
                stream.posted = await self._post(
                    place, stream.text, f"{event.session}.{event.message_id}"
                )
        elif stream.flush is None:
            stream.flush = asyncio.create_task(self._flush_later(stream, event.message_id))

    async def _flush_later(self, stream: _Stream, message_id: str) -> None:
        """Edit the streamed message no more often than the service allows."""
        wait = stream.last_edit + self.adapter.edit_interval_s - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        stream.flush = None
        if stream.posted is not None and stream.text != stream.shown:
            await self._edit_stream(stream, message_id)

    async def _edit_stream(self, stream: _Stream, message_id: str) -> None:
        assert stream.posted is not None
        text = stream.text
        stream.edits += 1
        stream.last_edit = time.monotonic()
        await self._edit(stream.place, stream.posted, text, f"{message_id}.e{stream.edits}")
        stream.shown = text

    async def _complete(self, session: str, message_id: str, text: str, place: Place) -> None:
        stream = self._streams.pop(message_id, None)
        if stream is None or stream.posted is None:
            if text.strip():
                await self._post(place, text, f"{session}.{message_id}")
            return
        if stream.flush is not None:
            stream.flush.cancel()
            stream.flush = None
        stream.text = text
        if text != stream.shown:
            wait = stream.last_edit + self.adapter.edit_interval_s - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            await self._edit_stream(stream, message_id)

    # -- posting, with retries ------------------------------------------------

    async def _say(self, place: Place, text: str, key: str) -> None:
        await self._post(place, text, key)

    async def _post(self, place: Place, text: str, key: str) -> str:
        posted = await self._retrying(
            lambda: self.adapter.post(place.room, place.thread, text, key)
        )
        return str(posted or "")

    async def _edit(self, place: Place, message: str, text: str, key: str) -> None:
        await self._retrying(lambda: self.adapter.edit(place.room, message, text, key))

    async def _retrying(self, call: Any) -> Any:
        delay = 0.2
        while True:
            try:
                return await call()
            except TransientError as exc:
                log.warning("%s; retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
            except AdapterError as exc:
                log.error("%s: %s", self.adapter.name, exc)
                return ""

    async def _save(self) -> None:
        await asyncio.to_thread(self.store.save)


def _no_always(rule: str) -> str:
    """Why `always` cannot answer an approval whose rule is ``rule``."""
    if rule:
        why = f"`{rule}` is a one-off grant, never kept for the project"
    else:
        why = "this approval has no rule to keep (it is asked call by call)"
    return f"⚠ `always` cannot answer it: {why}. Reply `allow` or `deny [why]`."


def _key(room: str, thread: str | None) -> str:
    return f"{room}|{thread}" if thread else room


def _client_msg_id(chat_id: str) -> str:
    """A ``client_msg_id`` the daemon accepts, stable for one chat message."""
    return "chat." + hashlib.sha256(chat_id.encode()).hexdigest()[:40]
