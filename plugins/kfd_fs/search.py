"""The ``glob`` and ``grep`` tools: finding files and text with ripgrep.

Both honour ``.gitignore`` (and ``.ignore``, ``.rgignore``) the way ripgrep
does, include dotfiles, and skip ``.git``. Both leave out the files a read
rule denies (or asks before reading: ``.env``, private keys,
``read(**/secrets/**)``...), since no permission decision saw those files one
by one, and say how many they left out (`kfd.api.ToolContext.read_denied`).
ripgrep prints every path followed by a NUL byte (``--null``), so a path is
known exactly, whatever characters it holds.
"""

from __future__ import annotations

import asyncio
import os
import stat
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
        real = await asyncio.to_thread(_require_directory, base, where)
        matcher = compile_glob(pattern)
        left_out = LeftOut(ctx, base, real)

        def select(line: str) -> str | None:
            if matcher.match(line) is None:
                return None
            return line if left_out.readable(line) else None

        found = await run_rg(
            ["--files", "--null", "--sortr=modified"],
            base,
            keep=MAX_GLOB_FILES,
            select=select,
            separator=b"\0",
        )
        if found.returncode == 2 and not found.lines:
            raise ToolError(f"Listing files in {where} failed: {found.stderr}")
        if not found.lines:
            hint = "" if "/" in pattern else " To list everything under a directory, use 'dir/**'."
            text = f"No files match {pattern!r} in {_spoken(where)}.{hint}"
            return ToolResult(output=text + left_out.note("matching files"))
        prefix = "" if where == "." else where.rstrip("/") + "/"
        text = "\n".join(prefix + _shown(line) for line in found.lines)
        if found.more:
            amount = f"more than {found.more:,}" if found.more_is_lower_bound else f"{found.more:,}"
            text += (
                f"\n[{amount} more files not shown; the {MAX_GLOB_FILES} newest are listed. "
                "Use a narrower pattern or path.]"
            )
        return ToolResult(output=text + left_out.note("matching files") + _stderr_note(found))


def _require_directory(path: Path, label: str) -> str:
    """The real path of the directory ``path``, or a ToolError."""
    if path.is_dir():
        return os.path.realpath(path)
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
        real = await asyncio.to_thread(_real_if_exists, target)
        if real is None:
            raise ToolError(f"{where} does not exist. Give an existing file or directory.")
        left_out = LeftOut(ctx, target, real, cwd=ctx.workspace, content=True)
        listing = args.output_mode == "files_with_matches"
        records = _Records(left_out, args.context if args.output_mode == "content" else 0)
        found = await run_rg(
            _grep_argv(args, target, ctx.workspace),
            ctx.workspace,
            keep=args.head_limit,
            select=left_out.file if listing else records,
            separator=b"\0" if listing else b"\n",
        )
        if found.returncode == 2 and not found.lines:
            raise ToolError(_grep_failure(found.stderr))
        lines = [*found.lines, *records.finish()]
        if not lines:
            scope = f" (files matching {args.glob!r})" if args.glob else ""
            text = f"No matches for {args.pattern!r} in {_spoken(where)}{scope}."
            return ToolResult(output=text + left_out.note("files with matches"))
        text = "\n".join(lines)
        if found.more:
            amount = f"more than {found.more:,}" if found.more_is_lower_bound else f"{found.more:,}"
            text += (
                f"\n[{amount} more lines not shown (head_limit={args.head_limit}). Narrow "
                "the pattern, path or glob, or raise head_limit.]"
            )
        elif args.output_mode == "count":
            total = sum(int(line.rpartition(":")[2] or 0) for line in lines)
            text += f"\n[{total} matching lines in {len(lines)} files]"
        return ToolResult(output=text + left_out.note("files with matches") + _stderr_note(found))


_BINARY = ": binary file matches ("
"""How rg reports a match in a binary file it was asked to search by name."""


