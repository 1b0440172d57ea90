"""The transcript: a session's conversation in provider-neutral form.

Providers translate these records to and from their wire formats; the store
keeps them as JSON; the turn loop appends to them. Every assistant tool call
is followed, before the next user or assistant message, by exactly one
`ToolResultMessage` with its id, and no two calls of a transcript share an id
(`distinct_call_ids`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

import msgspec

from kfd.protocol import ToolCall

_USABLE_CALL_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
"""A call id every provider takes back and every frontend shows as itself."""


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


def call_ids(messages: Iterable[Message]) -> set[str]:
    """The ids of every tool call in ``messages``."""
    return {
        call.id
        for message in messages
        if isinstance(message, AssistantMessage)
        for call in message.tool_calls
    }


def distinct_call_ids(
    calls: list[ToolCall], taken: set[str], fresh: Callable[[], str]
) -> list[ToolCall]:
    """``calls`` with ids that name one call each: a call keeps the provider's id
    unless it is empty, unusable, already ``taken`` (by an earlier call of the
    session) or repeats one of ``calls``; then it gets ``fresh()``.

    A result is matched to its call by id (`unanswered_calls`, the providers'
    history, the frontends): two calls under one id would share a result.
    """
    seen = set(taken)
    distinct = []
    for call in calls:
        if call.id in seen or not _USABLE_CALL_ID.fullmatch(call.id):
            new = fresh()
            while new in seen:
                new = fresh()
            call = msgspec.structs.replace(call, id=new)
        seen.add(call.id)
        distinct.append(call)
    return distinct


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
