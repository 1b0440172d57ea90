"""What ``kfd acp`` tells an editor it can do: one source of truth, as JSON.

Pure data and functions, no ACP library: the answer to ``initialize`` is
built from here both by the fast start (`kfd_acp.startup`, before the
library is imported) and by the agent itself, so the two cannot disagree.
Field names are ACP's wire names (camelCase).
"""

from __future__ import annotations

from typing import Any

from kfd import __version__

ACP_PROTOCOL_VERSION = 1
"""The ACP protocol version ``kfd acp`` speaks (the library's ``PROTOCOL_VERSION``)."""

MODE_NAMES: dict[str, tuple[str, str]] = {
    "default": ("Default", "Reads run; file edits and commands ask first."),
    "accept-edits": ("Accept edits", "File edits run; commands ask first."),
    "plan": ("Plan", "Only read-only tools and commands run; nothing changes."),
    "auto": ("Auto", "Everything runs that no permission rule denies or asks."),
}
"""kfd's permission modes (`kfd.protocol.MODES`), which are the ACP session modes,
with what each allows. Plain strings: the fast start does not load the protocol."""


def negotiate(requested: object) -> int:
    """The protocol version to answer: the editor's if kfd speaks it, else kfd's latest.

    ACP: an agent that supports the requested version answers with it;
    otherwise with the latest it supports, and the client decides whether
    to go on.
    """
    if type(requested) is int and 1 <= requested <= ACP_PROTOCOL_VERSION:  # bool is no version
        return requested
    return ACP_PROTOCOL_VERSION


def initialize_result(requested_version: object) -> dict[str, Any]:
    """The ``initialize`` result, as ACP JSON.

    - sessions can be loaded (with their whole history), listed, resumed
      (attached without replay), forked and closed (detached);
    - prompts take text, resource links and embedded resources; no images
      or audio (kfd's messages are text);
    - MCP servers the editor passes run for that session: stdio (in kfd's
      sandbox) and streamable HTTP; not SSE.
    """
    return {
        "protocolVersion": negotiate(requested_version),
        "agentCapabilities": {
            "loadSession": True,
            "promptCapabilities": {"image": False, "audio": False, "embeddedContext": True},
            "mcpCapabilities": {"http": True, "sse": False},
            "sessionCapabilities": {"list": {}, "resume": {}, "fork": {}, "close": {}},
        },
        "agentInfo": {"name": "kfd", "title": "kfd", "version": __version__},
        "authMethods": [],
    }


def modes_state(current: str) -> dict[str, Any]:
    """The session's modes (kfd's permission modes) with the current one, as ACP JSON."""
    return {
        "currentModeId": current,
        "availableModes": [
            {"id": mode, "name": name, "description": description}
            for mode, (name, description) in MODE_NAMES.items()
        ],
    }


def file_capabilities(client_capabilities: Any) -> tuple[bool, bool]:
    """Whether the editor offers ``fs/read_text_file`` and ``fs/write_text_file``.

    ``client_capabilities`` is what ``initialize`` carried: the library's model,
    or plain JSON when the fast start answered it.
    """
    if client_capabilities is None:
        return False, False
    if isinstance(client_capabilities, dict):
        fs = client_capabilities.get("fs")
        if not isinstance(fs, dict):
            return False, False
        return fs.get("readTextFile") is True, fs.get("writeTextFile") is True
    fs = getattr(client_capabilities, "fs", None)
    read = getattr(fs, "read_text_file", False) is True
    write = getattr(fs, "write_text_file", False) is True
    return read, write


def frontend_name(initialize_params: object) -> str:
    """How ``kfd acp`` introduces itself to the daemon: ``acp:<editor>`` after
    ``clientInfo.name`` of ``initialize`` (other frontends say an approval was
    "answered by acp:zed"), ``acp`` when the editor gave no name."""
    info = initialize_params.get("clientInfo") if isinstance(initialize_params, dict) else None
    editor = info.get("name") if isinstance(info, dict) else None
    if isinstance(editor, str) and editor.strip():
        return f"acp:{editor.strip()[:40]}"
    return "acp"
