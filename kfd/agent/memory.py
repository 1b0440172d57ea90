"""Memory: facts kept across sessions, and the model's remember/recall/forget tools.

The same rules hold whether the model or the user adds a fact (the tools here,
the ``memory.*`` requests in the daemon): text is one short, self-contained
statement, secrets are redacted before it is stored (`kfd.redact`), and a
project fact belongs to the repository root, so every session of the project
sees it and no session of another project does.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from kfd.agent.recall import project_of
from kfd.api import ApprovalNeeded, Preview, Tool, ToolContext, ToolError, ToolResult
from kfd.protocol import Memory, MemoryScope
from kfd.redact import redact
from kfd.store.db import Store
from kfd.store.memory import MemoryStore

MAX_MEMORY_CHARS = 1_000
"""A fact is a sentence or two; longer text belongs in a project file."""


class InvalidMemory(ValueError):
    """The fact cannot be stored as given; the message says why."""


async def add_memory(
    store: Store,
    text: str,
    *,
    scope: MemoryScope,
    workspace: str,
    source: Literal["model", "user"],
    session: str | None = None,
) -> tuple[Memory, bool, int]:
    """Redact and store a fact: (memory, newly stored, secrets redacted)."""
    text = " ".join(text.split())
    if not text:
        raise InvalidMemory("the fact is empty; say what should be remembered")
    if len(text) > MAX_MEMORY_CHARS:
        raise InvalidMemory(
            f"the fact is {len(text)} characters; keep it under {MAX_MEMORY_CHARS} "
            "(one or two sentences; put longer guidance in AGENTS.md)"
        )
    cleaned = redact(text)
    project = await project_of(workspace)
    memory, created = await MemoryStore(store).add(
        cleaned.text, scope=scope, project=project, source=source, session=session
    )
    return memory, created, cleaned.count


def describe(memory: Memory) -> str:
    """One line naming a fact, its id and scope, for the model or a terminal."""
    return f"[{memory.id}] ({memory.scope}) {memory.text}"


class RememberArgs(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    text: Annotated[
        str,
        msgspec.Meta(
            min_length=1,
            max_length=MAX_MEMORY_CHARS,
            description="One short fact that stands alone.",
        ),
    ]
    scope: Annotated[MemoryScope, msgspec.Meta(description="global: every project.")] = "project"


GLOBAL_GRANT = "global memory"
"""What the user grants for the model to keep a fact for every project."""


class RememberTool(Tool[RememberArgs]):
    """Keep a fact for later sessions of this project (or of every project)."""

    name = "remember"
    description = (
        "Keep a fact for later sessions: a convention, a command that works, a decision, "
        "the user's preference. Never secrets."
    )
    Args = RememberArgs
    schema_budget = 420
    writes_only_paths = True  # it writes the store, no file: nothing to checkpoint

    def __init__(self, store: Store) -> None:
        self._store = store

    def summary(self, args: RememberArgs) -> str:
        return args.text if len(args.text) <= 80 else args.text[:79] + "…"

    def session_rule(self, args: RememberArgs) -> str:
        return "remember"  # the text differs every time: allow remembering as such

    async def preview(self, args: RememberArgs, ctx: ToolContext) -> Preview:
        return Preview(summary=f"remember ({args.scope}): {args.text}")

    async def run(self, args: RememberArgs, ctx: ToolContext) -> ToolResult:
        if args.scope == "global" and GLOBAL_GRANT not in ctx.granted:
            # Every later session of every project reads it, as an instruction file
            # is read (writing one always asks): so does this, in every mode.
            raise ApprovalNeeded(
                "a global fact reaches every later session of every project",
                grant=GLOBAL_GRANT,
            )
        try:
            memory, created, secrets = await add_memory(
                self._store,
                args.text,
                scope=args.scope,
                workspace=str(ctx.workspace),
                source="model",
                session=ctx.session_id,
            )
        except InvalidMemory as exc:
            raise ToolError(str(exc)) from None
        said = "remembered" if created else "already remembered"
        note = f" ({secrets} secret(s) redacted before storing)" if secrets else ""
        return ToolResult(output=f"{said}: {describe(memory)}{note}")


class RecallArgs(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    query: Annotated[str, msgspec.Meta(min_length=1, max_length=2_000)]
    limit: Annotated[int, msgspec.Meta(ge=1, le=50)] = 10


class RecallTool(Tool[RecallArgs]):
    """Search this project's and the global remembered facts."""

    name = "recall"
    description = "Search the facts remembered for this project and all projects, with ids."
    Args = RecallArgs
    schema_budget = 280
    read_only = True

    def __init__(self, store: Store) -> None:
        self._store = store

    def summary(self, args: RecallArgs) -> str:
        return args.query[:80]

    async def run(self, args: RecallArgs, ctx: ToolContext) -> ToolResult:
        project = await project_of(str(ctx.workspace))
        found = await MemoryStore(self._store).search(args.query, project=project, limit=args.limit)
        if not found:
            return ToolResult(output="nothing remembered matches")
        return ToolResult(output="\n".join(describe(memory) for memory in found))


class ForgetArgs(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    id: Annotated[int, msgspec.Meta(ge=1)]


class ForgetTool(Tool[ForgetArgs]):
    """Delete a remembered fact of this project (or a global one) by id."""

    name = "forget"
    description = "Delete a wrong or outdated fact by its id (from recall or <memory>)."
    Args = ForgetArgs
    schema_budget = 220
    writes_only_paths = True  # it writes the store, no file: nothing to checkpoint

    def __init__(self, store: Store) -> None:
        self._store = store

    def summary(self, args: ForgetArgs) -> str:
        return str(args.id)

    def session_rule(self, args: ForgetArgs) -> str:
        return "forget"

    async def preview(self, args: ForgetArgs, ctx: ToolContext) -> Preview:
        memory = await MemoryStore(self._store).get(args.id)
        what = describe(memory) if memory is not None else f"[{args.id}] (no such fact)"
        return Preview(summary=f"forget {what}")

    async def run(self, args: ForgetArgs, ctx: ToolContext) -> ToolResult:
        memories = MemoryStore(self._store)
        memory = await memories.get(args.id)
        project = await project_of(str(ctx.workspace))
        if memory is None or (memory.scope == "project" and memory.project != project):
            # Another project's facts are not this session's to see or delete.
            raise ToolError(f"no remembered fact {args.id} in this project; recall lists them")
        await memories.forget(args.id)
        return ToolResult(output=f"forgot {describe(memory)}")
