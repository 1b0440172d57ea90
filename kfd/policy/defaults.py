"""The built-in rules and the protected paths.

The built-in rules are the lowest source: a user's or a project's rules add to
them, and ``[permissions] defaults = false`` drops them. The protected paths
are not rules: writing them always asks, in every mode, whatever allows it.
"""

from __future__ import annotations

import functools
import os

from kfd import paths
from kfd.agent.instructions import NAMES as INSTRUCTION_FILES
from kfd.policy.rules import Rule, SourcedRule, parse_rule

READ_ONLY_COMMANDS: tuple[str, ...] = (
    "bash(ls *)",
    "bash(pwd)",
    "bash(cat *)",
    "bash(head *)",
    "bash(tail *)",
    "bash(wc *)",
    "bash(file *)",
    "bash(stat *)",
    "bash(du *)",
    "bash(which *)",
    "bash(tree *)",
    "bash(grep *)",
    "bash(rg *)",
    "bash(find *)",
    "bash(echo *)",
    "bash(printf *)",
    "bash(true)",
    "bash(false)",
    "bash(test *)",
    "bash([ *)",
    "bash(diff *)",
    "bash(cmp *)",
    "bash(sort *)",
    "bash(uniq *)",
    "bash(cut *)",
    "bash(nl *)",
    "bash(basename *)",
    "bash(dirname *)",
    "bash(realpath *)",
    "bash(readlink *)",
    "bash(md5sum *)",
    "bash(sha1sum *)",
    "bash(sha256sum *)",
    "bash(sha512sum *)",
    "bash(git status *)",
    "bash(git diff *)",
    "bash(git log *)",
    "bash(git show *)",
    "bash(git branch)",
    "bash(git branch --show-current)",
    "bash(git branch --list *)",
    "bash(git branch -a)",
    "bash(git branch -r)",
    "bash(git branch -v)",
    "bash(git branch -vv)",
    "bash(git rev-parse *)",
    "bash(git ls-files *)",
    "bash(git ls-tree *)",
    "bash(git blame *)",
    "bash(git grep *)",
    "bash(git describe *)",
    "bash(git shortlog *)",
    "bash(git show-ref *)",
    "bash(git merge-base *)",
    "bash(git rev-list *)",
    "bash(git remote)",
    "bash(git remote -v)",
    "bash(git tag --list *)",
    "bash(git stash list *)",
)
"""Commands that only read: allowed in every mode (``plan`` included), and still
allowed after untrusted content, when every option they are given is one kfd
knows and none of them writes or runs anything (``find -delete``, ``git diff
--output=x``, ``sort -o x`` are not read-only). Their paths are checked like
any other's; what they read whole (``grep -r``, ``git log -p``) is checked for
files the read rules restrict."""

SECRET_FILES: tuple[str, ...] = (
    "read(**/.env)",
    "read(**/.env.*)",
    "read(**/*.pem)",
    "read(**/*.key)",
    "read(**/*.p12)",
    "read(**/*.pfx)",
    "read(**/id_rsa)",
    "read(**/id_dsa)",
    "read(**/id_ecdsa)",
    "read(**/id_ed25519)",
    "read(**/.git-credentials)",
    "read(**/.netrc)",
    "read(**/.pgpass)",
    "read(~/.ssh/**)",
    "read(~/.gnupg/**)",
    "read(~/.aws/**)",
    "read(~/.config/gh/hosts.yml)",
    "read(~/.docker/config.json)",
    "read(~/.kube/config)",
    "read(~/.pypirc)",
)
"""Files that hold credentials: reading them is denied."""


def builtin_rules() -> list[SourcedRule]:
    """The built-in rules, as a source."""
    allowed = [SourcedRule(parse_rule(text), "allow", "built-in") for text in READ_ONLY_COMMANDS]
    denied = [SourcedRule(parse_rule(text), "deny", "built-in") for text in SECRET_FILES]
    return allowed + denied


