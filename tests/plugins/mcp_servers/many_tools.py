"""An MCP server with many tools, as a big real one (an issue tracker's) has.

Run as ``python many_tools.py [COUNT]`` (stdio; default 88 tools). Tools are
``<verb>_<thing>`` for the verbs and things below, each with a one-sentence
description and the arguments such a tool takes; every call answers with its
name and arguments, so a test sees exactly what arrived. The benchmark
``bench/context_overhead.py`` and the ``tool_search`` tests use it beside the
reference "everything" server.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import MCPServer
from pydantic import Field

THINGS = [
    "issue",
    "pull_request",
    "comment",
    "label",
    "milestone",
    "project",
    "release",
    "branch",
    "workflow_run",
    "deployment",
    "webhook",
    "team",
]
VERBS = ["list", "get", "create", "update", "delete", "search", "close", "assign"]

server = MCPServer("many")


def _answer(name: str, arguments: dict[str, Any]) -> str:
    return f"{name}: {json.dumps(arguments, sort_keys=True)}"


def _list(name: str) -> Callable[..., str]:
    def tool(
        repo: Annotated[str, Field(description="Repository as owner/name.")],
        state: Literal["open", "closed", "all"] = "open",
        per_page: Annotated[int, Field(ge=1, le=100, description="Results per page.")] = 30,
        page: int = 1,
    ) -> str:
        return _answer(name, {"repo": repo, "state": state, "per_page": per_page, "page": page})

    return tool


def _get(name: str) -> Callable[..., str]:
    def tool(
        repo: Annotated[str, Field(description="Repository as owner/name.")],
        number: Annotated[int, Field(description="Its number in the repository.")],
    ) -> str:
        return _answer(name, {"repo": repo, "number": number})

    return tool


def _create(name: str) -> Callable[..., str]:
    def tool(
        repo: Annotated[str, Field(description="Repository as owner/name.")],
        title: str,
        body: Annotated[str, Field(description="Markdown text.")] = "",
        labels: list[str] | None = None,
    ) -> str:
        return _answer(name, {"repo": repo, "title": title, "body": body, "labels": labels})

    return tool


def _update(name: str) -> Callable[..., str]:
    def tool(
        repo: Annotated[str, Field(description="Repository as owner/name.")],
        number: int,
        title: str | None = None,
        body: str | None = None,
    ) -> str:
        return _answer(name, {"repo": repo, "number": number, "title": title, "body": body})

    return tool


def _delete(name: str) -> Callable[..., str]:
    def tool(repo: str, number: int) -> str:
        return _answer(name, {"repo": repo, "number": number})

    return tool


def _search(name: str) -> Callable[..., str]:
    def tool(
        query: Annotated[str, Field(description="Search terms, with qualifiers such as repo:.")],
        sort: Literal["created", "updated", "relevance"] = "relevance",
    ) -> str:
        return _answer(name, {"query": query, "sort": sort})

    return tool


def _close(name: str) -> Callable[..., str]:
    def tool(
        repo: str, number: int, reason: Literal["completed", "not_planned"] = "completed"
    ) -> str:
        return _answer(name, {"repo": repo, "number": number, "reason": reason})

    return tool


def _assign(name: str) -> Callable[..., str]:
    def tool(repo: str, number: int, assignees: list[str]) -> str:
        return _answer(name, {"repo": repo, "number": number, "assignees": assignees})

    return tool


MAKERS = {
    "list": (_list, "List the {things} of a repository, newest first."),
    "get": (_get, "Get one {thing} of a repository with all its fields."),
    "create": (_create, "Create {a_thing} in a repository."),
    "update": (_update, "Change the title or body of {a_thing}."),
    "delete": (_delete, "Delete {a_thing} from a repository; this cannot be undone."),
    "search": (_search, "Search {things} across repositories with the tracker's query syntax."),
    "close": (_close, "Close {a_thing}, saying whether it was completed."),
    "assign": (_assign, "Assign people to {a_thing}."),
}


def register(count: int) -> None:
    made = 0
    for verb in VERBS:
        for thing in THINGS:
            if made == count:
                return
            maker, description = MAKERS[verb]
            name = f"{verb}_{thing}"
            words = thing.replace("_", " ")
            server.add_tool(
                maker(name),
                name=name,
                description=description.format(
                    thing=words,
                    things=words + "s",
                    a_thing=("an " if words[0] in "aeiou" else "a ") + words,
                ),
            )
            made += 1


if __name__ == "__main__":
    register(int(sys.argv[1]) if len(sys.argv) > 1 else 88)
    server.run()
