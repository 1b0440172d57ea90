"""kfd's terminal frontend: a prompt-toolkit REPL attached to a live session.

Any number of terminals can attach to one session; each shows the whole
transcript (history first, then live), streams answers and tool output above
its prompt, and can answer approvals: the first answer wins and the other
terminals say who gave it.

The ``kfd`` command finds this package by entry point (group
``kfd.frontends``, name ``repl``) and calls `main`; `start` is the same with
keyword arguments. Like every frontend it speaks to the daemon only through
`kfd.client` and `kfd.protocol`.

Modules: `launch` (terminal checks, session choice), `app` (the application),
`view` (events to state and blocks, no I/O), `render` (blocks to ANSI with
Rich), `live` (the live area and toolbar), `printer`, `keys`, `commands`,
`backend`, `completion`, `history`, `markdown`, `blocks`.
"""

from kfd_repl.launch import main, start

__all__ = ["main", "start"]
