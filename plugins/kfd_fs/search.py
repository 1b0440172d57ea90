"""The ``glob`` and ``grep`` tools: finding files and text with ripgrep.

Both honour ``.gitignore`` (and ``.ignore``, ``.rgignore``) the way ripgrep
does, include dotfiles, and skip ``.git``.
"""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING, Annotated, Literal

import msgspec

from kfd.api import PathAccess, Tool, ToolContext, ToolError, ToolResult

from .files import display_path, rule_path
from .globs import compile_glob
from .ripgrep import RgOutput, run_rg

if TYPE_CHECKING:
    from pathlib import Path

MAX_GLOB_FILES = 200
"""Files glob lists, newest first."""

DEFAULT_HEAD_LIMIT = 200
"""Lines (or files) grep returns when the model sets no head_limit."""

MAX_HEAD_LIMIT = 2000

MAX_COLUMNS = 500
"""grep lines longer than this are shown cut (minified files)."""


# --------------------------------------------------------------------------
# glob


class GlobArgs(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Arguments of glob."""

    pattern: Annotated[
        str,
        msgspec.Meta(description='E.g. "src/**/*.{js,ts}"; without "/": names at any depth.'),
    ]
    path: Annotated[str, msgspec.Meta(description="Directory (default: the workspace).")] = ""


class GlobTool(Tool[GlobArgs]):
    """List files matching a glob, newest first, skipping gitignored ones."""

    name = "glob"
    description = (
        f"Find files by glob: paths, newest first (at most {MAX_GLOB_FILES}); gitignored "
        "files are skipped."
    )
    Args = GlobArgs
    schema_budget = 400
    read_only = True

    def summary(self, args: GlobArgs) -> str:
        """The pattern, and the directory if not the workspace."""
        return f"{args.pattern} in {args.path}" if args.path else args.pattern

    def paths(self, args: GlobArgs) -> list[PathAccess]:
        """The directory searched."""
        return [PathAccess(args.path or ".", write=False)]

    def session_rule(self, args: GlobArgs) -> str:
        """``glob(<directory>)``: listing is allowed per directory, not per pattern."""
        return f"glob({rule_path(args.path)})"

    async def run(self, args: GlobArgs, ctx: ToolContext) -> ToolResult:
        """List the matching files."""
        pattern = args.pattern.strip()
        if not pattern:
            raise ToolError('pattern is empty. Give a glob such as "**/*.py".')
        if os.path.isabs(pattern) or pattern.startswith("~"):
            raise ToolError(
                "pattern must be relative. Put the directory in path and the rest in "
                "pattern, e.g. path='/abs/dir' pattern='**/*.py'."
            )
        base = ctx.resolve(args.path or ".")
        where = display_path(base, ctx.workspace)
        await asyncio.to_thread(_require_directory, base, where)
        matcher = compile_glob(pattern)
        found = await run_rg(
            ["--files", "--sortr=modified"],
            base,
            keep=MAX_GLOB_FILES,
            accept=lambda line: matcher.match(line) is not None,
        )
        if found.returncode == 2 and not found.lines:
            raise ToolError(f"Listing files in {where} failed: {found.stderr}")
        if not found.lines:
            hint = "" if "/" in pattern else " To list everything under a directory, use 'dir/**'."
            return ToolResult(output=f"No files match {pattern!r} in {_spoken(where)}.{hint}")
        prefix = "" if where == "." else where.rstrip("/") + "/"
        text = "\n".join(prefix + line for line in found.lines)
        if found.more:
            amount = f"more than {found.more:,}" if found.more_is_lower_bound else f"{found.more:,}"
            text += (
                f"\n[{amount} more files not shown; the {MAX_GLOB_FILES} newest are listed. "
                "Use a narrower pattern or path.]"
            )
        return ToolResult(output=text + _stderr_note(found))


def _require_directory(path: Path, label: str) -> None:
    if path.is_dir():
        return
    if path.exists():
        raise ToolError(f"{label} is a file, not a directory. Give its directory as path.")
    raise ToolError(f"{label} does not exist. Give an existing directory as path.")


# --------------------------------------------------------------------------
# grep

OutputMode = Literal["files_with_matches", "content", "count"]


class GrepArgs(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Arguments of grep."""

    pattern: str
    path: Annotated[str, msgspec.Meta(description="File or directory.")] = ""
    glob: Annotated[str, msgspec.Meta(description='Only files matching it, e.g. "*.py".')] = ""
    output_mode: OutputMode = "files_with_matches"
    case_insensitive: bool = False
    context: Annotated[
        int, msgspec.Meta(ge=0, le=50, description="Lines around each match (content).")
    ] = 0
    head_limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_HEAD_LIMIT)] = DEFAULT_HEAD_LIMIT


