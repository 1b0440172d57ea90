"""What ``git push`` means once the configuration git reads for it is counted.

A push takes from configuration what its command line leaves out: the remote
(``branch.<name>.pushRemote``, ``remote.pushDefault``, ``branch.<name>.remote``,
else ``origin``), the refspecs (``remote.<name>.push``, when none is given and
no option names the refs), and ``remote.<name>.mirror``, which makes every
push to that remote a ``--mirror`` (forced, and deleting what is not here). A
repository that arrives with its ``.git`` decides what a plain ``git push``
does, so deny and ask rules, which match meaning
(`kfd.policy.command_rules`), read the options the configuration gives as the
command's own: configured refspecs are read as operands are (``+``: force,
``:``: delete, `kfd.policy.programs.spec.ProgramSpec.plus_operand`).

A remote configuration names no URL for may come from the legacy files git
still reads (``git help push``, REMOTES): ``$GIT_DIR/remotes/<name>``, whose
``Push:`` lines are refspecs as ``remote.<name>.push`` values are, and
``$GIT_DIR/branches/<name>``, which pushes ``HEAD`` to one branch, never forced.
Git reads ``remotes/<name>`` only when the configuration gives that remote no
URL, and adds its ``Push:`` lines to the configured ones.

Pure: the entries come in (`kfd.policy.gitconfig.entries_in_effect`, read by
`kfd.policy.line_facts`), and the ``remotes/<name>`` files of `legacy_remotes`
(parsed by `remotes_file_refspecs`); option names go out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

from kfd.policy.programs.argv import Parsed

__all__ = [
    "PUSH",
    "Configured",
    "Legacy",
    "configured_options",
    "entry_of",
    "legacy_remotes",
    "remotes_file_refspecs",
]

PUSH = ["push"]
"""The subcommand path whose meaning configuration completes."""

_NAMING_REFS = frozenset({"all", "branches", "tags", "mirror"})
"""Options that name the refs to push, as refspecs do: configured ones are not read."""
_TRUE = frozenset({"", "true", "yes", "on"})
_FALSE = frozenset({"false", "no", "off", "0"})

Legacy = Mapping[str, "tuple[str, ...] | None"]
"""The ``Push:`` refspecs of the ``$GIT_DIR/remotes/<name>`` file of each remote name
(empty: no file; None: a file kfd cannot read)."""


class Configured(NamedTuple):
    """Options a command has by configuration (canonical names of its subcommand)."""

    options: frozenset[str] = frozenset()
    """Given whichever remote git pushes to."""
    maybe: frozenset[str] = frozenset()
    """Given for some of the remotes git may push to (kfd cannot tell which), or by
    configuration kfd cannot read."""


def entry_of(assignment: str) -> tuple[str, str]:
    """A ``-c key=value`` of git's command line as a configuration entry (section and
    name in lower case, as `kfd.policy.gitconfig.file_entries` gives them; no ``=``:
    true)."""
    key, _, value = assignment.partition("=")
    section, _, rest = key.partition(".")
    subsection, _, name = rest.rpartition(".")
    parts = [section.lower(), *([subsection] if subsection else []), name.lower()]
    return ".".join(parts), value


def configured_options(
    parsed: Parsed, entries: Sequence[tuple[str, str]] | None, legacy: Legacy | None = None
) -> Configured:
    """The options ``parsed`` (a ``git push``) has by configuration ``entries``
    (None: unreadable, so any it may have) and the ``remotes/<name>`` files ``legacy``
    holds (`legacy_remotes` names those git may read; one missing there: none)."""
    spec = parsed.current
    possible = frozenset({"mirror", spec.plus_operand, spec.colon_operand} - {""})
    if entries is None:
        return Configured(maybe=possible)
    operands = parsed.operands
    if operands and operands[0] is None:
        return Configured()  # a remote only known at run time: the match is MAYBE already
    refs_given = len(operands) > 1 or not _NAMING_REFS.isdisjoint(parsed.options)
    each: list[frozenset[str]] = []
    unsure = False
    for remote in _candidates(parsed, entries):
        found, refspecs = _of_remote(entries, remote)
        if not _has_url(entries, remote) and _nickname(remote):
            from_file = (legacy or {}).get(remote, ())
            unsure = unsure or (from_file is None and not refs_given)
            refspecs += from_file or ()
        each.append(found if refs_given else found | _refspec_options(parsed, refspecs))
    always = frozenset.intersection(*each) if each else frozenset()
    maybe = frozenset().union(*each) - always
    # A file kfd cannot read may hold any refspec (never a mirror: configuration only).
    unread = possible - {"mirror"} - always if unsure else frozenset()
    return Configured(always, maybe | unread)


def legacy_remotes(parsed: Parsed, entries: Sequence[tuple[str, str]] | None) -> list[str]:
    """The remote names whose ``$GIT_DIR/remotes/<name>`` file git may read for the push
    ``parsed`` under ``entries``: those it may push to that the configuration gives no
    URL and that can name a file."""
    if entries is None or (parsed.operands and parsed.operands[0] is None):
        return []
    return sorted(
        remote
        for remote in _candidates(parsed, entries)
        if _nickname(remote) and not _has_url(entries, remote)
    )


def remotes_file_refspecs(text: str) -> tuple[str, ...]:
    """The push refspecs of a ``$GIT_DIR/remotes/<name>`` file, as git reads them: each
    line starting ``Push:`` (trailing blanks dropped, blanks after the colon too)."""
    found: list[str] = []
    for line in text.split("\n"):
        if line.startswith("Push:"):
            refspec = line[len("Push:") :].strip()
            if refspec:
                found.append(refspec)
    return tuple(found)


def _candidates(parsed: Parsed, entries: Sequence[tuple[str, str]]) -> set[str]:
    operands = parsed.operands
    named = parsed.options.get("repo", [])
    return {str(operands[0])} if operands else {named[-1]} if named else _remotes(entries)


def _nickname(remote: str) -> bool:
    """Whether git may look for a file named ``remote`` (``valid_remote_nick``)."""
    return remote not in ("", ".", "..") and "/" not in remote


def _has_url(entries: Iterable[tuple[str, str]], remote: str) -> bool:
    """Whether the configuration gives ``remote`` a URL (or a foreign VCS): then git
    reads no legacy file for it."""
    keys = (f"remote.{remote}.url", f"remote.{remote}.vcs")
    return any(key in keys for key, _ in entries)


def _remotes(entries: Iterable[tuple[str, str]]) -> set[str]:
    """The remotes a push naming none may go to, whichever branch is checked out: its
    ``pushRemote``, else ``remote.pushDefault``, else its ``remote``, else the only
    remote configured, else ``origin`` (git's ``remotes_remote_for_branch``); which
    branch is out is not read, so every branch's count."""
    push_default = ""
    push_remotes: set[str] = set()
    branch_remotes: set[str] = {"origin"}
    configured: set[str] = set()
    for key, value in entries:
        if key == "remote.pushdefault":
            push_default = value
        elif key.startswith("branch.") and key.endswith(".pushremote") and value:
            push_remotes.add(value)
        elif key.startswith("branch.") and key.endswith(".remote") and value:
            branch_remotes.add(value)
        elif key.startswith("remote.") and key.count(".") >= 2:
            configured.add(key[len("remote.") : key.rindex(".")])
    if len(configured) == 1:
        branch_remotes |= configured  # with no branch's remote, git takes the only one
    return push_remotes | ({push_default} if push_default else branch_remotes)


def _of_remote(entries: Iterable[tuple[str, str]], remote: str) -> tuple[frozenset[str], list[str]]:
    """Whether ``remote`` is a mirror (``{"mirror"}``), and its configured push refspecs."""
    mirror = False
    refspecs: list[str] = []
    for key, value in entries:
        if key == f"remote.{remote}.mirror":
            mirror = _boolean(value)
        elif key == f"remote.{remote}.push":
            refspecs.append(value)
    return frozenset({"mirror"} if mirror else ()), refspecs


def _refspec_options(parsed: Parsed, refspecs: Iterable[str]) -> frozenset[str]:
    """The options refspecs mean, read as operands are (``+``: force, ``:``: delete)."""
    spec = parsed.current
    found: set[str] = set()
    for refspec in refspecs:
        if refspec.startswith("+") and spec.plus_operand:
            found.add(spec.plus_operand)
        if refspec.lstrip("+").startswith(":") and spec.colon_operand:
            found.add(spec.colon_operand)
    return frozenset(found)


def _boolean(value: str) -> bool:
    """A boolean as git reads it; what git would refuse counts as true (a refusal
    stops git, but kfd will not guess)."""
    lowered = value.strip().lower()
    if lowered in _FALSE:
        return False
    if lowered in _TRUE:
        return True
    return not lowered.lstrip("-+").isdigit() or int(lowered) != 0
