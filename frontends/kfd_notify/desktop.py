"""The D-Bus side: freedesktop notifications through dbus-fast.

`Desktop` holds one session-bus connection. `connect` raises `Unavailable`
with a reason the user can act on when there is no bus; the app retries.
The notification server is followed by its bus name: ``NameOwnerChanged``
says when it goes away or a new one (a restarted dunst, another daemon)
takes ``org.freedesktop.Notifications``, and `Desktop` reports it
(``on_server``) so the app shows pending approvals again on the new server.

Clicks come back as ``ActionInvoked`` signals, accepted only from the bus
name that owns ``org.freedesktop.Notifications`` now (anyone on the bus can
send a signal; only the notification server may answer an approval).

Markup: the body is always escaped. The spec lets a server without
``body-markup`` show text as it is, but servers render markup whether they
say so or not (dunst with its default ``markup = full``), and a command
with ``<span size="1">`` must not hide its second line. dunst also renders
markup in the summary; there it is escaped too.
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
NEVER = 0
"""``expire_timeout`` of an approval: it stays until answered."""

ActionHandler = Callable[[int, str], None]
"""(notification id, action key) of a clicked button."""
ClosedHandler = Callable[[int, int], None]
"""(notification id, reason): 1 expired, 2 dismissed by the user, 3 closed by
a CloseNotification call, 4 undefined."""
ServerHandler = Callable[[bool], None]
"""A notification server appeared (True: a new one, pending notices are
gone with the old one) or went away (False)."""

_DBUS = ("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus")


class Unavailable(Exception):
    """No session bus, or no notification server on it."""


class Desktop:
    """A connection to the session bus, following its notification server."""

    def __init__(
        self,
        on_action: ActionHandler,
        on_closed: ClosedHandler,
        address: str | None = None,
        on_server: ServerHandler | None = None,
    ) -> None:
        self._on_action = on_action
        self._on_closed = on_closed
        self._on_server = on_server
        self._address = address
        self._bus: MessageBus | None = None
        self._server_owner = ""
        self.server_name = ""
        self.capabilities: set[str] = set()

    @property
    def bus_connected(self) -> bool:
        return self._bus is not None and self._bus.connected

    @property
    def connected(self) -> bool:
        """Connected, and a notification server owns its name on the bus."""
        return self.bus_connected and bool(self._server_owner)

    async def connect(self) -> None:
        """Connect to the bus and follow the notification server's name.
        Raises `Unavailable` when there is no bus, or no server on it yet
        (the connection stays: `on_server` says when one appears)."""
        if not self.bus_connected:
            try:
                bus = await MessageBus(
                    bus_address=self._address, bus_type=BusType.SESSION
                ).connect()
            except (OSError, ValueError, DBusError) as exc:
                raise Unavailable(
                    f"no D-Bus session bus ({exc}); is DBUS_SESSION_BUS_ADDRESS set?"
                ) from None
            self._bus = bus
            bus.add_message_handler(self._on_message)
            await self._call(*_DBUS, "AddMatch", "s", [f"type='signal',interface='{INTERFACE}'"])
            await self._call(
                *_DBUS,
                "AddMatch",
                "s",
                [
                    "type='signal',sender='org.freedesktop.DBus',member='NameOwnerChanged',"
                    f"arg0='{SERVICE}'"
                ],
            )
        try:
            owner = await self._call(*_DBUS, "GetNameOwner", "s", [SERVICE])
        except Unavailable:
            raise Unavailable(
                f"no notification server on the session bus ({SERVICE}); retrying when one appears"
            ) from None
        await self._adopt(str(owner[0]))

    async def _adopt(self, owner: str) -> None:
        """Take ``owner`` as the notification server once it said what it can do
        (until then `connected` stays False: nothing is shown half-known)."""
        capabilities = await self._call(SERVICE, PATH, INTERFACE, "GetCapabilities")
        information = await self._call(SERVICE, PATH, INTERFACE, "GetServerInformation")
        self.capabilities = {str(c) for c in capabilities[0]}
        self.server_name = str(information[0]) if information else ""
        self._server_owner = owner

    @property
    def actions(self) -> bool:
        return "actions" in self.capabilities

    async def notify(self, notice: Notice, *, expire_ms: int = -1, replaces: int = 0) -> int:
        """Show ``notice``; returns the server's id for it. Approvals never expire."""
        body = html.escape(notice.body, quote=False)
        summary = notice.summary
        if self.server_name == "dunst":  # renders markup in the summary too
            summary = html.escape(summary, quote=False)
        actions: list[str] = []
        if notice.approval is not None and self.actions:
            actions = ["allow", "Allow", "deny", "Deny"] if notice.allowable else ["deny", "Deny"]
        hints = {"urgency": Variant("y", notice.urgency), "category": Variant("s", "im")}
        if notice.approval is not None:
            hints["resident"] = Variant("b", True)
            expire_ms = NEVER
        reply = await self._call(
            SERVICE,
            PATH,
            INTERFACE,
            "Notify",
            "susssasa{sv}i",
            [APP_NAME, replaces, "", summary, body, actions, hints, expire_ms],
        )
        return int(reply[0])

    async def close_notification(self, notification_id: int) -> None:
        await self._call(SERVICE, PATH, INTERFACE, "CloseNotification", "u", [notification_id])

    def close(self) -> None:
        self._server_owner = ""
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
        if message.message_type != MessageType.SIGNAL:
            return
        if message.member == "NameOwnerChanged" and message.sender == "org.freedesktop.DBus":
            if message.signature == "sss" and message.body[0] == SERVICE:
                self._owner_changed(str(message.body[2]))
            return
        if message.interface != INTERFACE or message.sender != self._server_owner:
            return
        if message.member == "ActionInvoked" and message.signature == "us":
            self._on_action(int(message.body[0]), str(message.body[1]))
        elif message.member == "NotificationClosed" and message.signature == "uu":
            self._on_closed(int(message.body[0]), int(message.body[1]))

    def _owner_changed(self, owner: str) -> None:
        if owner and owner == self._server_owner:
            return  # the server `connect` found already: the signal came after it
        self._server_owner = ""  # clicks from the old server no longer count
        self.capabilities = set()
        if self._on_server is not None:
            self._on_server(bool(owner))
