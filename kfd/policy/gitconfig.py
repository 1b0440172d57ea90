"""What a repository's own git configuration makes a read-only git command do.

A repository that arrives with its ``.git`` (a tarball, a copied checkout, a
``.git`` a command wrote before the sandbox protected it) brings its
configuration, and git obeys it for every command: ``core.fsmonitor`` runs a
program on ``git status``, ``diff.<driver>.textconv`` and ``diff.external`` on
``git diff`` and ``git log -p``, ``filter.<driver>.clean`` on ``git status``;
``core.worktree`` points git at files outside the workspace,
``blame.ignoreRevsFile`` and ``mailmap.file`` make it read files the
repository names, and ``include.path`` brings more configuration. Any of
them breaks what kfd promises of a read-only git command, so `running_keys`
names them and the engine asks (`kfd.policy.judge_bash`). The user's own
(global and system) configuration is theirs and is not read here.

The parser is ours: no library reads git's format without running git (which
would obey the configuration being judged), and only the key names and a few
boolean values matter. It fails closed: a line it cannot read is reported as
such, and the engine asks.
"""

from __future__ import annotations

import functools
import os
import re
import stat
from collections.abc import Iterable
from pathlib import Path

from kfd.git import repository
from kfd.policy.hookspath import guarded, hooks_path
from kfd.policy.stamped import Kept
from kfd.regular import read_regular

__all__ = [
    "AUTOMATIC_HOOKS",
    "MAX_CONFIG_BYTES",
    "NAMED_FILES",
    "SYSTEM_FILE",
    "automatic_hooks",
    "config_files",
    "entries_in_effect",
    "file_entries",
    "hooks_directories",
    "hooks_path_values",
    "repository_files",
    "repository_keys",
    "running_keys",
    "user_files",
    "user_named_files",
]

MAX_CONFIG_BYTES = 1024 * 1024
"""A larger configuration file is not read (it is reported as unreadable)."""

_HOOKS_PATH = "core.hookspath"
SYSTEM_FILE = "/etc/gitconfig"
"""The system's configuration file (git's ``$(prefix)/etc/gitconfig`` as Debian builds it)."""

_RUNS = re.compile(
    # Programs git runs: on read-only commands (fsmonitor, textconv, filters, ...)
    # and on any other (editors, pagers, transports, credential helpers, tools).
    r"core\.(fsmonitor|worktree|alternaterefscommand|askpass|editor|pager|sshcommand"
    r"|gitproxy)|pager\..*|sequence\.editor|diff\.(external|tool|guitool)"
    r"|diff\..*\.(command|textconv)|merge\.(tool|guitool)|merge\..*\.driver"
    r"|(diff|merge)tool\..*\.(cmd|path)|filter\..*\.(clean|smudge|process)"
    r"|gpg\.(.*\.)?program|gpg\.ssh\..*|credential\.(.*\.)?helper|interactive\.difffilter"
    r"|remote\..*\.(uploadpack|receivepack)|protocol\.(.*\.)?allow|uploadpack\.packobjectshook"
    r"|tar\..*\.command|trailer\..*\.(command|cmd)|guitool\..*\.cmd|imap\.tunnel"
    r"|sendemail\..*|(help|web)\.browser|instaweb\..*|browser\..*\.(cmd|path)"
    # Program names git builds from a value (git-remote-<vcs>, git-merge-<strategy>):
    # with a `/` in it, a path from where git runs.
    r"|remote\..*\.vcs|branch\..*\.mergeoptions|pull\.(twohead|octopus)"
    r"|man\.viewer|man\..*\.(cmd|path)"
    # Files the repository names for git to read (or copy: templates hold hooks), and
    # more configuration.
    r"|include\.path|includeif\..*\.path|blame\.ignorerevsfile|mailmap\.(file|blob)"
    r"|core\.(attributesfile|excludesfile)|diff\.orderfile|commit\.template"
    r"|init\.templatedir|format\.(signaturefile|outputdirectory)"
    r"|(fetch|receive|fsck)\.fsck\.skiplist|fsck\.skiplist"
    r"|http\.(.*\.)?(cookiefile|sslcert|sslkey|sslcainfo|sslcapath|proxysslcert"
    r"|proxysslkey|proxysslcainfo)",
    re.DOTALL,
)
"""Keys (section and name in lower case, any subsection) that make git run a program,
read files the repository names, or read more configuration: every such key of git's
own list (``git help --config``; `tests/unit/test_git_config_keys.py` holds each of
them to this or to the reviewed inert ones, so a git that knows more fails it).
``core.hooksPath`` is read for the hooks it names (`automatic_hooks`)."""
_COMMAND_VALUES = re.compile(r"alias\..*|submodule\..*\.update", re.DOTALL)
"""Keys that run a shell command when their value starts with ``!``."""
_BOOLEANS = frozenset({"", "true", "false", "yes", "no", "on", "off", "1", "0"})
"""``core.fsmonitor`` values that name no program (git's own daemon, or none)."""


