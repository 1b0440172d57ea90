"""The shadow repository: a git directory of kfd's own that watches a workspace.

One per project, under ``$XDG_STATE_HOME/kfd/checkpoints/``, outside the
user's git history: git runs with ``GIT_DIR`` pointing there and
``GIT_WORK_TREE`` at the project, so the user's index, stash, branches,
hooks and working tree state are never read as configuration nor written.
Its index is kfd's record of the workspace as last seen; `ShadowRepo.sync`
asks ``git status`` what differs from that record (tracked and untracked
files, ``.gitignore`` honoured: incremental, stat-based, fast), keeps the
new contents as blobs and moves the record forward. A sync before a call
absorbs whatever changed meanwhile (the user's edits); a sync after it
returns exactly what the call changed, with the content before and after.

Git runs as `kfd.git.run` runs it, with nothing of the workspace's that could
start a program (the program found outside the workspace, the same ``-c``
overrides): the only configuration is the shadow's own (system and global files off, hooks,
fsmonitor, pagers and drivers switched off on the command line), the
attributes that could convert content (filters, line endings, encodings)
are unset for every path by the shadow's ``info/attributes``, which wins
over the workspace's ``.gitattributes``, submodules are ignored and never
entered, the environment is built from nothing, and pathspecs are literal.
Files past the size limit and nested repositories are left out (listed in
the shadow's ``info/exclude``) and reported as not kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

from kfd.checkpoints import objects
from kfd.checkpoints.objects import ABSENT, State, unkept
from kfd.git.run import OVERRIDES as GIT_OVERRIDES
from kfd.git.run import program, safe_path

log = logging.getLogger(__name__)

TIMEOUT_S = 120.0
"""A first look at a large workspace hashes every file: give git time."""

OVERRIDES = (
    *(o for o in GIT_OVERRIDES if not o.startswith("core.untrackedCache=")),
    "core.autocrlf=false",
    "core.safecrlf=false",
    "gc.auto=0",
)
"""``-c`` settings on every call: `kfd.git.run`'s (no program named by any configuration
runs), but the untracked cache, which speeds up this index of kfd's own."""

CONFIG = """\
[core]
\trepositoryformatversion = 0
\tfilemode = true
\tbare = false
\tlogallrefupdates = false
\tsymlinks = true
\tuntrackedCache = true
\tquotePath = false
[gc]
\tauto = 0
[index]
\tversion = 4
"""

ATTRIBUTES = "* -text !eol -filter -ident !working-tree-encoding\n"
"""Unset for every path: content is kept byte for byte, never converted."""


class GitFailed(Exception):
    """Git is missing, failed or timed out; the message says which and why."""


class Change(NamedTuple):
    """One path a call changed: what it held before, and after."""

    path: str
    """Relative to the project root, with ``/``."""
    before: State
    after: State


def escape_exclude(path: str) -> str:
    """An ``info/exclude`` line matching exactly ``path`` (anchored, globs escaped)."""
    escaped = "".join("\\" + c if c in "\\*?[]!# " else c for c in path)
    return "/" + escaped


