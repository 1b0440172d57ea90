"""kfd_acp: the Agent Client Protocol frontend (``kfd acp``), for editors.

An editor (Zed, a JetBrains IDE, Neovim, Emacs) starts ``kfd acp`` as its
agent and speaks ACP (JSON-RPC 2.0, one message per line) on its stdin and
stdout. The editor becomes one more frontend of the daemon's live sessions:
a turn started in the editor can be watched and approved from a terminal,
chat or a notification, and a session started elsewhere can be loaded in
the editor with its whole history. Built on the ACP library
(``agent-client-protocol``); like every frontend it speaks to the daemon
only through `kfd.client` and `kfd.protocol`. Modules:

- `kfd_acp.startup` -- the entry point: takes over stdio, answers
  ``initialize`` before the ACP library is even imported.
- `kfd_acp.early` -- the first ``session/new``, answered while the library loads.
- `kfd_acp.wire` -- newline-delimited JSON-RPC; bad lines get error replies.
- `kfd_acp.capabilities` -- what kfd tells the editor it can do (pure).
- `kfd_acp.agent` -- the ACP requests as kfd client requests.
- `kfd_acp.session` -- one session bridged: events out, prompts and approvals in.
- `kfd_acp.translate` -- kfd events as ACP updates (pure).
- `kfd_acp.tools` -- a tool call's kind, title, locations and diff (pure).
- `kfd_acp.prompts` -- a prompt as a kfd message or a slash command (pure).
- `kfd_acp.servers` -- the editor's MCP servers as kfd's (pure).
"""

from __future__ import annotations

from kfd_acp.startup import run

__all__ = ["run"]