NAMED_FILES = {
    "blame.ignorerevsfile": frozenset({"blame", "annotate"}),
    "mailmap.file": frozenset({"log", "shortlog", "show", "blame", "annotate", "whatchanged"}),
}
"""Keys of the user's own configuration naming a file git reads, relative to the work
tree when not absolute (the repository decides what is there: a link to ``.env``,
whose content ``git blame`` then prints in an error), and the git commands that
read it."""


def running_keys(text: str, worktree_in: tuple[str, str] | None = None) -> list[str]:
    """The keys of configuration ``text`` that `_RUNS` names (``core.fsmonitor``,
    ``diff.pdf.textconv``), or ``line N`` for each line it cannot read.

    ``worktree_in``: (the directory of the file, a directory) for a submodule's git
    directory, whose ``core.worktree`` git itself sets to the submodule's checkout:
    not named when it leads inside that directory (the superproject's work tree)."""
    return _running(_entries(text), worktree_in)


def repository_keys(top: str, home: str = "") -> list[str]:
    """`running_keys` of every configuration file git reads in the repository at
    ``top`` (`config_files`), each with its file, and the hooks git runs there on
    any command (`AUTOMATIC_HOOKS`); one entry saying so when kfd cannot tell
    which files those are, or cannot read one. Kept while the entries it was read
    from hold (`kfd.policy.stamped`). ``home``: whose ``core.hooksPath`` counts
    too (a relative one is the repository's to fill)."""
    found = list(_configuration.get(top, lambda: _read_configuration(top))[0])
    for name in user_files(home) if home else ():
        for value in hooks_path_values(name):
            if directory := hooks_path(value, top, home):
                found += automatic_hooks(directory)
    return found


AUTOMATIC_HOOKS = ("post-index-change", "reference-transaction")
"""Hooks git runs on commands that ask for no change: ``git status`` and ``git diff``
rewrite a stale index (``post-index-change``), any ref update runs
``reference-transaction``. A repository that came with its ``.git`` brings them."""


def automatic_hooks(directory: str) -> list[str]:
    """The `AUTOMATIC_HOOKS` git would run from hooks ``directory`` (executable files)."""
    found: list[str] = []
    for name in AUTOMATIC_HOOKS:
        try:
            info = os.stat(os.path.join(directory, name))
        except (OSError, ValueError):
            continue
        if stat.S_ISREG(info.st_mode) and info.st_mode & 0o111:
            found.append(f"hook {name} in {directory}")
    return found


def hooks_directories(top: str, home: str) -> list[str]:
    """The directories inside the work tree at ``top`` that git runs hooks from:
    each ``core.hooksPath`` of the repository's, the user's and the system's
    configuration (any of them may be the one git takes), as git expands it
    (`kfd.policy.hookspath`), with the directory holding it when that is not ``top``
    itself (husky keeps the hooks its ``.husky/_`` calls in ``.husky``); for a
    value naming ``top`` itself, the hook names in it. Real paths."""
    values = list(_configuration.get(top, lambda: _read_configuration(top))[1])
    for name in (*user_files(home), SYSTEM_FILE):
        values += hooks_path_values(name)
    found: list[str] = []
    for value in dict.fromkeys(values):
        directory = hooks_path(value, top, home)
        if directory is None:
            continue
        if directory == top:
            found += guarded(directory, top)
        elif directory.startswith(top.rstrip(os.sep) + os.sep):
            found.append(directory)
            parent = os.path.dirname(directory)
            if parent != top:
                found.append(parent)
    return found


def hooks_path_values(name: str) -> list[str]:
    """The ``core.hooksPath`` values configuration file ``name`` sets (none when it is
    missing or unreadable)."""
    return [value for key, value in file_entries(name) or () if key == _HOOKS_PATH and value]


