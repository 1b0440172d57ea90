"""The facts a permission decision is a pure function of.

Gathered with I/O by `kfd.policy.gate` (and `kfd.policy.line_facts` for a
bash line), then handed to `kfd.policy.engine.decide_facts`, which does no
I/O at all: a test builds these by hand and calls it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Literal

import msgspec

from kfd.api import PolicyRequest, ResolvedPath
from kfd.policy.rules import SourcedRule
from kfd.policy.shell import ShellAnalysis, SimpleCommand
from kfd.policy.shell.model import command_key

__all__ = ["CallFacts", "CommandFacts", "LineFacts", "PathFact", "TreeFact"]

PathKind = Literal["file", "dir", "missing", "other"]


class PathFact(msgspec.Struct, frozen=True, kw_only=True):
    """A path a call may touch, where it really is, and how it is touched."""

    word: str
    """As written (a tool argument, a shell word, a glob's match)."""
    path: str
    """Absolute and normalised, symlinks not followed."""
    real: str
    """Absolute with every symlink followed (realpath)."""
    inside: bool
    """``real`` is the workspace or under it."""
    write: bool | None = None
    """True: written; False: read; None: unknown (a command's argument)."""
    links: int = 1
    """Hard links of an existing regular file (above 1: it is also elsewhere)."""
    kind: PathKind = "missing"
    """What is there now (after symlinks)."""
    instruction: str = ""
    """The project instruction file that is a symlink to ``real`` (``AGENTS.md``), if
    one is: what is written here, every later session reads as instructions."""

    @classmethod
    def of(
        cls,
        resolved: ResolvedPath,
        workspace: str,
        links: int = 1,
        instructions: Mapping[str, str] | None = None,
    ) -> PathFact:
        """The fact of a tool's path, as `kfd.policy.paths.resolve` found it;
        ``instructions`` as `kfd.policy.paths.instruction_links` gives them."""
        joined = os.path.join(workspace, os.path.expanduser(resolved.requested))
        return cls(
            word=resolved.requested,
            path=os.path.normpath(joined),
            real=resolved.real,
            inside=resolved.inside_workspace,
            write=resolved.write,
            links=links,
            instruction=(instructions or {}).get(resolved.real, ""),
        )


class TreeFact(msgspec.Struct, frozen=True, kw_only=True):
    """A directory a command reads whole (``grep -r``, ``cp -r``, ``tar c``), as walked."""

    root: str
    """As written."""
    hits: list[str] = []
    """Paths under it that a read rule denies or asks about (the first few)."""
    complete: bool = True
    """The walk saw the whole tree (False: too large to check, which asks)."""
    links: list[str] = []
    """For a command that follows symbolic links in it (``grep -R``): the links under it
    (the first few), which may lead anywhere, so they ask."""
    linked: list[str] = []
    """Regular files under it with other hard links (the first few): a restricted
    file's content may be there under another name, so they ask."""


class CommandFacts(msgspec.Struct, frozen=True, kw_only=True):
    """One simple command of a bash line, with what its words name."""

    command: SimpleCommand
    paths: list[PathFact] = []
    """Every word that can be a path (its static arguments, option values attached by
    ``=`` or glued, ``REV:path`` of git, the matches of its globs), resolved."""
    unknown: list[str] = []
    """Why some of its arguments cannot be known before it runs (empty: all known)."""
    option_matches: list[str] = []
    """Files its globs match whose names the program reads as options (``sort *`` in a
    directory holding ``--compress-program=sh``): a fact of the file system now, so
    it asks even where the user allowed the exact line."""
    names: list[str] = []
    """The program names it may be (``./g`` linking to git: ``g`` and ``git``); empty:
    the name it was called by."""
    identity: str = ""
    """Why its program cannot be known by name (a file in the workspace, not there
    yet): it may be any program. Empty when it can."""
    trees: list[TreeFact] = []
    """Directories it may read whole."""
    index_hits: list[str] | None = None
    """For a command reading the files git tracks (``git diff``, ``git grep``): the
    tracked paths read rules restrict; None when git's index could not be read."""
    git_config: list[str] = []
    """For a git command: what in the configuration of a repository it may run in
    makes git run a program or read what the repository names
    (`kfd.policy.gitconfig.running_keys`, each with its file)."""
    configured: list[str] = []
    """Options the configuration git reads gives it, as its subcommand names them
    (`kfd.policy.gitpush`: a plain ``git push`` to a remote with ``mirror = true`` is
    ``git push --mirror``): deny and ask rules read them as its own."""
    maybe_configured: list[str] = []
    """Options the configuration may give it (kfd cannot tell which remote git uses,
    or cannot read the configuration): rules naming them ask."""
    unpacked: list[PathFact] = []
    """The files it writes (``write``) or reads because its data names them: a patch's
    targets (``patch``, ``git apply``), an archive's members (``tar x``, ``unzip``),
    as `kfd.policy.unpack_facts` read them from the data file. When they cannot be
    known, `unknown` says why."""
    from_top: bool = True
    """Whether it runs at the workspace's top only (no ``cd`` before it on the line,
    no ``git -C``): then its pathspecs are relative to the workspace, as
    `index_hits` are, and limit them."""
    key: bytes = b""
    """``command_key(command)``, as the gather step computed it for a line of several
    commands (empty: not computed; `key_of` computes it)."""

    def key_of(self) -> bytes:
        """``command_key(command)``: computed once per command of a line."""
        return self.key or command_key(self.command)


class LineFacts(msgspec.Struct, frozen=True, kw_only=True):
    """A bash command line: what the analyzer found, and where its paths are."""

    analysis: ShellAnalysis
    commands: list[CommandFacts] = []
    """One per command of ``analysis.commands``, in the same order."""
    redirects: list[PathFact] = []
    """Files it reads or writes by redirection (``<``, ``>``), or through an option
    or operand that writes (``git diff --output``, ``tee FILE``, ``find -fprint``)."""


class CallFacts(msgspec.Struct, frozen=True, kw_only=True):
    """Everything `kfd.policy.engine.decide_facts` reads about one tool call."""

    request: PolicyRequest
    rules: list[SourcedRule] = []
    """Every rule that applies, highest source first (always, session, project,
    user, built-in)."""
    paths: list[PathFact] = []
    """The paths the tool names (`kfd.api.Tool.paths`), resolved."""
    line: LineFacts | None = None
    """For ``bash``: the command line, analyzed."""
    home: str = "/"
    """The home directory ``~/`` rules are anchored at."""
    hooks: tuple[str, ...] = ()
    """Directories inside the workspace git runs hooks from (``core.hooksPath``:
    `kfd.policy.gitconfig.hooks_directories`): writing there always asks."""
    untrusted: str = ""
    """The tool whose untrusted output the session read this turn ("" if none)."""
    network_allowed: bool = False
    """``[sandbox] network = true``: commands may reach the network unasked."""
    domains: list[str] | None = None
    """The hosts a network tool's call reaches (`kfd.api.Tool.domains`); None when the
    tool does not say (it asks, as a call to an unknown domain would)."""
