"""Sessions <-> chat rooms: the bridge's logic, the same for every service.

Incoming (this module): a batch from the adapter is handled item by item
(allow-list, invitations, encrypted rooms, commands, approval answers,
messages), then its cursor is stored. Every message goes to the daemon with a
``client_msg_id`` derived from the chat message's id, so a batch handled
twice (a crash before the cursor was stored) starts no second turn.

Outgoing: every session's events, exactly once and in order, shown by
`kfd_chat.outgoing`; the seq of each session is stored once what it shows
is posted.

The daemons are a `kfd.client.DaemonSet`, passed in: one, this machine's,
or several (``kfd chat matrix --remote A --remote B``). A remote daemon's
sessions are ``host/session`` everywhere in the bridge (its state file
too), and every request goes to the daemon the session belongs to, so an
approval is answered where it was asked. ``!new @host`` starts a session on
that daemon; without one, on the first daemon given.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import msgspec

from kfd import protocol as p
from kfd.client import (
    ConnectionLost,
    ConnectionRestored,
    DaemonSet,
    DaemonUnavailable,
    Followed,
    FollowItem,
    RequestFailed,
    qualify,
    split,
)
from kfd.client.exact import visible
from kfd_chat import answers, render, undo
from kfd_chat.adapter import Adapter, AdapterError, Incoming
from kfd_chat.outgoing import FRONTEND_NAME, Outgoing
from kfd_chat.poster import Place, Poster
from kfd_chat.state import Posted, StateFile

log = logging.getLogger("kfd_chat")

__all__ = ["FRONTEND_NAME", "Access", "Bridge"]

ENCRYPTED_REFUSAL = (
    "🔒 This room is end-to-end encrypted, and kfd's bridge cannot read or write "
    "encrypted messages: it will not act on anything said here, nor post a session's "
    "output here. Talk to it in an unencrypted room (encryption cannot be turned off "
    "in a room once on)."
)


@dataclass(slots=True)
class Access:
    """Who and where: the allow-list and the rooms served."""

    rooms: set[str]
    allow: set[str]
    notify_room: str = ""
    workspace: str = ""
    mode: p.Mode = "default"
    tool_linger_s: float = 2.0
    joined: set[str] = field(default_factory=set)
    """Rooms joined on an allow-listed user's invitation (from the state file)."""

    def serves(self, room: str) -> bool:
        return room in self.rooms or room in self.joined or room == self.notify_room