_Configuration = tuple[tuple[str, ...], tuple[str, ...]]
_configuration: Kept[_Configuration] = Kept()


def _read_configuration(top: str) -> tuple[_Configuration, list[str] | None]:
    """`repository_keys` and the repository's ``core.hooksPath`` values, and the
    entries they depend on: kept only for the plain layout, a ``.git`` directory
    without submodules (a ``.git`` file, a linked worktree or submodules' git
    directories are read at every decision)."""
    files = config_files(top)
    if files is None:
        unknown = f"{top}/.git (kfd cannot tell which configuration git reads there)"
        return ((unknown,), ()), None
    found: list[str] = []
    hooks: list[str] = []
    for name in files:
        entries = file_entries(name)
        if entries is None:
            found.append(f"{name} (unreadable)")
            continue
        module = f"{os.sep}modules{os.sep}" in name  # a submodule's: its worktree is set
        within = (os.path.dirname(name), top) if module else None
        found += [f"{key} in {name}" for key in _running(entries, within)]
        found += automatic_hooks(os.path.join(os.path.dirname(name), "hooks"))
        named = [value for key, value in entries if key == _HOOKS_PATH and value]
        if module:
            found += [f"core.hookspath in {name}" for _ in named[:1]]
        else:
            hooks += named
            for value in named:
                if directory := hooks_path(value, top, os.path.expanduser("~")):
                    found += automatic_hooks(directory)
    configuration = (tuple(dict.fromkeys(found)), tuple(hooks))
    marker = os.path.join(top, ".git")
    plain = [os.path.join(marker, name) for name in ("config", "config.worktree")]
    if files != plain or hooks or os.path.lexists(os.path.join(marker, "modules")):
        return configuration, None  # modules' git directories lie at any depth
    # What `config_files` looked at to find the plain layout: the marker (a
    # directory, `repository.find`), its HEAD and commondir (`_validate`), no
    # modules directory; and the files themselves.
    watched = [marker, *(os.path.join(marker, n) for n in ("HEAD", "commondir", "modules"))]
    hooks_directory = os.path.join(marker, "hooks")
    watched += [hooks_directory, *(os.path.join(hooks_directory, n) for n in AUTOMATIC_HOOKS)]
    return configuration, watched + plain


def user_files(home: str) -> tuple[str, str]:
    """The user's own (global) configuration files, in the order git reads them (the
    second wins; ``git config --global`` writes it unless only the first exists)."""
    xdg = os.environ.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
    return os.path.join(xdg, "git", "config"), os.path.join(home, ".gitconfig")


MAX_INCLUDE_DEPTH = 10
"""Includes within includes git follows at most (``MAX_INCLUDE_DEPTH`` in config.c)."""
_INCLUDE = re.compile(r"include\.path|includeif\..*\.path", re.DOTALL)


def entries_in_effect(top: str | None, home: str) -> tuple[tuple[str, str], ...] | None:
    """Every entry of the configuration git reads in the repository at ``top`` (None:
    outside any), in git's order, the last value winning: the system's, the user's
    (`user_files`), the repository's own (`repository_files`), each with the files
    it includes in its place (an ``includeIf`` taken as holding: it may). None when
    kfd cannot tell which files those are or cannot read one."""
    names = [SYSTEM_FILE, *user_files(home)]
    if top is not None:
        own = repository_files(top)
        if own is None:
            return None
        names += own
    found: list[tuple[str, str]] = []
    for name in names:
        if not _with_includes(name, home, found, 0):
            return None
    return tuple(found)


def _with_includes(name: str, home: str, found: list[tuple[str, str]], depth: int) -> bool:
    """Add the entries of file ``name`` to ``found``, those of the files it includes
    where it includes them; False when one cannot be read (a missing file is empty,
    as git takes it)."""
    entries = file_entries(name)
    if entries is None or depth > MAX_INCLUDE_DEPTH:
        return False
    for key, value in entries:
        found.append((key, value))
        if _INCLUDE.fullmatch(key) and value:
            path = os.path.join(home, value[2:]) if value.startswith("~/") else value
            path = os.path.join(os.path.dirname(name), path)
            if not _with_includes(path, home, found, depth + 1):
                return False
    return True


def user_named_files(home: str) -> list[tuple[str, str]]:
    """The `NAMED_FILES` keys of the user's own (global) git configuration, each with
    its value."""
    found: list[tuple[str, str]] = []
    for name in user_files(home):
        entries = file_entries(name) or ()
        found += [(key, value) for key, value in entries if key in NAMED_FILES and value]
    return list(dict.fromkeys(found))


