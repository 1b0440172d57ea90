"""kfd_notify: desktop notifications for every session (``kfd notify``).

A frontend like any other: it speaks to the daemon only through `kfd.client`
and `kfd.protocol`. It follows every session and sends freedesktop
notifications over D-Bus (``org.freedesktop.Notifications``) when an
approval waits (with Allow and Deny buttons where the notification server
supports actions; a click answers through ``approval.respond``), when a turn
finishes, on errors and on budget warnings. Modules:

- `kfd_notify.notices` -- which event makes which notification (pure).
- `kfd_notify.desktop` -- the D-Bus side: connect, notify, listen for clicks.
- `kfd_notify.app` -- the loop tying them to the daemon.
- `kfd_notify.settings` -- the ``[notify]`` table.
"""

from __future__ import annotations

from kfd_notify.app import run

__all__ = ["run"]
