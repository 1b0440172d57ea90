"""Tab completion: slash commands and their arguments, and ``@path`` references.

``@`` followed by a path completes files and directories of the session's
workspace (hidden ones only when the typed part starts with a dot), so a
message can point the model at exact files.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document

from kfd import protocol as p
from kfd_repl.commands import COMMANDS

REFERENCE_LIMIT = 200
"""Entries offered for one directory at most."""


class ReplCompleter(Completer):
    """Completes what the REPL understands; blocking work runs in a thread."""

    def __init__(
        self,
        workspace: Callable[[], Path],
        session_ids: Callable[[], Iterable[str]],
        custom: Callable[[], Mapping[str, p.CommandInfo]] | None = None,
    ) -> None:
        self.workspace = workspace
        self.session_ids = session_ids
        self.custom = custom or dict

    def get_completions(
        self, document: Document, complete_event: CompleteEvent
    ) -> Iterable[Completion]:
        before = document.text_before_cursor
        if before.startswith("/") and "\n" not in before:
            yield from self._command(before)
            return
        word = document.get_word_before_cursor(WORD=True)
        if word.startswith("@"):
            yield from self._reference(word[1:])

    def _command(self, before: str) -> Iterable[Completion]:
        name, space, argument = before.partition(" ")
        if not space:
            for command in COMMANDS:
                if command.name.startswith(name):
                    yield Completion(
                        command.name,
                        -len(name),
                        display_meta=command.help,
                    )
            builtin = {command.name for command in COMMANDS}
            for custom, info in sorted(self.custom().items()):
                if f"/{custom}".startswith(name) and f"/{custom}" not in builtin:
                    meta = info.description or f"{info.source} command"
                    if info.argument_hint:
                        meta = f"{info.argument_hint} · {meta}"
                    yield Completion(f"/{custom}", -len(name), display_meta=meta)
            return
        if " " in argument:
            return
        choices: Iterable[str] = ()
        if name == "/mode":
            choices = p.MODES
        elif name == "/attach":
            choices = self.session_ids()
        elif name == "/rules":
            choices = ("remove",)
        elif name == "/undo":
            choices = ("overwrite", "keep", "merge")
        for choice in choices:
            if choice.startswith(argument):
                yield Completion(choice, -len(argument))

    def _reference(self, partial: str) -> Iterable[Completion]:
        directory, _, prefix = partial.rpartition("/")
        base = self.workspace() / directory if directory else self.workspace()
        try:
            entries = sorted(os.scandir(base), key=lambda entry: entry.name)
        except OSError:
            return
        offered = 0
        for entry in entries:
            name = entry.name
            if not name.startswith(prefix) or name == ".git":
                continue
            if name.startswith(".") and not prefix.startswith("."):
                continue
            try:
                is_dir = entry.is_dir()
            except OSError:
                continue
            shown = name + ("/" if is_dir else "")
            yield Completion(shown, -len(prefix), display=shown)
            offered += 1
            if offered >= REFERENCE_LIMIT:
                return