def file_entries(name: str) -> tuple[tuple[str, str], ...] | None:
    """`_entries` of a configuration file (empty when there is none; None when it
    cannot be read), parsed again only when its stamp changes."""
    try:
        info = os.stat(name)
    except FileNotFoundError:
        return ()
    except OSError:
        return None
    return _parsed(name, (info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns))


@functools.lru_cache(maxsize=64)
def _parsed(name: str, stamp: tuple[int, int, int, int]) -> tuple[tuple[str, str], ...] | None:
    """`_entries` of one file, kept while its inode, size and times hold (one ``stat``
    a decision, not a parse: a change sets the ctime)."""
    if stamp[1] > MAX_CONFIG_BYTES:
        return None
    try:
        return tuple(_entries(read_regular(name, MAX_CONFIG_BYTES).decode("utf-8", "replace")))
    except OSError:
        return None


def _running(entries: Iterable[tuple[str, str]], worktree_in: tuple[str, str] | None) -> list[str]:
    """`running_keys` of parsed entries."""
    found: list[str] = []
    for key, value in entries:
        if key == "core.worktree" and worktree_in is not None:
            base, within = worktree_in
            target = os.path.realpath(os.path.join(base, value)) if value else base
            if target == within or target.startswith(within.rstrip(os.sep) + os.sep):
                continue  # the checkout itself (read from it), or one below (from above)
        if (
            key.startswith("line ")
            or (
                _RUNS.fullmatch(key)
                and not (key == "core.fsmonitor" and value.lower() in _BOOLEANS)
            )
            or (value.startswith("!") and _COMMAND_VALUES.fullmatch(key))
        ):
            found.append(key)
    return found


def _entries(text: str) -> list[tuple[str, str]]:
    """Each key of configuration ``text`` (section, subsection and name as git
    spells them: section and name in lower case) with its value; ``("line N", "")``
    where git would stop with an error (kfd asks), and nothing after it.

    A port of git's own reader (``config.c``: ``git_parse_source``, ``get_value``,
    ``parse_value``, ``get_base_var``), character by character, because every
    shortcut misread it: a value continued by a last ``\\`` takes the next line
    (``[foo]`` there is value, not a section); quotes open and close anywhere in
    a value (``".hus"ky`` is ``.husky``) and ``#``/``;`` inside them are text;
    lines end at ``\n`` (``\r\n`` too), never at a form feed."""
    reader = _Reader(text.removeprefix("\ufeff"))
    found: list[tuple[str, str]] = []
    section = ""
    while not reader.done:
        c = reader.next()
        if c == "\n" or c in _SPACE:
            continue
        if c in "#;":
            reader.skip_line()
            continue
        if c == "[":
            parsed = _section(reader)
            if parsed is None:
                found.append((f"line {reader.line}", ""))
                return found
            section = parsed
            continue
        if not c.isascii() or not c.isalpha() or not section:
            found.append((f"line {reader.line}", ""))
            return found
        name = c.lower()
        while True:
            c = reader.next()
            if not (c.isascii() and (c.isalnum() or c == "-")):
                break
            name += c.lower()
        while c in " \t":
            c = reader.next()
        value = "" if c == "\n" else _value(reader) if c == "=" else None
        if value is None:
            found.append((f"line {reader.line}", ""))
            return found
        found.append((f"{section}.{name}", value))
    return found


_SPACE = frozenset(" \t\r")
"""What git's ``isspace`` takes besides ``\n`` (not a form feed or vertical tab)."""


