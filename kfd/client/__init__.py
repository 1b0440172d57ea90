"""The client library every frontend uses to talk to the daemon.

One of kfd's three public contracts (with `kfd.protocol` and `kfd.api`). It
imports only pyzmq, msgspec and `kfd.protocol`, so a client starts fast.

::

    async with await Client.connect(name="my-frontend", spawn=True) as client:
        info = await client.create_session(cwd="/path/to/repo")
        async with await client.attach(info.id) as session:
            await client.send(info.id, "hello")
            async for event in session:
                print(event)

`Attachment` is the heart of it: it yields every event of a session exactly
once, in order: the logged history first, then live events. It re-attaches by
itself when the daemon says it shed events this client was too slow to take
(``events.dropped``, yielded too), when it notices any other gap, and when
the daemon restarts, yielding `ConnectionLost` and `ConnectionRestored` so a
frontend can say so. `Client.environment_drift` says how this process's
provider environment differs from the daemon's (`drift_message` words it).
Streamed text (``message.delta``, ``tool.output``)
arrives with offsets; the attachment trims overlaps and fills what it missed
from the snapshot, so the text a frontend assembles is exact.

`Follower` (from `Client.follow`) does the same for every session at once,
for frontends that watch them all (the notifier, a chat bridge): each
session's events exactly once and in order, interleaved across sessions.

`Notices` (from `Client.notices`) yields the daemon-wide events of the
``global`` topic: the config reloaded or broken, a project trusted.

A daemon on another host is reached the same way, over CURVE-encrypted TCP:
``Client.connect(remote=Remote(name, "tcp://host:7450"))`` (`kfd.client.remote`:
keys, pinning the daemon's key as SSH does, reconnecting after a dropped link).
`DaemonSet` follows several daemons at once, naming remote sessions
``host/session``.

A frontend may lend a session what it has: `Client.supply_mcp_servers` (an
editor's MCP servers, run for the session while the frontend is connected)
and `Client.serve_files` (its view of the files: see `kfd.client.files`).
"""

from kfd.client.attachment import Attachment
from kfd.client.connection import Client
from kfd.client.daemon import daemon_running, ensure_daemon, runtime_dir, start_daemon, state_dir
from kfd.client.environment import drift_message, environment_drift
from kfd.client.errors import (
    ClientError,
    DaemonKeyChanged,
    DaemonUnavailable,
    KeysMissing,
    RemoteRefused,
    RequestFailed,
)
from kfd.client.events import (
    ConnectionLost,
    ConnectionRestored,
    Followed,
    FollowItem,
    Item,
    decode_event,
)
from kfd.client.files import FileHandler, FileService, FileUnavailable
from kfd.client.follow import Follower
from kfd.client.multi import DaemonSet, qualify, split
from kfd.client.notices import Notices
from kfd.client.remote import Remote

__all__ = [
    "Attachment",
    "Client",
    "ClientError",
    "ConnectionLost",
    "ConnectionRestored",
    "DaemonKeyChanged",
    "DaemonSet",
    "DaemonUnavailable",
    "FileHandler",
    "FileService",
    "FileUnavailable",
    "FollowItem",
    "Followed",
    "Follower",
    "Item",
    "KeysMissing",
    "Notices",
    "Remote",
    "RemoteRefused",
    "RequestFailed",
    "daemon_running",
    "decode_event",
    "drift_message",
    "ensure_daemon",
    "environment_drift",
    "qualify",
    "runtime_dir",
    "split",
    "start_daemon",
    "state_dir",
]
