"""Where bash evaluates code hidden in data, as pure checks on text and syntax nodes.

Bash runs command substitutions hidden in a *value* when it evaluates that
value as arithmetic, and every array subscript is arithmetic: with
``x='a[$(touch p)]'``, each of ``$((x))``, ``${y:x}``, ``${!x}``, ``a[x]=1``,
``[[ $x -eq 1 ]]``, ``read 'a[$(touch p)]'`` and ``printf -v 'a[$(touch p)]'``
runs ``touch p``. Deciding what a variable holds is beyond a static
analyser, so it proves the opposite: a name is plain (``[A-Za-z_][A-Za-z0-9_]*``,
at most a literal numeric subscript), an arithmetic expression is literal
(numbers and operators, no names), a parameter expansion has one of the inert
shapes below. Anything else is a risk: fail closed.

Pure and small: no tree-sitter import, no shell types (the syntax nodes are
duck-typed), so every other analyser module may use it.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = [
    "expansion_evaluates",
    "literal_arithmetic",
    "literal_arithmetic_node",
    "plain_assignment_target",
    "plain_name",
    "sensitive_variable",
]

_PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\[[0-9]+\])?")
_LITERAL_ARITHMETIC = re.compile(r"[0-9xXa-fA-F#+\-*/%<>=!&|^~?:(),\s]*")
# Node types whose text is inert inside an arithmetic expression: numbers and
# the operators' own tokens. Names, expansions and strings are not.
_ARITHMETIC_NODES = frozenset(
    {
        "number",
        "binary_expression",
        "unary_expression",
        "parenthesized_expression",
        "ternary_expression",
        "compound_statement",
        "arithmetic_expansion",
        "comment",
    }
)

_NAME = r"(?:[A-Za-z_][A-Za-z0-9_]*|[0-9]+|[@*#?$!-])"
_INDEX = r"(?:\[(?:[0-9]+|@|\*)\])?"
_OPERATORS = r"(?::?[-=+?]|##?|%%?|//?|/#|/%|\^\^?|,,?|@[QEAaUuLKk])"
# Inert shapes of `${...}`: a name (with a literal subscript), its length, the
# keys or names it lists, or an operator whose word is expanded on its own.
_INERT_EXPANSIONS = (
    re.compile(rf"\$\{{#?{_NAME}{_INDEX}\}}", re.DOTALL),
    re.compile(rf"\$\{{!{_NAME}(?:\[[@*]\]|[@*])\}}", re.DOTALL),
    re.compile(rf"\$\{{{_NAME}{_INDEX}{_OPERATORS}.*\}}", re.DOTALL),
    re.compile(rf"\$\{{{_NAME}{_INDEX}:\s*-?[0-9]+\s*(?::\s*-?[0-9]+\s*)?\}}", re.DOTALL),
)


_ASSIGNING = re.compile(rf"\$\{{({_NAME}){_INDEX}:?=")
"""``${NAME=word}`` and ``${NAME:=word}``: NAME is assigned when unset (or empty)."""


def plain_name(text: str) -> bool:
    """Whether ``text`` is a variable name bash cannot evaluate: ``x``, ``a[0]``."""
    return _PLAIN_NAME.fullmatch(text) is not None


def plain_assignment_target(word: str) -> bool:
    """Whether the name part of ``name=value`` / ``name+=value`` / ``name`` is plain."""
    name = re.split(r"\+?=", word, maxsplit=1)[0]
    return plain_name(name)


def literal_arithmetic(text: str) -> bool:
    """Whether an arithmetic expression holds only numbers and operators.

    Letters a-f and x are allowed only as digits of a number (``0x1f``, ``16#ff``).
    """
    if not _LITERAL_ARITHMETIC.fullmatch(text):
        return False
    return not re.search(r"(?<![0-9#xX])[a-fA-FxX]", text)


def literal_arithmetic_node(node: Any) -> bool:
    """Whether a tree-sitter arithmetic node holds only numbers and operators."""
    stack = [node]
    while stack:
        current = stack.pop()
        if current.is_named and current.type not in _ARITHMETIC_NODES:
            return False
        stack.extend(current.children)
    return True


def expansion_evaluates(text: str) -> str | None:
    """Why the parameter expansion ``text`` (``${...}``) may evaluate code, or None.

    Indirection (``${!x}``), a subscript that is not a literal number, a
    substring whose offset is not literal, and prompt expansion (``${x@P}``)
    all evaluate a value as code; the other shapes only read one.
    """
    if not text.startswith("${"):
        return None
    inner = _outer(text)
    assigned = _ASSIGNING.match(inner)
    if assigned is not None and sensitive_variable(assigned.group(1)):
        # `${GLOBIGNORE:=x}` sets it as an assignment would (dotfiles glob after it).
        return f"{text} assigns {assigned.group(1)}, which changes what bash or programs do"
    if any(shape.fullmatch(inner) for shape in _INERT_EXPANSIONS):
        return None
    if inner.startswith("${!"):
        return f"{text} expands the variable whose name another variable holds"
    if re.match(rf"\$\{{#?{_NAME}\[", inner):
        return f"the array subscript in {text} is arithmetic, evaluated from data"
    if re.match(rf"\$\{{{_NAME}{_INDEX}@P", inner):
        return f"{text} expands a value as a prompt, which runs the commands in it"
    return f"{text} evaluates part of a value as arithmetic (a substring offset)"


def _outer(text: str) -> str:
    """``text`` cut after the brace that closes its opening ``${``."""
    depth = 0
    for index, char in enumerate(text):
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return text[: index + 1]
    return text


_INERT_VARIABLES = frozenset(
    [
        "CI",
        "NO_COLOR",
        "FORCE_COLOR",
        "CLICOLOR",
        "CLICOLOR_FORCE",
        "TERM",
        "COLUMNS",
        "LINES",
        "LANG",
        "LANGUAGE",
        "TZ",
        "NODE_ENV",
        "RUST_BACKTRACE",
        "RUST_LOG",
        "PYTHONUNBUFFERED",
        "PYTHONDONTWRITEBYTECODE",
        "PYTHONHASHSEED",
        "PYTHONIOENCODING",
        "DEBUG",
        "VERBOSE",
    ]
)
_PROXY_VARIABLES = frozenset(["http_proxy", "https_proxy", "ftp_proxy", "all_proxy", "no_proxy"])


def sensitive_variable(name: str, *, exported: bool = False) -> bool:
    """Whether setting ``name`` can change what programs run or load, or what bash evaluates.

    Fail closed: every name with an upper-case letter is sensitive unless it is
    on a short list of known-inert ones (CI, NO_COLOR, LANG, LC_*, TZ, ...):
    PATH, LD_PRELOAD, BASH_ENV, ENV, PROMPT_COMMAND, PS4, SHELLOPTS, IFS,
    GLOBIGNORE, GIT_*, PAGER... A lower-case name is the shell's own unless it
    is ``exported`` to a program (``NAME=value cmd``, ``env``, ``export``):
    programs read lower-case names too (``npm_config_global=true npm install``,
    the proxy variables).
    """
    if name in _INERT_VARIABLES or (name.startswith("LC_") and name[3:].isalpha()):
        return False
    return exported or any(c.isupper() for c in name) or name in _PROXY_VARIABLES
