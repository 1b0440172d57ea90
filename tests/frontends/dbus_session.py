# ruff: noqa: F722, F821 -- dbus-fast reads D-Bus signatures from the annotations
"""Test support: a real ``dbus-daemon --session``, real notification servers
under Xvfb, and a small scriptable one.

`session_bus` starts a private session bus (Debian package ``dbus``) and
yields its address. `xvfb` starts a private X server (``xvfb``) and yields
its display. `Dunst` runs the real dunst (``dunst``) on them, with its
context menu ("dmenu") scripted so that `Dunst.click` chooses a button as a
person would, and `Dunst.history` reads what it showed. `NotificationServer`
speaks the spec in-process (Notify, CloseNotification, GetCapabilities,
GetServerInformation, ActionInvoked, NotificationClosed), recording every
notification so a test can look at it, click it, or expire it.
"""

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from dbus_fast import Message, Variant
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


@contextlib.contextmanager
def xvfb(directory: Path) -> Iterator[str]:
    """A private X server; yields its DISPLAY (``:N``, chosen by Xvfb itself)."""
    binary = shutil.which("Xvfb")
    if binary is None:
        raise RuntimeError("Xvfb is missing: install the Debian package xvfb")
    read, write = os.pipe()
    process = subprocess.Popen(
        [binary, "-displayfd", str(write), "-screen", "0", "1024x768x24", "-nolisten", "tcp"],
        pass_fds=(write,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=directory,
    )
    os.close(write)
    with os.fdopen(read) as pipe:
        number = pipe.readline().strip()  # written once the server accepts clients
    try:
        assert number.isdigit(), f"Xvfb did not start ({process.poll()})"
        yield f":{number}"
    finally:
        process.terminate()
        process.wait(10)


class _ServerProcess:
    """A notification server as a child process on a private bus and display."""

    def __init__(self, address: str, display: str, directory: Path) -> None:
        self.env = {
            **os.environ,
            "DBUS_SESSION_BUS_ADDRESS": address,
            "DISPLAY": display,
            "HOME": str(directory),
            "XDG_CONFIG_HOME": str(directory / "config"),
        }
        self.address = address
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    async def start(self, timeout: float = 15.0):
        self.process = subprocess.Popen(  # noqa: ASYNC220 -- Popen returns at once
            self.command(),
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        bus = await MessageBus(bus_address=self.address).connect()
        try:
            deadline = time.monotonic() + timeout
            while True:  # the name is taken once the server is ready
                reply = await bus.call(
                    Message(
                        destination="org.freedesktop.DBus",
                        path="/org/freedesktop/DBus",
                        interface="org.freedesktop.DBus",
                        member="NameHasOwner",
                        signature="s",
                        body=["org.freedesktop.Notifications"],
                    )
                )
                if reply is not None and reply.body and reply.body[0]:
                    return self
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{self.command()[0]} did not start")
                await asyncio.sleep(0.05)  # polling the bus: the server sends no signal to us
        finally:
            bus.disconnect()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


class Dunst(_ServerProcess):
    """The real dunst. Its context menu runs a script that picks the line
    naming the button a test asked for, as a person picks in dmenu."""

    def command(self) -> list[str]:
        binary = shutil.which("dunst")
        if binary is None:
            raise RuntimeError("dunst is missing: install the Debian package dunst")
        picker = self.directory / "pick"
        picker.write_text(
            f"#!/bin/sh\ncat > '{self.directory}/menu'\n"
            f"grep -m1 -F -- \"$(cat '{self.directory}/wanted')\" '{self.directory}/menu'\n"
        )
        picker.chmod(0o755)
        config = self.directory / "dunstrc"
        config.write_text(f"[global]\ndmenu = {picker}\nmarkup = full\nidle_threshold = 0\n")
        return [binary, "-config", str(config)]

    async def click(self, label: str, timeout: float = 10.0) -> str:
        """Choose the button ``label`` (``Allow``) in dunst's context menu; returns the menu."""
        menu = self.directory / "menu"
        menu.unlink(missing_ok=True)
        (self.directory / "wanted").write_text(f"#{label} ")
        process = await asyncio.create_subprocess_exec("dunstctl", "context", env=self.env)
        assert await process.wait() == 0
        deadline = time.monotonic() + timeout
        while not menu.exists() or not menu.read_text():  # dunst runs the menu on its own time
            assert time.monotonic() < deadline, "dunst showed no context menu"
            await asyncio.sleep(0.05)
        return menu.read_text()

    def displayed(self) -> int:
        result = subprocess.run(
            ["dunstctl", "count", "displayed"], env=self.env, capture_output=True, text=True
        )
        return int(result.stdout.strip() or 0)

    def close_all(self) -> None:
        subprocess.run(["dunstctl", "close-all"], env=self.env, check=True, timeout=10)

    def history(self) -> list[dict[str, object]]:
        """What dunst showed and closed, newest first: {body, message, summary, …}."""
        result = subprocess.run(
            ["dunstctl", "history"], env=self.env, capture_output=True, text=True, check=True
        )
        return [
            {key: value["data"] for key, value in entry.items()}
            for entry in json.loads(result.stdout)["data"][0]
        ]


@dataclass
class Shown:
    id: int
    summary: str
    body: str
    actions: list[str]
    hints: dict[str, object]
    expire_timeout: int = -1


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
        return self.server._notify(summary, body, actions, hints, expire_timeout)

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

    def expire(self, notification_id: int) -> None:
        """Close it as a server does when its time is up (reason 1), whatever was asked."""
        self.open.pop(notification_id, None)
        self._interface.NotificationClosed(notification_id, 1)
        self._changed.set()

    def _notify(
        self,
        summary: str,
        body: str,
        actions: list[str],
        hints: dict[str, Variant],
        expire_timeout: int = -1,
    ) -> int:
        shown = Shown(
            len(self.shown) + 1,
            summary,
            body,
            list(actions),
            {k: v.value for k, v in hints.items()},
            expire_timeout,
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
