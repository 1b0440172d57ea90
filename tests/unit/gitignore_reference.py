"""The path matching kfd had before `kfd.policy.globs`: pathspec's gitignore
expressions, which backtrack. Tests hold the new matcher to it on inputs small
enough for it to answer quickly; nothing in kfd uses it."""

from __future__ import annotations

import functools
import re

import pathspec

from kfd.policy.rules import _anchor, _relative


@functools.lru_cache(maxsize=4096)
def _glob(pattern: str) -> pathspec.GitIgnoreSpec:
    return pathspec.GitIgnoreSpec.from_lines(["/" + pattern.lstrip("/")])


def path_match(spec: str, path: str, workspace: str, home: str) -> bool:
    """Whether the absolute, normalised ``path`` matches the path specifier ``spec``
    (pathspec's answer: ``.`` stops at a newline, no backups)."""
    spec = spec.strip()
    if not spec:
        return False
    base, pattern = _anchor(spec, workspace, home)
    relative = _relative(path, base)
    if relative is None:
        if base != workspace or not pattern.startswith("**/"):
            return False
        relative = path.lstrip("/")  # `**/x` matches wherever x is
    return bool(_glob(pattern).match_file(relative or "."))


@functools.lru_cache(maxsize=4096)
def old_regex(pattern: str) -> str:
    """What `kfd.policy.rules.PathMatcher` compiled a specifier to (with `re.DOTALL`,
    matched from the start of the relative path)."""
    parts = [p.regex.pattern for p in _glob(pattern).patterns if p.include and p.regex]
    return "|".join(_anchored(re.sub(r"\(\?P<\w+>", "(?:", part)) for part in parts) or "(?!)"


def _anchored(part: str) -> str:
    return part if part.startswith("^") else f"(?s:.*?)(?:{part})"