class Bridge:
    """One adapter, one daemon."""

    def __init__(
        self, adapter: Adapter, daemons: DaemonSet, store: StateFile, access: Access
    ) -> None:
        self.adapter = adapter
        self.daemons = daemons
        self.store = store
        self.state = store.state
        self.access = access
        access.joined |= set(self.state.joined)
        self.poster = Poster(adapter, store)
        self.outgoing = Outgoing(
            self.poster,
            edit_interval_s=adapter.edit_interval_s,
            tool_linger_s=access.tool_linger_s,
            notify_room=access.notify_room,
        )
        self._undos: dict[str, undo.Pending] = {}
        """Undos that stopped at conflicts, by session (``!undo overwrite|keep|merge``)."""

    async def run(self) -> None:
        # Following first: nothing a session shows after "bridging" is missed.
        followed = await self.daemons.follow(since=dict(self.state.cursors))
        try:
            await self.adapter.start(self.state.chat_cursor, set(self.access.rooms))
            log.info("bridging %s rooms %s", self.adapter.name, sorted(self.access.rooms))
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self._incoming())
                tasks.create_task(self.follow(item async for _, item in followed))
        finally:
            await followed.close()
            await self.outgoing.close()

    # -- chat -> kfd -----------------------------------------------------------

    async def _incoming(self) -> None:
        async for batch in self.adapter.batches():
            for item in batch.items:
                try:
                    await self.handle(item)
                except RequestFailed as exc:
                    await self._say(item, f"⚠ {visible(exc.message)}")
                except DaemonUnavailable as exc:  # a daemon of another host is away
                    log.warning("%s", exc)
                    await self._say(item, f"⚠ {visible(str(exc))}; say it again once it is back")
            if batch.cursor is not None:
                self.state.chat_cursor = batch.cursor
            await self.poster.save()

    async def handle(self, item: Incoming) -> None:
        """One incoming message, reaction, invitation or room notice."""
        if self.store.seen(item.id):
            return
        match item.kind:
            case "invite":
                await self._invited(item)
                return
            case "unjoined":
                log.warning(
                    "room %s of [chat.%s] rooms is not joined (%s): invite %s to it "
                    "(the bridge accepts invitations from allow-listed users)",
                    item.room,
                    self.adapter.name,
                    item.detail,
                    getattr(self.adapter, "bot", "the bot"),
                )
                return
            case "encrypted":
                if self.access.serves(item.room):
                    await self._refuse_encrypted(item.room)
                return
        access = self.access
        if not access.serves(item.room):
            log.info(
                "ignored %s in room %s: not a room of [chat.%s]",
                item.id,
                item.room,
                self.adapter.name,
            )
            return
        if item.room in self.state.refused:
            log.info("ignored %s in %s: %s", item.id, item.room, self.state.refused[item.room])
            return
        if item.sender not in access.allow:
            log.warning(
                "ignored a message from %s in %s: not on the allow-list", item.sender, item.room
            )
            return
        if item.kind == "reaction":
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
        client, sid = await self.daemons.route(session)
        await client.send(sid, text, client_msg_id=_client_msg_id(item.id))

    async def _invited(self, item: Incoming) -> None:
        if item.sender not in self.access.allow:
            log.warning(
                "declined an invitation to %s from %s: not on the allow-list",
                item.room,
                item.sender,
            )
            await self._quietly(self.adapter.leave(item.room))
            return
        try:
            await self.adapter.join(item.room)
        except AdapterError as exc:
            log.warning(
                "could not join %s on the invitation of %s: %s", item.room, item.sender, exc
            )
            return
        log.info("joined %s on the invitation of %s", item.room, item.sender)
        self.access.joined.add(item.room)
        if item.room not in self.state.joined:
            self.state.joined.append(item.room)
        if item.detail == "encrypted":
            await self._refuse_encrypted(item.room)
            return
        await self.poster.save()
        await self._say(
            item, f"👋 kfd is here. Talk to me and I pass it on to a session.\n{render.HELP}"
        )

    async def _refuse_encrypted(self, room: str) -> None:
        if room in self.state.refused:
            return
        log.error(
            "room %s is end-to-end encrypted: not serving it (%s)", room, "use an unencrypted room"
        )
        await self.poster.post(Place(room), ENCRYPTED_REFUSAL, f"refused.{room}")
        self.state.refused[room] = "end-to-end encrypted"
        await self.poster.save()

    async def _quietly(self, call: object) -> None:
        try:
            await call  # type: ignore[misc]
        except Exception as exc:
            log.info("%s", exc)

    async def _react(self, item: Incoming) -> None:
        posted = self.state.approvals.get(item.reply_to or "")
        if posted is None or posted.room != item.room:
            return
        decision = render.decision_of_reaction(item.reaction or "")
        if decision == "allow":
            await self._respond(item, posted, "allow", "")
        elif decision == "deny":
            await self._respond(item, posted, "deny", f"denied in chat by {item.sender}")

    async def _answer(self, item: Incoming, text: str) -> bool:
        """``allow`` / ``always`` / ``deny …``, bound to the approval the user
        was shown (`kfd_chat.answers`); False when ``text`` is no answer."""
        answer = answers.parse(text)
        if answer is None:
            return False
        await self.outgoing.approvals_posted()  # typed the moment one showed
        session = await self._session_for(item, create=False)
        bound = answers.bind(item, self.state.approvals.values(), session)
        if (
            isinstance(bound, answers.Bound)
            and bound.bare
            and not answers.newer(item.at, await self._posted_at(bound.posted))
        ):
            bound = answers.NotTaken(
                "it was not sent after the open approval was posted (a message delivered "
                "late, or one whose time the service did not say), so it cannot mean that one"
            )
        if isinstance(bound, answers.NotTaken):
            log.info("answer %s from %s not taken: %s", item.id, item.sender, bound.why)
            await self._say(item, answers.not_taken(answer, bound.why))
            return True
        posted = bound.posted
        if answer.decision == "allow_always" and not posted.rule:
            await self._say(item, _no_always(posted.asked))
            return True
        await self._respond(item, posted, answer.decision, answer.reason)
        return True

    async def _posted_at(self, posted: Posted) -> int:
        """When the service says the approval's message was posted (0: it cannot say)."""
        if not posted.at:
            try:
                posted.at = await self.adapter.sent_at(posted.room, posted.message)
            except AdapterError as exc:
                log.warning("could not tell when %s was posted: %s", posted.message, exc)
        return posted.at

    async def _respond(
        self, item: Incoming, posted: Posted, decision: p.ApprovalDecision, message: str
    ) -> None:
        if decision != "deny" and not posted.allowable:
            await self._say(
                item,
                "⚠ this command is too long to show in chat, so it cannot be allowed from here: "
                "answer it in a terminal (`kfd attach`), or reply `deny`.",
            )
            return
        before, posted.answered_by = posted.answered_by, item.sender
        try:
            # The daemon that asked answers (``host/session`` names a remote one).
            client, sid = await self.daemons.route(posted.session)
            await client.respond(sid, posted.approval_id, decision, message)
        except RequestFailed as exc:
            posted.answered_by = before  # someone answered first: they decided
            if exc.code not in ("conflict", "not_found"):
                raise
            log.info("approval %s: %s", posted.approval_id, exc.message)

    async def _command(self, item: Incoming, text: str) -> None:
        name, _, argument = text[1:].partition(" ")
        argument = argument.strip()
        session = await self._session_for(item, create=False)
        match name.lower():
            case "new":
                label, title = self._daemon_named(argument)
                if label is None:
                    hosts = ", ".join(f"@{name}" for name in self.daemons.labels if name)
                    await self._say(item, f"no daemon {argument.split()[0]!r} here: {hosts}")
                    return
                info = await self._create(label, title or f"chat {item.room}")
                self.state.rooms[_key(item.room, item.thread)] = info.id
                self.state.cursors[info.id] = 0
                await self.poster.save()
                await self._say(item, f"🆕 session {info.id} in {render.code(info.cwd)}")
            case "cancel" if session:
                client, sid = await self.daemons.route(session)
                info = await client.session(sid)
                if info.status in ("idle", "error"):
                    await self._say(item, "nothing is running: no turn to cancel")
                else:
                    await client.cancel(sid)
            case "mode" if session:
                if argument not in p.MODES:
                    await self._say(item, f"modes: {', '.join(p.MODES)}")
                    return
                client, sid = await self.daemons.route(session)
                info = await client.set_mode(sid, argument)
                await self._say(item, f"mode is now {info.mode}")
            case "cost" if session:
                await self._say(item, render.cost(await self._info(session)))
            case "status" if session:
                await self._say(item, render.status(await self._info(session)))
            case "trust" if session:
                await self._trust(item, session, argument)
            case "undo" if session:
                client, sid = await self.daemons.route(session)
                said, forked = await undo.undo(client, sid, argument, self._undos)
                if forked is not None:  # on the daemon of the session it forks
                    fork = qualify(split(session)[0], forked.id)
                    self.state.rooms[_key(item.room, item.thread)] = fork
                    self.state.cursors[fork] = 0
                    await self.poster.save()
                await self._say(item, said)
            case "cancel" | "mode" | "cost" | "status" | "trust" | "undo":
                await self._say(item, "no session here yet: say something or `!new`")
            case _:
                if not await self._custom(item, session, name, argument):
                    await self._say(item, render.HELP)

    async def _custom(self, item: Incoming, session: str | None, name: str, argument: str) -> bool:
        """Run ``!name ARGS`` as the custom command ``name``; False if there is none."""
        if session is None:
            session = await self._session_for(item, create=True)
            assert session is not None
        client, sid = await self.daemons.route(session)  # the commands of its daemon
        listed = await client.commands(session_id=sid)
        if name not in {command.name for command in listed.commands}:
            return False
        await client.run_command(sid, name, argument, client_msg_id=_client_msg_id(item.id))
        return True

    async def _trust(self, item: Incoming, session: str, argument: str) -> None:
        """``!trust`` shows the project config; ``!trust yes`` trusts exactly what
        was shown (the content's hash), ``!trust revoke`` takes trust back."""
        client, sid = await self.daemons.route(session)
        cwd = (await client.session(sid)).cwd
        shown = self.outgoing.trust_shown
        if argument == "revoke":
            info = await client.set_trust(cwd, trusted=False)
            await self._say(item, f"🔒 {render.code(info.path)} is no longer trusted")
        elif argument == "yes" and session in shown:
            info = await client.set_trust(cwd, shown.pop(session))
            await self._say(item, f"🔓 trusted {render.code(info.path)} as shown")
        else:
            # Only what this lists can be trusted: !trust yes is armed here, never by
            # the trust question, which names what is ignored rather than all it grants.
            info = await client.trust(cwd)
            listing = render.trust(info)
            armed = bool(info.grants and not info.problem and not info.trusted)
            if not render.readable_whole(listing):
                armed = False  # as for a command too long to show: not from chat
                lines = listing.split("\n")
                listing = "\n".join(lines[: render.HEAD_LINES]) + (
                    f"\n… {len(lines) - render.HEAD_LINES} more lines, too long to read here "
                    "whole: trust it with `kfd trust` in a terminal"
                )
            first = "nothing trusted yet: read what it grants first\n" if armed and argument else ""
            await self._say(item, first + listing)
            if armed:  # once posted: what was not shown is never armed
                shown[session] = info.sha256

    async def _session_for(self, item: Incoming, *, create: bool) -> str | None:
        """The session of the room, or of the thread: a thread is a session of
        its own, answered in the thread."""
        key = _key(item.room, item.thread)
        session = self.state.rooms.get(key)
        if session is not None or not create:
            return session
        title = f"chat {item.room}" + (" (thread)" if item.thread else "")
        info = await self._create(self.daemons.labels[0], title)
        self.state.rooms[key] = info.id
        self.state.cursors[info.id] = 0
        await self.poster.save()
        return info.id

    def _daemon_named(self, argument: str) -> tuple[str | None, str]:
        """``!new @host title``: (the daemon's label, the title); the first daemon
        without ``@host``; (None, …) when no daemon has that name."""
        first, _, rest = argument.partition(" ")
        if not first.startswith("@"):
            return self.daemons.labels[0], argument
        name = first[1:]
        label = "" if name == "local" and "" in self.daemons.labels else name
        return (label if label in self.daemons.labels else None), rest.strip()

    async def _create(self, label: str, title: str) -> p.SessionInfo:
        """A new session on daemon ``label``, its id qualified; it works in the
        remote's ``workspace`` there, else in ``[chat] workspace``."""
        client = await self.daemons.client(label)
        remote = client.remote
        workspace = (remote.workspace if remote is not None else "") or self.access.workspace
        info = await client.create_session(workspace, title=title, mode=self.access.mode)
        return msgspec.structs.replace(info, id=qualify(label, info.id))

    async def _info(self, session: str) -> p.SessionInfo:
        """The session's info, its id as the bridge names it (``host/session``)."""
        client, sid = await self.daemons.route(session)
        info = await client.session(sid)
        return msgspec.structs.replace(info, id=session)

    async def _say(self, item: Incoming, text: str) -> None:
        await self.poster.post(Place(item.room, item.thread), text, f"re.{item.id}")

    # -- kfd -> chat -----------------------------------------------------------

    async def follow(self, items: AsyncIterator[FollowItem]) -> None:
        """Show every session's events, storing each session's seq."""
        async for item in items:
            match item:
                case Followed():
                    for approval in item.snapshot.pending_approvals:
                        await self.outgoing.on_event(approval)
                case ConnectionLost():
                    log.info("lost the daemon of %s; reconnecting", item.session)
                case ConnectionRestored():
                    log.info("the daemon of %s is back", item.session)
                case p.Event():
                    await self.outgoing.on_event(item)
                    await self._advance(item)

    async def _advance(self, event: p.Event) -> None:
        if event.ephemeral:
            return
        sid = event.session
        seq = event.seq
        held = self.outgoing.held(sid)
        if held is not None:
            seq = min(seq, held - 1)  # a tool batch not yet posted: replay it after a crash
        if seq > self.state.cursors.get(sid, 0):
            self.state.cursors[sid] = seq
            if self.outgoing.place(sid) is not None or self.access.notify_room:
                await self.poster.save()


def _no_always(rule: str) -> str:
    """Why `always` cannot answer an approval whose rule is ``rule``."""
    if rule:
        why = f"{render.code(rule)} is a one-off grant, never kept for the project"
    else:
        why = "this approval has no rule to keep (it is asked call by call)"
    return f"⚠ `always` cannot answer it: {why}. Reply `allow` or `deny [why]`."


def _key(room: str, thread: str | None) -> str:
    return f"{room}|{thread}" if thread else room


def _client_msg_id(chat_id: str) -> str:
    """A ``client_msg_id`` the daemon accepts, stable for one chat message."""
    return "chat." + hashlib.sha256(chat_id.encode()).hexdigest()[:40]