class _Reader:
    """Characters as git's ``get_next_char`` gives them: ``\r\n`` is ``\n``, the end
    of the text one more ``\n``."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.at = 0
        self.line = 1
        self.done = False

    def next(self) -> str:
        if self.at >= len(self.text):
            self.done = True
            return "\n"
        c = self.text[self.at]
        self.at += 1
        if c == "\r" and self.text.startswith("\n", self.at):
            c = "\n"
            self.at += 1
        if c == "\n":
            self.line += 1
        return c

    def skip_line(self) -> None:
        while self.next() != "\n":
            pass


def _section(reader: _Reader) -> str | None:
    """A section header after its ``[`` (`get_base_var`), or None where git errs."""
    name = ""
    while True:
        c = reader.next()
        if reader.done:
            return None
        if c == "]":
            return name or None
        if c == "\n" or c in _SPACE:
            break
        if not (c.isascii() and (c.isalnum() or c in "-.")):
            return None
        name += c.lower()
    while c == "\n" or c in _SPACE:
        if c == "\n":
            return None
        c = reader.next()
    if c != '"' or not name:
        return None
    sub = ""
    while True:
        c = reader.next()
        if c == "\n":
            return None
        if c == '"':
            break
        if c == "\\":
            c = reader.next()
            if c == "\n":
                return None
        sub += c
    return f"{name}.{sub}" if reader.next() == "]" else None


def _value(reader: _Reader) -> str | None:
    """A value after its ``=`` (`parse_value`), or None where git errs."""
    value: list[str] = []
    quote = comment = False
    space = 0
    while True:
        c = reader.next()
        if c == "\n":
            return None if quote else "".join(value)
        if comment:
            continue
        if c in _SPACE and not quote:
            space += 1 if value else 0
            continue
        if not quote and c in ";#":
            comment = True
            continue
        value += " " * space
        space = 0
        if c == "\\":
            c = reader.next()
            if c == "\n":
                continue  # the value goes on on the next line
            if c not in _ESCAPES:
                return None
            value.append(_ESCAPES[c])
            continue
        if c == '"':
            quote = not quote
            continue
        value.append(c)


_ESCAPES = {"t": "\t", "b": "\b", "n": "\n", "\\": "\\", '"': '"'}


MAX_MODULES = 1000
"""Directories looked at for submodules' git directories at most (then: unknown)."""


def config_files(top: str) -> list[str] | None:
    """The configuration files of the repository whose work tree is ``top`` (its
    ``config`` and ``config.worktree``) and of its submodules (git enters them:
    ``git status`` runs a submodule's ``core.fsmonitor``), or None when kfd cannot
    tell which git directory git would use there (a ``.git`` file it does not
    accept, too many submodules)."""
    own = repository_files(top)
    if own is None:
        return None
    modules = _modules(os.path.join(os.path.dirname(own[0]), "modules"))
    if modules is None:
        return None
    names = list(own)
    for directory in modules:
        names += [os.path.join(directory, "config"), os.path.join(directory, "config.worktree")]
    return names


def repository_files(top: str) -> list[str] | None:
    """The repository's own configuration files (its common directory's ``config``
    first, then each ``config.worktree``), or None when kfd cannot tell which git
    directory git would use there."""
    marker = os.path.join(top, ".git")
    module = _module_directory(marker)
    if module is not None:
        git_dir = common_dir = module  # a submodule's checkout
    else:
        found = repository.find(Path(top))
        if not isinstance(found, repository.Repository) or str(found.root) != top:
            return None
        git_dir, common_dir = str(found.git_dir), str(found.common_dir)
    directories = list(dict.fromkeys((common_dir, git_dir)))
    return [
        os.path.join(common_dir, "config"),
        *(os.path.join(d, "config.worktree") for d in directories),
    ]


def _module_directory(marker: str) -> str | None:
    """The git directory a submodule's ``.git`` file names, when it is one (under a
    ``modules`` directory of a git directory), else None."""
    if os.path.islink(marker) or not os.path.isfile(marker):
        return None
    target = repository.gitdir_of(marker)
    if target is None:
        return None
    parts = target.split(os.sep)
    inside_modules = any(
        part == "modules" and index > 0 and parts[index - 1].endswith(".git")
        for index, part in enumerate(parts)
    )
    return target if inside_modules and os.path.isdir(target) else None


def _modules(directory: str) -> list[str] | None:
    """The submodules' git directories under ``directory`` (``.git/modules``, nested
    ones under theirs), or None past `MAX_MODULES` directories."""
    found: list[str] = []
    pending = [directory]
    seen = 0
    while pending:
        current = pending.pop()
        seen += 1
        if seen > MAX_MODULES:
            return None
        try:
            with os.scandir(current) as entries:
                listed = [(e.name, e.path, e.is_dir(follow_symlinks=False)) for e in entries]
        except OSError:
            continue
        names = {name for name, _, _ in listed}
        if current != directory and "HEAD" in names and "config" in names:
            found.append(current)
            pending += [path for name, path, is_dir in listed if is_dir and name == "modules"]
            continue
        pending += [path for _, path, is_dir in listed if is_dir]
    return found
