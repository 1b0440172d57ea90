# ruff: noqa: F722, F821 -- dbus-fast reads D-Bus signatures from the annotations
"""Test support: a real ``dbus-daemon --session`` and a small notification server.

`session_bus` starts a private session bus (Debian package ``dbus``) and
yields its address. `NotificationServer` speaks the freedesktop
notification spec on it: Notify, CloseNotification, GetCapabilities,
GetServerInformation, and the ActionInvoked / NotificationClosed signals,
recording every notification so a test can look at it and click it.
"""

import asyncio
import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from dbus_fast import Variant
from dbus_fast.aio import MessageBus
from dbus_fast.service import ServiceInterface, method, signal


@contextlib.contextmanager
def session_bus(directory: Path) -> Iterator[str]:
    """A private session bus; yields its address (for DBUS_SESSION_BUS_ADDRESS)."""
    daemon = shutil.which("dbus-daemon")
    if daemon is None:
        raise RuntimeError("dbus-daemon is missing: install the Debian package dbus")
    socket = directory / "bus"
    process = subprocess.Popen(
        [
            daemon,
            "--session",
            "--nofork",
            "--nopidfile",
            f"--address=unix:path={socket}",
            "--print-address=1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "HOME": str(directory)},
    )
    assert process.stdout is not None
    address = process.stdout.readline().decode().strip()  # printed once it listens
    try:
        assert address.startswith("unix:"), address
        yield address
    finally:
        process.terminate()
        process.wait(10)


@dataclass
class Shown:
    id: int
    summary: str
    body: str
    actions: list[str]
    hints: dict[str, object]


class _Interface(ServiceInterface):  # type: ignore[misc]
    def __init__(self, server: "NotificationServer") -> None:
        super().__init__("org.freedesktop.Notifications")
        self.server = server

    @method()
    def GetCapabilities(self) -> "as":
        return list(self.server.capabilities)

    @method()
    def GetServerInformation(self) -> "ssss":
        return ["kfd-test", "kfd", "1.0", "1.2"]

    @method()
    def Notify(
        self,
        app_name: "s",
        replaces_id: "u",
        app_icon: "s",
        summary: "s",
        body: "s",
        actions: "as",
        hints: "a{sv}",
        expire_timeout: "i",
    ) -> "u":
        return self.server._notify(summary, body, actions, hints)

    @method()
    def CloseNotification(self, notification_id: "u") -> None:
        self.server._close(notification_id)

    @signal()
    def ActionInvoked(self, notification_id: int, action: str) -> "us":
        return [notification_id, action]

    @signal()
    def NotificationClosed(self, notification_id: int, reason: int) -> "uu":
        return [notification_id, reason]


class NotificationServer:
    """``org.freedesktop.Notifications`` on a bus; `start` it, `click` its buttons."""

    def __init__(self, address: str, capabilities: tuple[str, ...] = ("body", "actions")) -> None:
        self.address = address
        self.capabilities = capabilities
        self.shown: list[Shown] = []
        self.open: dict[int, Shown] = {}
        self.closed: list[int] = []
        self._changed = asyncio.Event()
        self._bus: MessageBus | None = None
        self._interface = _Interface(self)

    async def start(self) -> "NotificationServer":
        self._bus = await MessageBus(bus_address=self.address).connect()
        self._bus.export("/org/freedesktop/Notifications", self._interface)
        await self._bus.request_name("org.freedesktop.Notifications")
        return self

    def stop(self) -> None:
        if self._bus is not None:
            self._bus.disconnect()

    def click(self, notification_id: int, action: str) -> None:
        self._interface.ActionInvoked(notification_id, action)

    async def wait_for(self, predicate, timeout: float = 10.0) -> Shown:
        """The first notification shown (so far or later) for which ``predicate`` holds."""
        async with asyncio.timeout(timeout):
            while True:
                for shown in self.shown:
                    if predicate(shown):
                        return shown
                self._changed.clear()
                await self._changed.wait()

    async def wait_closed(self, notification_id: int, timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while notification_id not in self.closed:
                self._changed.clear()
                await self._changed.wait()

    def _notify(
        self, summary: str, body: str, actions: list[str], hints: dict[str, Variant]
    ) -> int:
        shown = Shown(
            len(self.shown) + 1,
            summary,
            body,
            list(actions),
            {k: v.value for k, v in hints.items()},
        )
        self.shown.append(shown)
        self.open[shown.id] = shown
        self._changed.set()
        return shown.id

    def _close(self, notification_id: int) -> None:
        self.open.pop(notification_id, None)
        self.closed.append(notification_id)
        self._interface.NotificationClosed(notification_id, 3)
        self._changed.set()
