"""The one place that takes secrets out of text before kfd keeps or shows it.

Everything persisted or broadcast passes through here: every event (the
journal redacts before it writes and publishes), streamed model text and
tool output (`StreamRedactor`), the transcript and the full tool outputs
stored beside it, replies to frontends, the daemon's log (a logging filter),
remembered facts, rules kept with "allow always" (one holding a secret is
not kept), the ledger's error texts, and plugins' own logs (`kfd.api.scrub`).
What the model reads during a live turn is left alone: it needs the real
text to work with it.

Two kinds of secrets are taken out:

- known values (`kfd.redact.values`): every API key kfd holds, the values of
  variables whose names look secret, and of every variable commands do not
  get that could be a secret, learned once at daemon start
  (`learn_environment`), plus what plugins announce (`learn_secrets`);
- shapes: kfd's own patterns (`kfd.redact.shapes`: ``Authorization`` and
  ``Cookie`` headers, PEM blocks, bare or base64-encoded, URL passwords, the
  token formats of services) and those of ``detect-secrets``' detectors;
  values given to secret-named keys in any syntax (`kfd.redact.assignments`:
  ``DB_PASSWORD=x``, ``define('AUTH_KEY', 'x')``, ``"token": "x"``);
  credentials on command lines (`kfd.redact.commands`: ``mysql -pX``,
  ``curl -u user:X``, ``--token X``).

A match is replaced by a marker naming its kind (``[redacted api-key]``,
``[redacted $GITHUB_TOKEN]``), so the text still reads sensibly and the reader
knows something was there. This is a floor, not a guarantee: a secret in no
known shape and no known value passes.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec

from kfd.redact import assignments, commands, shapes
from kfd.redact.values import (
    KNOWN_SECRET_VARIABLES,
    known,
    learn_environment,
    looks_secret,
    plausible,
)

__all__ = [
    "KNOWN_SECRET_VARIABLES",
    "Redacted",
    "RedactingFilter",
    "StreamRedactor",
    "learn_environment",
    "learn_secrets",
    "looks_secret",
    "plausible",
    "redact",
    "redact_struct",
    "scrub",
]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Redacted:
    """The text with its secrets replaced, and the kinds that were found."""

    text: str
    kinds: list[str]

    @property
    def count(self) -> int:
        return len(self.kinds)


def learn_secrets(values: Mapping[str, str]) -> None:
    """Redact these values, labelled by what holds them, from now on."""
    known.learn(values)


def warm_up() -> None:
    """Load the detector now (the daemon's start) rather than on the first event."""
    shapes.detector_shapes()


def redact(text: str) -> Redacted:
    """``text`` with every known secret value and every known shape of secret replaced."""
    kinds: list[str] = []
    if known.regex is not None:

        def by_value(match: re.Match[str]) -> str:
            kind = known.forms[match.group(0)]
            kinds.append(kind)
            return f"[redacted {kind}]"

        text = known.regex.sub(by_value, text)
    lowered = text.lower()
    if len(text) <= SHORT_TEXT:
        for shape in _short_texts().shapes_in(text, lowered):
            if len(text) >= shape.shortest:
                text = _replace(shape, text, kinds)
        return Redacted(text, kinds)
    every, exact, folded = _gates()
    # One search per case says whether any shape's trigger is present at all;
    # most text (a streamed answer) has none, and then no shape is looked at.
    exact_hit = exact is not None and exact.search(text) is not None
    folded_hit = folded is not None and folded.search(lowered) is not None
    for shape in every[exact_hit, folded_hit]:
        if len(text) < shape.shortest:
            continue
        if shape.triggers:
            if shape.fold:
                if not folded_hit:
                    continue
                haystack = lowered
            else:
                if not exact_hit:
                    continue
                haystack = text
            if not any(trigger in haystack for trigger in shape.triggers):
                continue
        replaced = _replace(shape, text, kinds)
        if replaced is not text:
            text, lowered = replaced, replaced.lower()
            exact_hit = exact is not None and exact.search(text) is not None
            folded_hit = folded is not None and folded.search(lowered) is not None
    return Redacted(text, kinds)


Shapes = tuple[shapes.Shape, ...]


@functools.cache
def _gates() -> tuple[
    dict[tuple[bool, bool], Shapes], re.Pattern[str] | None, re.Pattern[str] | None
]:
    """The shapes worth trying, in order, by whether an exact and a folded trigger
    was found (a streamed piece often has none: it is not walked past every shape);
    one pattern for all exact triggers and one for all folded ones (searched in the
    lowered text, as the shapes' own triggers are)."""
    every = (*shapes.OWN, *commands.SHAPES, *assignments.SHAPES, *shapes.detector_shapes())

    def gate(triggers: set[str]) -> re.Pattern[str] | None:
        if not triggers:
            return None
        return re.compile("|".join(re.escape(t) for t in sorted(triggers)))

    def worth(shape: shapes.Shape, exact_hit: bool, folded_hit: bool) -> bool:
        return not shape.triggers or (folded_hit if shape.fold else exact_hit)

    by_hits = {
        (e, f): tuple(shape for shape in every if worth(shape, e, f))
        for e in (False, True)
        for f in (False, True)
    }
    exact = {t for shape in every if not shape.fold for t in shape.triggers}
    folded = {t for shape in every if shape.fold for t in shape.triggers}
    return by_hits, gate(exact), gate(folded)


SHORT_TEXT = 2048
"""Up to this long (a streamed piece, a title, a command), a text's triggers are
listed in one pass and pick its shapes; longer ones ask each shape in turn
(a pass per trigger costs less than one pass trying every trigger at each place)."""


class _ShortTexts:
    """Which shapes a short text calls for, from the triggers found in it."""

    def __init__(self, every: Shapes) -> None:
        self.every = every
        self.always = frozenset(i for i, shape in enumerate(every) if not shape.triggers)
        self.exact, self.exact_pattern = self._index(every, fold=False)
        self.folded, self.folded_pattern = self._index(every, fold=True)

    @staticmethod
    def _index(every: Shapes, *, fold: bool) -> tuple[dict[str, set[int]], re.Pattern[str]]:
        wanted: dict[str, set[int]] = {}
        for index, shape in enumerate(every):
            if shape.fold == fold:
                for trigger in shape.triggers:
                    wanted.setdefault(trigger, set()).add(index)
        # A trigger found stands for those inside it too ("hvs." holds "s."), and
        # a look-ahead finds one at every place, so none hides another.
        for trigger in wanted:
            for inner in wanted:
                if inner in trigger:
                    wanted[trigger] |= wanted[inner]
        ordered = sorted(wanted, key=len, reverse=True)
        return wanted, re.compile("(?=(" + "|".join(map(re.escape, ordered)) + "))")

    def shapes_in(self, text: str, lowered: str) -> Shapes:
        chosen = set(self.always)
        for found in self.exact_pattern.findall(text):
            chosen |= self.exact[found]
        for found in self.folded_pattern.findall(lowered):
            chosen |= self.folded[found]
        return tuple(self.every[i] for i in sorted(chosen))


@functools.cache
def _short_texts() -> _ShortTexts:
    by_hits, _, _ = _gates()
    return _ShortTexts(by_hits[True, True])  # every shape, in order


def _replace(shape: shapes.Shape, text: str, kinds: list[str]) -> str:
    found = False

    def one(match: re.Match[str]) -> str:
        nonlocal found
        start, end = shapes.secret_span(shape, match)
        secret = text[start:end]
        if not secret or secret.startswith("[redacted") or "[redacted" in secret:
            return match.group(0)  # already taken out by an earlier shape
        if shape.check is not None and not shape.check(secret, match):
            return match.group(0)
        found = True
        kinds.append(shape.kind)
        whole = match.group(0)
        offset = match.start()
        return f"{whole[: start - offset]}[redacted {shape.kind}]{whole[end - offset :]}"

    replaced = shape.regex.sub(one, text)
    return replaced if found else text


CACHED_CHARS = 512
"""Texts up to this long are remembered with their redaction (`scrub`)."""


def scrub(text: str) -> str:
    """`redact`, the text only.

    Every reply and event passes here, and most of their strings recur (tool
    names, paths, titles, statuses): short ones are looked up rather than run
    through every shape again. The cache is keyed by the known-value pattern
    too, so a secret learned later is never missed.
    """
    if len(text) <= CACHED_CHARS:
        return _scrub_short(known.regex, text)
    return redact(text).text


@functools.lru_cache(maxsize=8192)
def _scrub_short(_known: re.Pattern[str] | None, text: str) -> str:
    return redact(text).text


class StreamRedactor:
    """Redacts a stream of text chunks (model deltas, tool output) as they come.

    A known secret value split across chunks is caught: the end of a chunk
    that could begin a known value is held back until the next chunk tells
    (or `finish` releases it). Shapes are caught within what is released at
    once; the whole text is redacted again when it is stored.
    """

    def __init__(self) -> None:
        self._held = ""

    def feed(self, chunk: str) -> str:
        """The part of the stream so far that can be shown, redacted."""
        text = self._held + chunk
        keep = known.held(text) if known.regex is not None else 0
        self._held = text[len(text) - keep :] if keep else ""
        ready = text[: len(text) - keep] if keep else text
        # Not through `scrub`'s cache: streamed pieces hardly ever recur, and
        # thousands a second would push out the strings that do.
        return redact(ready).text if ready else ""

    def finish(self) -> str:
        """What was held back, redacted (the stream has ended)."""
        held, self._held = self._held, ""
        return scrub(held) if held else ""


def redact_struct(value: T) -> T:
    """A copy of a msgspec Struct with every string in it redacted (itself if clean).

    Dictionary keys are kept; only values are text that may carry a secret.
    """
    plain = msgspec.to_builtins(value)
    cleaned, changed = _walk(plain)
    if not changed:
        return value
    return msgspec.convert(cleaned, type(value))


def _walk(node: Any) -> tuple[Any, bool]:
    if isinstance(node, str):
        cleaned = scrub(node)
        return cleaned, cleaned != node
    if isinstance(node, dict):
        changed = False
        out: dict[Any, Any] = {}
        for key, item in node.items():
            out[key], hit = _walk(item)
            changed = changed or hit
        return out, changed
    if isinstance(node, list):
        items = [_walk(item) for item in node]
        return [item for item, _ in items], any(hit for _, hit in items)
    return node, False


class RedactingFilter(logging.Filter):
    """Redacts every log record's message (with its arguments and traceback).

    Put it on the handler that writes: the record is formatted here, so what
    reaches the file is the redacted text.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.msg = scrub(message)
        record.args = None
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
        record.exc_info = None
        if record.stack_info:
            record.stack_info = scrub(record.stack_info)
        return True
