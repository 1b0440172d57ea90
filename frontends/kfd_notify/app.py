"""The notifier's loop: follow every session, show notices, answer clicks.

With ``--remote`` it follows the daemons named (``local`` for this
machine's) at once: a remote daemon's sessions are titled ``host/title``,
and a click answers the approval on the daemon that asked.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kfd import protocol as p
from kfd.client import (
    ConnectionLost,
    ConnectionRestored,
    DaemonSet,
    DaemonUnavailable,
    Followed,
    Remote,
    RequestFailed,
)
from kfd_notify.desktop import Desktop, Unavailable
from kfd_notify.notices import Notice, Notices
from kfd_notify.settings import NotifySettings, SettingsError, parse

log = logging.getLogger("kfd_notify")

CLOSED_EXPIRED = 1
CLOSED_UNDEFINED = 4
RESHOW_DELAY_S = 1.0


def run(settings: Mapping[str, Any], args: argparse.Namespace) -> int:
    """Entry point (group ``kfd.frontends``, name ``notify``): ``kfd notify``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("kfd notify: %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        parsed = parse(settings)
    except SettingsError as exc:
        print(f"kfd: {exc}", file=sys.stderr)
        return 2
    remotes: list[Remote | None] = getattr(args, "remotes", None) or [None]
    return asyncio.run(_main(parsed, remotes))


async def _main(settings: NotifySettings, remotes: list[Remote | None]) -> int:
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await Notifier(settings, remotes=remotes).run()
    return 0


class Notifier:
    """Follows every session of its daemons and shows desktop notifications."""

    def __init__(
        self,
        settings: NotifySettings,
        runtime_dir: Path | None = None,
        bus_address: str | None = None,
        remotes: list[Remote | None] | None = None,
    ) -> None:
        self.settings = settings
        self.runtime_dir = runtime_dir
        self.notices = Notices(settings)
        self.desktop = Desktop(self._on_action, self._on_closed, bus_address, self._on_server)
        self.daemons = DaemonSet(
            remotes or [None],
            "kfd-notify",
            runtime_dir=runtime_dir,
            retry_s=settings.retry_s,
            log=log,
        )
        self.pending: dict[str, Notice] = {}
        """Approvals waiting for an answer, by approval id (shown again on reconnect)."""
        self._shown: dict[str, int] = {}
        self._approval_of: dict[int, p.ApprovalRequested] = {}
        self._early_clicks: dict[int, str] = {}
        """Clicks whose signal overtook the reply to Notify (which carries the id)."""
        self._early_closes: dict[int, int] = {}
        """Likewise, closes: notification id -> reason."""
        self._showing: set[str] = set()
        """Approvals whose Notify call is on its way (shown once, whoever asks)."""
        self._focus: dict[str, set[str]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._desktop_ready = asyncio.Event()
        self._wake = asyncio.Event()
        """Set when the notification server changed: look again now."""

    async def run(self) -> None:
        keeper = asyncio.create_task(self._keep_desktop())
        try:
            async with await self.daemons.follow() as followed:
                async for _daemon, item in followed:
                    await self._on_item(item)
        finally:
            keeper.cancel()
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(keeper, *self._tasks, return_exceptions=True)
            await self.daemons.close()
            self.desktop.close()

    async def _keep_desktop(self) -> None:
        """Connect to the notification server, and again whenever it goes away
        or another takes its place; show the pending approvals on each new one."""
        last_problem = ""
        while True:
            self._wake.clear()  # before the work: a change during it is not missed
            if not self.desktop.connected:
                self._desktop_ready.clear()
                try:
                    await self.desktop.connect()
                except Unavailable as exc:
                    if str(exc) != last_problem:
                        log.warning("%s; retrying every %g s", exc, self.settings.retry_s)
                        last_problem = str(exc)
                else:
                    last_problem = ""
                    log.info(
                        "notification server found: %s (actions: %s)",
                        self.desktop.server_name or "unnamed",
                        self.desktop.actions,
                    )
                    self._shown.clear()
                    self._approval_of.clear()
                    for approval_id, notice in list(self.pending.items()):
                        if approval_id not in self._shown and approval_id in self.pending:
                            await self._show(notice)
                    self._desktop_ready.set()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.retry_s):
                    await self._wake.wait()

    def _on_server(self, present: bool) -> None:
        """The notification server went away, or a new one took its name: what
        the old one showed is gone with it."""
        log.info("the notification server %s", "changed" if present else "went away")
        self._shown.clear()
        self._approval_of.clear()
        self._early_clicks.clear()  # ids are the old server's
        self._early_closes.clear()
        self._wake.set()

    async def _on_item(self, item: object) -> None:
        match item:
            case Followed():
                self.notices.titles[item.session] = item.snapshot.session.title
                # Focus given before following began is in the snapshot, not in an event.
                focus = self._focus.setdefault(item.session, set())
                focus.update(frontend.id for frontend in item.snapshot.focused)
                for approval in item.snapshot.pending_approvals:
                    await self._notice(self.notices.approval(approval))
            case ConnectionLost():
                log.debug("lost the daemon (session %s); reconnecting", item.session)
            case ConnectionRestored():
                for approval in item.snapshot.pending_approvals:
                    if approval.approval_id not in self.pending:
                        await self._notice(self.notices.approval(approval))
            case p.FocusChanged():
                focused = self._focus.setdefault(item.session, set())
                if item.focused:
                    focused.add(item.frontend.id)
                else:
                    focused.discard(item.frontend.id)
            case p.ApprovalResolved():
                self.pending.pop(item.approval_id, None)
                shown = self._shown.pop(item.approval_id, None)
                if shown is not None:
                    self._approval_of.pop(shown, None)
                    with contextlib.suppress(Unavailable):
                        await self.desktop.close_notification(shown)
            case p.Event():
                notice = self.notices.on_event(item)
                if notice is not None:
                    await self._notice(notice)

    async def _notice(self, notice: Notice) -> None:
        if self.settings.suppress_focused and await self._focused(notice.session):
            log.debug("quiet about %s: watched in a focused frontend", notice.session)
            return
        if notice.approval is not None:
            self.pending[notice.approval.approval_id] = notice
        if self.desktop.connected:
            await self._show(notice)

    async def _show(self, notice: Notice) -> None:
        approval_id = notice.approval.approval_id if notice.approval is not None else None
        if approval_id is not None:
            if approval_id in self._shown or approval_id in self._showing:
                return
            self._showing.add(approval_id)
        try:
            shown = await self.desktop.notify(notice, expire_ms=self.settings.expire_ms)
        except Unavailable as exc:
            log.warning("%s; will retry", exc)
            self.desktop.close()
            self._wake.set()
            return
        finally:
            if approval_id is not None:
                self._showing.discard(approval_id)
        if notice.approval is not None:
            self._shown[notice.approval.approval_id] = shown
            self._approval_of[shown] = notice.approval
            early = self._early_clicks.pop(shown, None)
            if early is not None:
                self._on_action(shown, early)
            closed = self._early_closes.pop(shown, None)
            if closed is not None:
                self._on_closed(shown, closed)

    async def _focused(self, session: str) -> bool:
        """Watched in a focused frontend that is still connected?"""
        focused = self._focus.get(session)
        if not focused:
            return False
        try:
            client, _ = await self.daemons.route(session)
            status = await client.status()
        except (DaemonUnavailable, RequestFailed):
            return False
        focused &= {frontend.id for frontend in status.frontends}
        return bool(focused)

    def _on_action(self, notification: int, action: str) -> None:
        if action not in ("allow", "deny"):
            return
        approval = self._approval_of.get(notification)
        if approval is None:
            self._early_clicks[notification] = action
            while len(self._early_clicks) > 100:
                self._early_clicks.pop(next(iter(self._early_clicks)))
            return
        task = asyncio.get_running_loop().create_task(self._respond(approval, action))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_closed(self, notification: int, reason: int) -> None:
        """An approval's bubble closed without an answer: it still waits. Closed by
        the server (expired, or for no reason given), it is shown again; dismissed
        by the user, it stays pending until answered elsewhere or the server changes."""
        approval = self._approval_of.pop(notification, None)
        if approval is None:
            self._early_closes[notification] = reason
            while len(self._early_closes) > 100:
                self._early_closes.pop(next(iter(self._early_closes)))
            return
        self._shown.pop(approval.approval_id, None)
        notice = self.pending.get(approval.approval_id)
        if notice is not None and reason in (CLOSED_EXPIRED, CLOSED_UNDEFINED):
            log.info(
                "the server closed approval %s unanswered: showing it again", approval.approval_id
            )
            task = asyncio.get_running_loop().create_task(self._show_again(notice))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _show_again(self, notice: Notice) -> None:
        await asyncio.sleep(min(self.settings.retry_s, RESHOW_DELAY_S))  # no busy loop
        approval = notice.approval
        assert approval is not None
        waiting = approval.approval_id in self.pending and approval.approval_id not in self._shown
        if waiting and self.desktop.connected:
            await self._show(notice)

    async def _respond(self, approval: p.ApprovalRequested, action: str) -> None:
        decision: p.ApprovalDecision = "allow" if action == "allow" else "deny"
        message = "" if decision == "allow" else "denied from the desktop notification"
        try:
            # The session is ``host/session`` for a remote daemon: answer there.
            client, session = await self.daemons.route(approval.session)
            await client.respond(session, approval.approval_id, decision, message)
        except RequestFailed as exc:  # answered elsewhere first, or gone
            log.info("approval %s: %s", approval.approval_id, exc.message)
        except DaemonUnavailable as exc:
            log.warning("could not answer approval %s: %s", approval.approval_id, exc)
