"""systemd's readiness protocol, in the few lines it takes.

With ``Type=notify`` systemd passes ``$NOTIFY_SOCKET`` (a datagram socket,
``@`` meaning the abstract namespace) and waits for ``READY=1``. Written here
rather than pulled in as a C-backed dependency; it is a single sendto.
"""

from __future__ import annotations

import os
import socket


def notify(state: str) -> bool:
    """Send ``state`` (e.g. ``"READY=1"``) to systemd; False if not under it."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        try:
            sock.connect(address)
            sock.sendall(state.encode())
        except OSError:
            return False
    return True
