"""The transcript: a session's conversation in provider-neutral form.

Providers translate these records to and from their wire formats; the store
keeps them as JSON; the turn loop appends to them. Every assistant tool call
is followed, before the next user or assistant message, by exactly one
`ToolResultMessage` with its id.
"""

from __future__ import annotations

import msgspec

from kfd.protocol import ToolCall


class UserMessage(msgspec.Struct, tag="user", kw_only=True):
    text: str
    id: str = ""


class AssistantMessage(msgspec.Struct, tag="assistant", kw_only=True):
    text: str = ""
    reasoning: str = ""
    tool_calls: list[ToolCall] = msgspec.field(default_factory=list)
    id: str = ""


class ToolResultMessage(msgspec.Struct, tag="tool", kw_only=True):
    call_id: str
    name: str
    content: str
    is_error: bool = False


class SummaryMessage(msgspec.Struct, tag="summary", kw_only=True):
    """Stands for the older part of a compacted transcript."""

    text: str
    id: str = ""


Message = UserMessage | AssistantMessage | ToolResultMessage | SummaryMessage

message_encoder = msgspec.json.Encoder()
message_decoder: msgspec.json.Decoder[Message] = msgspec.json.Decoder(Message)


def unanswered_calls(messages: list[Message]) -> list[ToolCall]:
    """Tool calls of the last assistant message that have no result yet."""
    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        if isinstance(message, AssistantMessage):
            answered = {
                m.call_id for m in messages[index + 1 :] if isinstance(m, ToolResultMessage)
            }
            return [call for call in message.tool_calls if call.id not in answered]
        if isinstance(message, UserMessage | SummaryMessage):
            return []
    return []
