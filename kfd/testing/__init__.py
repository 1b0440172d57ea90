"""Test seams for kfd and its plugins: real peers on loopback instead of mocks.

`ScriptedModelServer` is a real HTTP model server that answers from a script
(see `kfd.testing.model_server` for the whole story)::

    from kfd.testing import Reply, ScriptedModelServer

    with ScriptedModelServer([Reply(text="hello")]) as server:
        ...  # point kfd at server.base_url

`KfdDaemon` runs a real daemon process with private XDG directories, and
`kfd.testing.fixtures` offers both as pytest fixtures.

This package only re-exports; each seam lives in its own module.
"""

from kfd.testing.anthropic_wire import AnthropicMessagesFormat
from kfd.testing.cloudflare_wire import CloudflareFormat
from kfd.testing.daemon import KfdDaemon
from kfd.testing.model_server import (
    CONTEXT_TOO_LONG,
    CutStream,
    Fault,
    HttpError,
    InvalidChunk,
    OpenAIChatFormat,
    Outcome,
    RecordedRequest,
    Reply,
    Responder,
    ScriptedModelServer,
    ScriptedToolCall,
    ScriptedUsage,
    ServerEvent,
    Stall,
    WireFormat,
)

__all__ = [
    "CONTEXT_TOO_LONG",
    "AnthropicMessagesFormat",
    "CloudflareFormat",
    "CutStream",
    "Fault",
    "HttpError",
    "InvalidChunk",
    "KfdDaemon",
    "OpenAIChatFormat",
    "Outcome",
    "RecordedRequest",
    "Reply",
    "Responder",
    "ScriptedModelServer",
    "ScriptedToolCall",
    "ScriptedUsage",
    "ServerEvent",
    "Stall",
    "WireFormat",
]
