"""kfd_chat: the chat-ops bridge (``kfd chat matrix``, ``kfd chat slack``).

A room (or a thread in it) maps to a session. Messages from allow-listed
users become ``message.send``; everyone else is ignored and logged. The
agent's answer streams into one message, edited no faster than the service
allows; tool calls show as compact lines; approvals are posted with their
diff or command and answered by an allow-listed user with a reply (``allow``
/ ``deny …``) or a reaction (👍 / 👎), bound to the approval the user was
shown (`kfd_chat.answers`). What the model writes is posted as a block quote,
so it never reads as kfd's own posts. ``!new``, ``!cancel``, ``!mode``,
``!cost``, ``!status`` and ``!help`` steer the session.

Nothing is lost or repeated across a lost connection, a restart or a crash:
the chat service's cursor (Matrix sync token, Slack event ids), the last
event seq of each session and an outbox of posts are kept in a state file;
incoming messages are sent with an idempotent ``client_msg_id``; a post is
recorded before it is made, so a crash never posts it twice. Modules:

- `kfd_chat.adapter` -- the small interface a chat service implements.
- `kfd_chat.matrix`, `kfd_chat.slack` -- the two services;
  `kfd_chat.matrix_sync` -- what a Matrix sync answer means (pure).
- `kfd_chat.bridge` -- chat -> kfd: allow-list, invitations, commands, answers.
- `kfd_chat.answers` -- which approval a message answers, if any (pure).
- `kfd_chat.outgoing` -- kfd -> chat: streams, coalesced tool lines, approvals.
- `kfd_chat.poster` -- the one way to post: outbox, rate limits, retries.
- `kfd_chat.render` -- how events read in a chat (pure); `kfd_chat.markup` --
  that Markdown as each service shows it.
- `kfd_chat.state` -- the state file.
- `kfd_chat.settings` -- the ``[chat]`` table.

A new service (Discord, Telegram, IRC) is one module implementing
`kfd_chat.adapter.Adapter`.
"""

from __future__ import annotations

from kfd_chat.app import run

__all__ = ["run"]