READ_ONLY_RULES: frozenset[Rule] = frozenset(parse_rule(text) for text in READ_ONLY_COMMANDS)

_SHELL_STARTUP = frozenset(
    {
        ".bashrc",
        ".bash_profile",
        ".bash_login",
        ".bash_logout",
        ".profile",
        ".zshrc",
        ".zshenv",
        ".zprofile",
        ".zlogin",
        ".zlogout",
        ".kshrc",
        ".cshrc",
        ".tcshrc",
        ".inputrc",
    }
)


def protected(path: str, own: tuple[str, ...] | None = None) -> str | None:
    """Why writing ``path`` (absolute, normalised) always asks, or None.

    Git's internals (``.git``: hooks and config run programs), kfd's own
    project config (``.kfd``: its rules), shell start-up files, instruction
    files (``AGENTS.md``...: what one turn writes there, every later session
    reads as instructions), and kfd's own
    config, state and runtime directories (the config applies as soon as it
    changes; the state holds the trusted files and the "always" rules).
    ``own``: those directories as `own_directories` gave them (read once for
    the many paths of one call: the environment is slow to read).
    """
    # Each test behind a cheaper one that is true whenever it is (a command may name
    # hundreds of paths, and most are none of these).
    directories = own_directories() if own is None else own
    if path.startswith(directories):
        for directory in directories:
            if path.startswith(directory) and path[len(directory) : len(directory) + 1] in (
                "",
                "/",
            ):
                return "kfd's own config and state (they decide what kfd may do)"
    if ".git" in path or ".kfd" in path:
        parts = path.split(os.sep)
        if ".git" in parts:
            return "git's internals (.git: hooks and config run programs)"
        if ".kfd" in parts:
            return "kfd's project config (.kfd)"
    name = path.rpartition(os.sep)[2]
    if name in _SHELL_STARTUP or path.endswith("/.config/fish/config.fish"):
        return f"a shell start-up file ({name})"
    if name in INSTRUCTION_FILES:
        return f"an instruction file ({name}: kfd gives it to the model in every session)"
    return None


def home_configuration(path: str, home: str, workspace: str) -> str | None:
    """Why writing ``path`` (absolute, normalised), a workspace file, always asks when
    it is in a dot-entry at the top of ``home`` (the workspace holds the home):
    ``~/.gitconfig``, ``~/.bash_aliases``, ``~/.config``, ``~/.local/bin``,
    ``~/.ssh``, and ``~/bin``: programs on the host read or run what is there. Not when the
    workspace is inside that very entry (the user works on ``~/.dotfiles``)."""
    top = home.rstrip(os.sep) + os.sep
    if len(top) < 2 or not path.startswith(top):
        return None
    entry = top + path[len(top) :].split(os.sep, 1)[0]
    # Debian's ~/.profile puts ~/bin first on PATH (`kfd.sandbox.layout.HOME_PROGRAMS`).
    if not entry.startswith(top + ".") and entry != top + "bin":
        return None
    if workspace == entry or workspace.startswith(entry + os.sep):
        return None
    return f"your home's configuration ({entry}: programs on the host read or run it)"


def own_directories() -> tuple[str, ...]:
    """kfd's config, state and runtime directories, as written and as they really are,
    for the environment as it is now."""
    return _own_directories(
        os.environ.get("XDG_CONFIG_HOME", ""),
        os.environ.get("XDG_STATE_HOME", ""),
        os.environ.get("XDG_RUNTIME_DIR", ""),
        os.environ.get("HOME", ""),
    )


@functools.lru_cache(maxsize=8)
def _own_directories(*environment: str) -> tuple[str, ...]:
    """kfd's config, state and runtime directories, as written and as they really are
    (``environment``: the variables they depend on, so a change is seen)."""
    found: list[str] = []
    for directory in (paths.config_dir(), paths.state_dir(), paths.runtime_dir()):
        for spelling in (os.path.normpath(directory), os.path.realpath(directory)):
            if spelling not in found:
                found.append(spelling)
    return tuple(found)
