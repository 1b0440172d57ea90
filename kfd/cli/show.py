"""What the ``kfd`` commands print for people: every line goes through `say`.

What a command prints comes from repositories, config files, models, tools
and the file system: rule texts, hook commands, paths, reasons. A terminal
acts on some of it instead of showing it: an escape sequence erases or
rewrites what was printed, a carriage return or a backspace draws over it,
a bidi override reorders it, a zero-width character hides in it, and a
newline inside a value forges a line of its own. ``kfd trust`` asks on such
text whether to grant rights, so it must show the file as it is.

`say` prints lines with each of those characters made visible as an escape
(``\\x1b``, ``\\r``, ``\\n``, ``<U+202E>``: `kfd.client.exact`, as the REPL
and ``kfd run`` show approvals); `say_text` prints text whose newlines are
its own line breaks (a diff, an error with the daemon's output). ``--json``
output is left as it is: JSON escapes control characters itself, and a
script wants the data unchanged.
"""

from __future__ import annotations

import sys
from typing import TextIO


def one_line(text: str, *, keep_tabs: bool = False) -> str:
    """``text`` as one line a terminal shows as it is: every character it would
    act on or hide escaped, newlines too (tabs kept with ``keep_tabs``)."""
    # Here, not at the top: every command's parser imports this module, and
    # importing `kfd.client` takes a tenth of a second that `kfd --help` need not wait.
    from kfd.client.exact import visible

    return visible(text, keep_tabs=keep_tabs).replace("\n", "\\n")


def lines_of(text: str) -> list[str]:
    """``text`` split at its newlines only (no line for a final one): a carriage
    return or a form feed stays in its line, to be shown escaped."""
    return text.removesuffix("\n").split("\n") if text else []


def say(*lines: str, file: TextIO | None = None, keep_tabs: bool = False) -> None:
    """Print each of ``lines`` as one line (`one_line`), on stdout unless ``file``;
    ``keep_tabs`` for file content (a diff)."""
    out = sys.stdout if file is None else file
    out.write("".join(one_line(line, keep_tabs=keep_tabs) + "\n" for line in lines))


def say_text(text: str, *, file: TextIO | None = None, keep_tabs: bool = False) -> None:
    """Print ``text`` with its newlines as line breaks (`lines_of`), each line as `say` does."""
    say(*lines_of(text), file=file, keep_tabs=keep_tabs)