class GrepTool(Tool[GrepArgs]):
    """Search file contents with ripgrep, skipping gitignored files."""

    name = "grep"
    description = (
        "Search file contents with a ripgrep regex (no look-around or backreferences), "
        "skipping gitignored files. Output: the matching files, newest first; content: "
        "path:line:text; count: matches per file."
    )
    Args = GrepArgs
    schema_budget = 820
    read_only = True

    def summary(self, args: GrepArgs) -> str:
        """The pattern, and where it is searched."""
        where = " ".join(part for part in (args.path, args.glob) if part)
        return f"{args.pattern} in {where}" if where else args.pattern

    def paths(self, args: GrepArgs) -> list[PathAccess]:
        """The file or directory searched."""
        return [PathAccess(args.path or ".", write=False)]

    def session_rule(self, args: GrepArgs) -> str:
        """``grep(<path>)``: searching is allowed per path, not per pattern."""
        return f"grep({rule_path(args.path)})"

    async def run(self, args: GrepArgs, ctx: ToolContext) -> ToolResult:
        """Run ripgrep and return its bounded output."""
        if not args.pattern:
            raise ToolError("pattern is empty. Give a regular expression to search for.")
        target = ctx.resolve(args.path or ".")
        where = display_path(target, ctx.workspace)
        if not await asyncio.to_thread(target.exists):
            raise ToolError(f"{where} does not exist. Give an existing file or directory.")
        found = await run_rg(
            _grep_argv(args, target, ctx.workspace), ctx.workspace, keep=args.head_limit
        )
        if found.returncode == 2 and not found.lines:
            raise ToolError(_grep_failure(found.stderr))
        if not found.lines:
            scope = f" (files matching {args.glob!r})" if args.glob else ""
            return ToolResult(output=f"No matches for {args.pattern!r} in {_spoken(where)}{scope}.")
        text = "\n".join(found.lines)
        if found.more:
            amount = f"more than {found.more:,}" if found.more_is_lower_bound else f"{found.more:,}"
            text += (
                f"\n[{amount} more lines not shown (head_limit={args.head_limit}). Narrow "
                "the pattern, path or glob, or raise head_limit.]"
            )
        elif args.output_mode == "count":
            total = sum(int(line.rpartition(":")[2] or 0) for line in found.lines)
            text += f"\n[{total} matching lines in {len(found.lines)} files]"
        return ToolResult(output=text + _stderr_note(found))


def _grep_argv(args: GrepArgs, target: Path, workspace: Path) -> list[str]:
    argv = [f"--max-columns={MAX_COLUMNS}", "--max-columns-preview"]
    if args.case_insensitive:
        argv.append("--ignore-case")
    match args.output_mode:
        case "content":
            argv += ["--line-number", "--no-heading", "--with-filename", "--sort=path"]
            if args.context:
                argv.append(f"--context={args.context}")
        case "files_with_matches":
            argv += ["--files-with-matches", "--sortr=modified"]
        case "count":
            argv += ["--count", "--with-filename", "--sort=path"]
    if args.glob:
        if "/" in args.glob:
            # Path globs need --glob, which also picks up an ignored file it names.
            argv.append(f"--glob={args.glob}")
        else:
            # A type filter matches file names and, unlike --glob, keeps .gitignore in force.
            argv += [f"--type-add=kfdglob:{args.glob}", "--type=kfdglob"]
    argv += ["--regexp", args.pattern]
    if target != workspace:
        # rg prints paths as given: relative ones read like the rest of the workspace.
        argv += ["--", display_path(target, workspace)]
    return argv


def _grep_failure(stderr: str) -> str:
    if "regex parse error" in stderr or "error parsing regex" in stderr:
        return (
            f"The pattern is not a valid regular expression:\n{stderr}\n"
            "grep uses Rust regex syntax (no look-around or backreferences). Escape "
            "literal special characters such as ( [ { . * + ? with a backslash."
        )
    return f"grep failed: {stderr}"


def _spoken(where: str) -> str:
    return "the workspace" if where == "." else where


def _stderr_note(found: RgOutput) -> str:
    if found.returncode != 2 or not found.stderr:
        return ""
    first = found.stderr.splitlines()[0]
    return f"\n[Some files could not be searched: {first}]"
