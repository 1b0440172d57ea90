"""The D-Bus side: freedesktop notifications through dbus-fast.

`Desktop` holds one session-bus connection. `connect` raises `Unavailable`
with a reason the user can act on when there is no bus or no notification
server on it; the app retries. Clicks come back as ``ActionInvoked``
signals, accepted only from the bus name that owns
``org.freedesktop.Notifications`` (anyone on the bus can send a signal; only
the notification server may answer an approval).
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

from dbus_fast import BusType, Message, MessageType, Variant
from dbus_fast.aio import MessageBus
from dbus_fast.errors import DBusError

from kfd_notify.notices import Notice

SERVICE = "org.freedesktop.Notifications"
PATH = "/org/freedesktop/Notifications"
INTERFACE = "org.freedesktop.Notifications"
APP_NAME = "kfd"

ActionHandler = Callable[[int, str], None]
"""(notification id, action key) of a clicked button."""
ClosedHandler = Callable[[int], None]


class Unavailable(Exception):
    """No session bus, or no notification server on it."""


class Desktop:
    """A connection to the notification server."""

    def __init__(
        self, on_action: ActionHandler, on_closed: ClosedHandler, address: str | None = None
    ) -> None:
        self._on_action = on_action
        self._on_closed = on_closed
        self._address = address
        self._bus: MessageBus | None = None
        self._server_owner = ""
        self._ready = False
        self.capabilities: set[str] = set()

    @property
    def connected(self) -> bool:
        """Connected to a notification server and listening for its signals."""
        return self._ready and self._bus is not None and self._bus.connected

    async def connect(self) -> None:
        """Connect, find the server, learn its capabilities, listen for clicks."""
        try:
            bus = await MessageBus(bus_address=self._address, bus_type=BusType.SESSION).connect()
        except (OSError, ValueError, DBusError) as exc:
            raise Unavailable(
                f"no D-Bus session bus ({exc}); is DBUS_SESSION_BUS_ADDRESS set?"
            ) from None
        self._bus = bus
        try:
            owner = await self._call(
                "org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus",
                "GetNameOwner",
                "s",
                [SERVICE],
            )
            self._server_owner = str(owner[0])
            capabilities = await self._call(SERVICE, PATH, INTERFACE, "GetCapabilities")
            self.capabilities = set(capabilities[0])
            bus.add_message_handler(self._on_message)
            await self._call(
                "org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus",
                "AddMatch",
                "s",
                [f"type='signal',interface='{INTERFACE}'"],
            )
            self._ready = True
        except Unavailable:
            self.close()
            raise

    @property
    def actions(self) -> bool:
        return "actions" in self.capabilities

    async def notify(self, notice: Notice, *, expire_ms: int = -1, replaces: int = 0) -> int:
        """Show ``notice``; returns the server's id for it."""
        body = notice.body
        if "body-markup" in self.capabilities:
            body = html.escape(body, quote=False)
        actions = ["allow", "Allow", "deny", "Deny"] if notice.approval and self.actions else []
        hints = {"urgency": Variant("y", notice.urgency), "category": Variant("s", "im")}
        if notice.approval is not None:
            hints["resident"] = Variant("b", True)
        reply = await self._call(
            SERVICE,
            PATH,
            INTERFACE,
            "Notify",
            "susssasa{sv}i",
            [APP_NAME, replaces, "", notice.summary, body, actions, hints, expire_ms],
        )
        return int(reply[0])

    async def close_notification(self, notification_id: int) -> None:
        await self._call(SERVICE, PATH, INTERFACE, "CloseNotification", "u", [notification_id])

    def close(self) -> None:
        self._ready = False
        if self._bus is not None:
            self._bus.disconnect()
            self._bus = None

    async def _call(
        self,
        destination: str,
        path: str,
        interface: str,
        member: str,
        signature: str = "",
        body: list[Any] | None = None,
    ) -> list[Any]:
        bus = self._bus
        if bus is None or not bus.connected:
            raise Unavailable("the D-Bus connection was lost")
        try:
            reply = await bus.call(
                Message(
                    destination=destination,
                    path=path,
                    interface=interface,
                    member=member,
                    signature=signature,
                    body=body or [],
                )
            )
        except (OSError, EOFError, DBusError) as exc:
            raise Unavailable(f"D-Bus call {member} failed: {exc}") from None
        if reply is None or reply.message_type == MessageType.ERROR:
            detail = reply.body[0] if reply is not None and reply.body else ""
            name = reply.error_name if reply is not None else "no reply"
            raise Unavailable(
                f"no notification server answers on the session bus ({name}: {detail})"
            )
        return list(reply.body)

    def _on_message(self, message: Message) -> None:
        if message.message_type != MessageType.SIGNAL or message.interface != INTERFACE:
            return
        if message.sender != self._server_owner:
            return
        if message.member == "ActionInvoked" and message.signature == "us":
            self._on_action(int(message.body[0]), str(message.body[1]))
        elif message.member == "NotificationClosed" and message.signature == "uu":
            self._on_closed(int(message.body[0]))