class ShadowRepo:
    """kfd's git directory for one project root (optionally limited to a subdirectory)."""

    def __init__(
        self,
        git_dir: Path,
        root: Path,
        *,
        scope: str = "",
        max_file_bytes: int = 10 * 1024 * 1024,
        environ: Mapping[str, str] | None = None,
        lock: asyncio.Lock | None = None,
    ) -> None:
        self.git_dir = git_dir
        self.root = root
        self.scope = scope
        """The workspace's path under ``root`` ("" for all of it): what is watched."""
        self.max_file_bytes = max_file_bytes
        self.lock = lock or asyncio.Lock()
        """Held for each git step: one index, one writer (shared by every view of it)."""
        environ = os.environ if environ is None else environ
        self._env = {
            "PATH": os.pathsep.join(safe_path(root, environ)) or os.defpath,
            "LC_ALL": "C",
            "GIT_DIR": str(git_dir),
            "GIT_WORK_TREE": str(root),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_ATTR_NOSYSTEM": "1",
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_NO_REPLACE_OBJECTS": "1",
            "GIT_LITERAL_PATHSPECS": "1",
        }
        for name in ("HOME", "XDG_CONFIG_HOME"):  # they only locate the user's global ignore file
            value = environ.get(name, "")
            if os.path.isabs(value):
                self._env[name] = value
        self._git = program(root, environ)
        self._bare_env = {k: v for k, v in self._env.items() if k != "GIT_WORK_TREE"}

    @property
    def objects(self) -> Path:
        """Where blobs are written."""
        return self.git_dir / "objects"

    # -- git -------------------------------------------------------------------

    async def git(self, *args: str, stdin: bytes | None = None) -> bytes:
        """Run git on the shadow; its output. `GitFailed` when it fails."""
        _, out = await self.run(*args, stdin=stdin)
        return out

    async def run(
        self,
        *args: str,
        stdin: bytes | None = None,
        ok: Iterable[int] = (0,),
        bare: bool = False,
    ) -> tuple[int, bytes]:
        """Run git on the shadow; its exit status (one of ``ok``) and output.

        ``bare``: without the work tree (``git init`` refuses one)."""
        if self._git is None:
            raise GitFailed("git is not installed (checkpoints need it: apt install git)")
        command = [self._git, *(p for s in OVERRIDES for p in ("-c", s)), *args]
        try:
            process = await asyncio.create_subprocess_exec(
                *command,
                cwd=self.root,
                env=self._bare_env if bare else self._env,
                stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            raise GitFailed(f"git cannot start: {exc}") from exc
        try:
            async with asyncio.timeout(TIMEOUT_S):
                out, err = await process.communicate(stdin)
        except (TimeoutError, asyncio.CancelledError) as exc:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await asyncio.shield(process.wait())
            if isinstance(exc, asyncio.CancelledError):
                raise
            raise GitFailed(f"git {args[0]} did not finish within {TIMEOUT_S:g} s") from None
        if (process.returncode or 0) not in set(ok):
            message = err.decode("utf-8", "replace").strip().splitlines()[-1:] or ["?"]
            raise GitFailed(f"git {args[0]} failed ({process.returncode}): {message[0]}")
        return process.returncode or 0, out

    async def ensure(self) -> None:
        """Create the shadow repository if it does not exist yet."""
        if (self.git_dir / "HEAD").exists():
            return
        self.git_dir.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        await self.run("init", "--quiet", "--bare", "--template=", str(self.git_dir), bare=True)
        await asyncio.to_thread(self._write_settings)

    def _write_settings(self) -> None:
        (self.git_dir / "config").write_text(CONFIG)
        info = self.git_dir / "info"
        info.mkdir(exist_ok=True)
        (info / "attributes").write_text(ATTRIBUTES)
        (info / "exclude").touch()

    # -- watching the workspace -----------------------------------------------

    async def sync(self, *, record: bool) -> list[Change]:
        """Bring the shadow's record up to the workspace; what changed since it was taken.

        ``record``: read and keep the new content of every changed path (the
        changes of a call); otherwise only move the record forward (the user's
        changes, absorbed before a call) and return the paths without states.
        """
        await self.ensure()
        async with self.lock:
            listing = await self.git(
                "status",
                "--porcelain=v2",
                "-z",
                "--untracked-files=all",
                "--no-renames",
                "--ignore-submodules=all",
                "--",
                self.scope or ".",
            )
            seen = parse_status(listing)
            return await self._absorb(seen, record)

    async def _absorb(self, seen: list[tuple[str, State]], record: bool) -> list[Change]:
        def look() -> tuple[list[Change], list[str], list[str]]:
            changes: list[Change] = []
            add: list[str] = []
            exclude: list[str] = []
            for path, before in seen:
                if path.endswith("/"):  # a nested repository: not ours to keep
                    exclude.append(path.rstrip("/"))
                    continue
                if record:
                    after, _ = objects.read_state(
                        self.root, path, self.objects, self.max_file_bytes
                    )
                else:
                    after = self._cheap_state(path)
                if not after.kept:
                    exclude.append(path)
                else:
                    add.append(path)
                changes.append(Change(path, before, after))
            # A name with a line break cannot be one exclude line (it would become two
            # patterns a repository chose): such a path is looked at again next time.
            lines = [escape_exclude(p) + "\n" for p in exclude if not _breaks(p)]
            if lines:
                with open(self.git_dir / "info" / "exclude", "a", encoding="utf-8") as handle:
                    handle.writelines(lines)
            return changes, add, exclude

        changes, add, exclude = await asyncio.to_thread(look)
        dropped = [c.path for c in changes if not c.after.kept and c.before.exists]
        if dropped:
            await self.git(
                "rm", "--cached", "-q", "--ignore-unmatch", "--pathspec-from-file=-",
                "--pathspec-file-nul", stdin=_nul(dropped),
            )  # fmt: skip
        if add:
            await self.git(
                "add", "-A", "--pathspec-from-file=-", "--pathspec-file-nul", stdin=_nul(add)
            )
        if exclude:
            log.info("checkpoints of %s leave out %d path(s)", self.root, len(exclude))
        return changes

    def _cheap_state(self, path: str) -> State:
        """Enough of a path's state to decide whether it is kept (no content read)."""
        try:
            info = os.lstat(self.root / path)
        except OSError:
            return ABSENT
        mode = objects.mode_of(info)
        if mode is None:
            return unkept("not a regular file or a link")
        if mode != objects.SYMLINK and info.st_size > self.max_file_bytes:
            return unkept("larger than the limit")
        return State("", mode)

    def state_of(self, path: str) -> State:
        """The state of one path now, its content kept (blocking: call from a thread)."""
        state, _ = objects.read_state(self.root, path, self.objects, self.max_file_bytes)
        return state

    # -- keeping and reading --------------------------------------------------

    async def keep(self, ref: str, blobs: Iterable[str]) -> None:
        """Point ``ref`` at a tree of ``blobs``: they survive `gc` while the ref exists."""
        wanted = sorted({sha for sha in blobs if sha})

        def write() -> None:
            tree = objects.write_tree(self.objects, wanted)
            path = self.git_dir / ref
            path.parent.mkdir(parents=True, exist_ok=True)
            temp = path.with_name(path.name + ".lock")
            temp.write_text(tree + "\n")
            os.replace(temp, path)

        async with self.lock:
            await asyncio.to_thread(write)

    async def drop(self, refs: Sequence[str]) -> None:
        """Delete refs (their blobs go at the next `gc`)."""
        if not refs:
            return
        async with self.lock:
            await self.git(
                "update-ref", "--stdin", stdin="".join(f"delete {r}\n" for r in refs).encode()
            )

    async def gc(self) -> None:
        """Pack what refs and the index reach; drop the rest at once."""
        async with self.lock:
            await self.git("gc", "--quiet", "--prune=now")

    async def blobs(self, shas: Iterable[str]) -> dict[str, bytes]:
        """The contents of blobs by id (missing ones are left out)."""
        wanted = sorted({sha for sha in shas if sha})
        found: dict[str, bytes] = {}

        def loose() -> None:
            for sha in wanted:
                data = objects.read_loose(self.objects, sha)
                if data is not None:
                    found[sha] = data

        await asyncio.to_thread(loose)
        rest = [sha for sha in wanted if sha not in found]
        if rest:
            asked = "".join(s + "\n" for s in rest).encode()
            out = await self.git("cat-file", "--batch", stdin=asked)
            found.update(parse_batch(out))
        return found

    async def merge(self, ours: bytes, base: bytes, theirs: bytes) -> tuple[bytes, bool]:
        """Three-way merge (``git merge-file``): the merged bytes, and whether it was clean.

        Where both sides changed the same lines, the result holds conflict
        markers naming "your version" and "before the turn".
        """
        import tempfile

        def write(directory: str) -> list[str]:
            names = []
            for label, data in (("ours", ours), ("base", base), ("theirs", theirs)):
                path = os.path.join(directory, label)
                with open(path, "wb") as handle:
                    handle.write(data)
                names.append(path)
            return names

        with tempfile.TemporaryDirectory(prefix="kfd-merge-") as directory:
            names = await asyncio.to_thread(write, directory)
            conflicts, out = await self.run(
                "merge-file", "-p", "-L", "your version", "-L", "after the turn",
                "-L", "before the turn", *names, ok=range(0, 128),
            )  # fmt: skip
        return out, conflicts == 0

    def size(self) -> int:
        """Bytes the shadow repository takes on disk (blocking)."""
        total = 0
        for directory, _, files in os.walk(self.git_dir):
            for name in files:
                with contextlib.suppress(OSError):
                    total += os.lstat(os.path.join(directory, name)).st_size
        return total


def _breaks(path: str) -> bool:
    return "\n" in path or "\r" in path


def _nul(paths: Iterable[str]) -> bytes:
    return b"".join(os.fsencode(p) + b"\0" for p in paths)


def parse_status(listing: bytes) -> list[tuple[str, State]]:
    """Paths ``git status --porcelain=v2 -z`` reports as changed in the work tree,
    each with what the shadow's index held for it (`ABSENT` for an untracked path)."""
    found: list[tuple[str, State]] = []
    fields = listing.split(b"\0")
    index = 0
    while index < len(fields):
        entry = fields[index]
        index += 1
        if entry.startswith(b"? "):
            found.append((os.fsdecode(entry[2:]), ABSENT))
        elif entry.startswith(b"1 "):
            parts = entry.split(b" ", 8)
            if len(parts) < 9:
                continue
            worktree = parts[1][1:2]
            if worktree == b".":
                continue
            mode_index, sha_index = int(parts[4], 8), parts[7].decode()
            found.append((os.fsdecode(parts[8]), State(sha_index, mode_index)))
        elif entry.startswith(b"2 "):  # a rename (not asked for): skip its second path
            index += 1
    return found


def parse_batch(out: bytes) -> dict[str, bytes]:
    """Blobs from ``git cat-file --batch`` output (missing objects are skipped)."""
    found: dict[str, bytes] = {}
    position = 0
    while position < len(out):
        end = out.index(b"\n", position)
        header = out[position:end].split()
        position = end + 1
        if len(header) == 2 and header[1] == b"missing":
            continue
        size = int(header[2])
        if header[1] == b"blob":
            found[header[0].decode()] = out[position : position + size]
        position += size + 1
    return found
