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

Pure: the entries come in (`kfd.policy.gitconfig.entries_in_effect`, read by
`kfd.policy.line_facts`), option names go out.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

from kfd.policy.programs.argv import Parsed

__all__ = ["PUSH", "Configured", "configured_options", "entry_of"]

PUSH = ["push"]
"""The subcommand path whose meaning configuration completes."""

_NAMING_REFS = frozenset({"all", "branches", "tags", "mirror"})
"""Options that name the refs to push, as refspecs do: configured ones are not read."""
_TRUE = frozenset({"", "true", "yes", "on"})
_FALSE = frozenset({"false", "no", "off", "0"})


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


def configured_options(parsed: Parsed, entries: Sequence[tuple[str, str]] | None) -> Configured:
    """The options ``parsed`` (a ``git push``) has by configuration ``entries``
    (None: unreadable, so any it may have)."""
    spec = parsed.current
    possible = frozenset({"mirror", spec.plus_operand, spec.colon_operand} - {""})
    if entries is None:
        return Configured(maybe=possible)
    operands = parsed.operands
    if operands and operands[0] is None:
        return Configured()  # a remote only known at run time: the match is MAYBE already
    named = parsed.options.get("repo", [])
    remotes = {str(operands[0])} if operands else {named[-1]} if named else _remotes(entries)
    refs_given = len(operands) > 1 or not _NAMING_REFS.isdisjoint(parsed.options)
    each = [_of_remote(parsed, entries, remote, refs_given) for remote in remotes]
    always = frozenset.intersection(*each) if each else frozenset()
    return Configured(always, frozenset().union(*each) - always)


def _remotes(entries: Iterable[tuple[str, str]]) -> set[str]:
    """The remotes a push naming none may go to, whichever branch is checked out: its
    ``pushRemote``, else ``remote.pushDefault``, else its ``remote``, else ``origin``."""
    push_default = ""
    push_remotes: set[str] = set()
    branch_remotes: set[str] = {"origin"}
    for key, value in entries:
        if key == "remote.pushdefault":
            push_default = value
        elif key.startswith("branch.") and key.endswith(".pushremote") and value:
            push_remotes.add(value)
        elif key.startswith("branch.") and key.endswith(".remote") and value:
            branch_remotes.add(value)
    return push_remotes | ({push_default} if push_default else branch_remotes)


def _of_remote(
    parsed: Parsed, entries: Iterable[tuple[str, str]], remote: str, refs_given: bool
) -> frozenset[str]:
    spec = parsed.current
    mirror = False
    refspecs: list[str] = []
    for key, value in entries:
        if key == f"remote.{remote}.mirror":
            mirror = _boolean(value)
        elif key == f"remote.{remote}.push":
            refspecs.append(value)
    found = {"mirror"} if mirror else set()
    if refs_given:
        return frozenset(found)
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