class _Records:
    """rg's content and count lines, ``path\\0rest``, as the model reads them.

    A path may hold newlines, which split one record into several lines:
    lines without a NUL are the beginning of the next record's path, never
    records of their own, so a crafted file name cannot pass for another
    path. Unreadable files are left out; with context, a ``--`` line
    separates groups (rg's own separators are turned off: a file may be
    named ``--``).
    """

    def __init__(self, left_out: LeftOut, context: int) -> None:
        self._left_out = left_out
        self._context = context
        self._pending: list[str] = []
        self._last: tuple[str, int] | None = None

    def __call__(self, line: str) -> str | None:
        path, nul, rest = line.partition("\0")
        if not nul:
            if sum(map(len, self._pending)) < _MAX_PATH_CHARS:
                self._pending.append(line)
            return None
        if self._pending:
            path = "\n".join([*self._pending, path])
            self._pending.clear()
        if not self._left_out.readable(path):
            return None
        digits = rest[: len(rest) - len(rest.lstrip("0123456789"))]
        after = rest[len(digits) :]
        shown = f"{_shown(path)}{'-' if after.startswith('-') else ':'}{rest}"
        number = int(digits) if digits else 0
        last, self._last = self._last, (path, number)
        if self._context and last is not None and (last[0] != path or number != last[1] + 1):
            return "--\n" + shown
        return shown

    def finish(self) -> list[str]:
        """What is left when rg is done: its note about a binary file, if readable."""
        text = "\n".join(self._pending)
        self._pending.clear()
        path, found, _ = text.partition(_BINARY)
        if found and self._left_out.readable(path):
            return [_shown(path) + text[len(path) :]]
        return []


_MAX_PATH_CHARS = 64 * 1024

HARD_LINKED = "files with several hard links"
"""What a grep result names for the files it left out for their hard links."""


def _shown(path: str) -> str:
    """A path as the model reads it: one line, whatever characters it holds."""
    return path.replace("\n", "\\n").replace("\r", "\\r")


class LeftOut:
    """Which files a read rule keeps out of a result, and the note that says so.

    Paths arrive as rg prints them: relative to ``cwd`` (the directory rg
    runs in), or absolute. rg does not follow symlinks below the ``root`` it
    searches, so a file's real path is the root's real path plus the rest:
    both spellings are checked, as the permission engine checks both.
    """

    def __init__(
        self,
        ctx: ToolContext,
        root: Path,
        real_root: str,
        cwd: Path | None = None,
        *,
        content: bool = False,
    ):
        """``content``: what is shown comes from the files' content (grep, in every
        mode: even a count says whether a secret matched), so a file with several
        hard links is left out too while read rules apply: its content may be a
        denied file's under another name (``read`` asks about it)."""
        self._ctx = ctx
        self._root = os.path.normpath(root)
        self._real_root = real_root
        self._cwd = str(cwd if cwd is not None else root)
        self._content = content and ctx.read_denied is not None
        self._linked: dict[str, bool] = {}
        self.files: set[str] = set()
        self.rules: set[str] = set()

    def readable(self, shown: str) -> bool:
        """Whether the file rg printed as ``shown`` may be in the result."""
        path = os.path.normpath(os.path.join(self._cwd, shown))
        rule = self._ctx.read_denied(path)
        if rule is None and self._real_root != self._root:
            real = self._real_of(path)
            rule = self._ctx.read_denied(real) if real != path else None
        if rule is None and self._content and self._hard_linked(path):
            rule = HARD_LINKED
        if rule is None:
            return True
        self.files.add(path)
        self.rules.add(rule)
        return False

    def _hard_linked(self, path: str) -> bool:
        linked = self._linked.get(path)
        if linked is None:
            try:
                info = os.stat(path)  # one stat per file rg found something in
            except OSError:
                info = None
            linked = info is not None and stat.S_ISREG(info.st_mode) and info.st_nlink > 1
            self._linked[path] = linked
        return linked

    def file(self, shown: str) -> str | None:
        """``shown`` if it may be listed, else None (a `run_rg` select)."""
        return _shown(shown) if self.readable(shown) else None

    def _real_of(self, path: str) -> str:
        root = self._root
        if path == root:
            return self._real_root
        if path.startswith(root.rstrip("/") + "/"):
            return os.path.join(self._real_root, path[len(root.rstrip("/")) + 1 :])
        return path

    def note(self, what: str) -> str:
        """The line that says what was left out ("" when nothing was)."""
        if not self.files:
            return ""
        count = len(self.files)
        rules = ", ".join(sorted(self.rules)[:5]) + (" ..." if len(self.rules) > 5 else "")
        noun = what if count != 1 else what.replace("files", "file", 1)
        return (
            f"\n[{count} {noun} left out by read rules ({rules}): their content is not "
            "shown to you; do not try to read them another way]"
        )


def _real_if_exists(path: Path) -> str | None:
    return os.path.realpath(path) if path.exists() else None


def _grep_argv(args: GrepArgs, target: Path, workspace: Path) -> list[str]:
    argv = [f"--max-columns={MAX_COLUMNS}", "--max-columns-preview", "--null"]
    argv.append("--no-context-separator")  # `_Records` marks the groups itself
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
