"""The one place that takes secrets out of text before kfd keeps or shows it.

Everything persisted or broadcast passes through here: every event (the
journal redacts before it writes and publishes), the transcript and the full
tool outputs stored beside it, replies to frontends, the daemon's log (a
logging filter), and remembered facts. What the model reads during a live
turn is left alone: it needs the real text to work with it.

Two kinds of secrets are taken out:

- common shapes of credentials: provider API keys, access tokens,
  ``Authorization`` headers, PEM blocks and ``password = ...`` style
  assignments (`PATTERNS`);
- the values of the secret environment variables kfd knows: the API key
  variables and every variable whose name looks secret (`kfd.api.looks_secret`),
  learned once at daemon start (`learn_environment`).

A match is replaced by a marker naming its kind (``[redacted api-key]``,
``[redacted $GITHUB_TOKEN]``), so the text still reads sensibly and the reader
knows something was there.

This is a floor, not a guarantee: a secret in no known shape passes, and a
secret split across two streamed chunks is only caught once the whole text is
kept. Extend `PATTERNS` (most specific first) rather than redacting anywhere else.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

import msgspec

__all__ = [
    "PATTERNS",
    "Redacted",
    "RedactingFilter",
    "learn_environment",
    "learn_secrets",
    "looks_secret",
    "redact",
    "redact_struct",
    "scrub",
]

T = TypeVar("T")


def looks_secret(name: str) -> bool:
    """Whether an environment variable's name says it holds a secret.

    ``*KEY*``, ``*TOKEN*``, ``*SECRET*``, ``*PASSWORD*``, ``*PASSWD*``,
    ``*CREDENTIAL*``, ``*PRIVATE*``, and the words ``PASS``, ``PWD``, ``AUTH``,
    ``COOKIE``, ``DSN`` between underscores, in any case. kfd redacts the values of such variables
    everywhere, even those ``[sandbox] env`` passes to commands. Commands get
    an allow-list of variables (`command_environment`), not every variable
    whose name looks harmless.
    """
    upper = name.upper()
    if any(part in upper for part in _SECRET_PARTS):
        return True
    return not _SECRET_WORDS.isdisjoint(upper.split("_"))


_SECRET_PARTS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "PRIVATE")
_SECRET_WORDS = frozenset({"PASS", "PWD", "AUTH", "COOKIE", "DSN"})
"""Whole words of a name (between underscores): ``MYSQL_PWD``, not ``GIT_AUTHOR_NAME``."""


@dataclass(frozen=True, slots=True)
class Redacted:
    """The text with its secrets replaced, and the kinds that were found."""

    text: str
    kinds: list[str]

    @property
    def count(self) -> int:
        return len(self.kinds)


class _Pattern(NamedTuple):
    kind: str
    regex: re.Pattern[str]
    keep: int = 0
    """Groups kept before the secret (a header name, a key name): the secret
    is the last group when ``keep`` is set, else the whole match."""
    check: Callable[[str], bool] | None = None
    """Whether a candidate really looks like a secret (else it is left alone)."""


def _mixed(value: str) -> bool:
    """A value with letters and digits: a literal credential, not a name in code."""
    return any(c.isdigit() for c in value) and any(c.isalpha() for c in value)


PATTERNS: tuple[_Pattern, ...] = (
    _Pattern(
        "private-key",
        re.compile(r"-----BEGIN [A-Z0-9 ]+-----[\s\S]*?-----END [A-Z0-9 ]+-----"),
    ),
    _Pattern(
        "authorization",
        re.compile(
            r"(?i)((?:proxy-)?authorization\s*[:=]\s*[\"']?(?:bearer|basic|token|digest)?\s*)"
            r"([^\s\"',;]{4,})"
        ),
        keep=1,
    ),
    _Pattern("api-key", re.compile(r"\bsk-(?:ant-|proj-|or-)?[A-Za-z0-9_-]{20,}")),
    _Pattern("github-token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_\w{30,})")),
    _Pattern("aws-access-key", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    _Pattern("slack-token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}")),
    _Pattern("google-api-key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}")),
    _Pattern("stripe-key", re.compile(r"\b(?:sk|rk|pk)_(?:live|test)_[0-9A-Za-z]{16,}")),
    _Pattern("jwt", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")),
    _Pattern(
        "secret",
        re.compile(
            r"(?i)(\b[\w.-]*(?:api[_-]?key|secret|token|passw(?:or)?d|passwd|credential)s?"
            r"[\"']?\s*[:=]\s*[\"']?)([^\s\"',;()\[\]{}<>]{8,})"
        ),
        keep=1,
        check=_mixed,
    ),
)

_MAYBE = re.compile(
    r"(?i)-----BEGIN|authorization|sk-|gh[pousr]_|github_pat_|AKIA|ASIA|xox|AIza|_live_"
    r"|_test_|eyJ|key|secret|token|passw|credential"
)
"""Text without any of these holds no secret of `PATTERNS`' shapes (a fast first look)."""

MIN_KNOWN_SECRET = 8
"""Shorter values of secret variables are not redacted (``1``, ``true``: they
would blank out ordinary text and protect nothing)."""

KNOWN_SECRET_VARIABLES = (
    "CLOUDFLARE_API_TOKEN",
    "KFD_API_KEY",
    "GITHUB_TOKEN",
    "GH_TOKEN",
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
)

_known: dict[str, str] = {}
"""Secret values kfd knows, to the variable that holds them."""
_known_regex: re.Pattern[str] | None = None


def learn_secrets(values: Mapping[str, str]) -> None:
    """Redact these values (by the name of what holds them) from now on."""
    global _known_regex
    for name, value in values.items():
        if len(value) >= MIN_KNOWN_SECRET and not value.startswith(("/", "~")):
            _known.setdefault(value, name)
    if _known:
        ordered = sorted(_known, key=len, reverse=True)  # longest first: no partial hits
        _known_regex = re.compile("|".join(re.escape(value) for value in ordered))


def learn_environment(environ: Mapping[str, str], names: Iterable[str] = ()) -> None:
    """Learn the values of ``names``, of `KNOWN_SECRET_VARIABLES` and of every
    variable whose name looks secret."""
    wanted = {*names, *KNOWN_SECRET_VARIABLES}
    learn_secrets(
        {
            f"${name}": value
            for name, value in environ.items()
            if name in wanted or looks_secret(name)
        }
    )


def redact(text: str) -> Redacted:
    """``text`` with every known shape of secret and every known secret value replaced."""
    kinds: list[str] = []
    if _known_regex is not None:

        def known(match: re.Match[str]) -> str:
            kind = _known[match.group(0)]
            kinds.append(kind)
            return f"[redacted {kind}]"

        text = _known_regex.sub(known, text)
    if not _MAYBE.search(text):
        return Redacted(text, kinds)
    for pattern in PATTERNS:

        def replace(match: re.Match[str], pattern: _Pattern = pattern) -> str:
            keep = pattern.keep
            secret = match.group(keep + 1) if keep else match.group(0)
            if secret.startswith("[redacted"):  # already taken out by an earlier pattern
                return match.group(0)
            if pattern.check is not None and not pattern.check(secret):
                return match.group(0)
            kinds.append(pattern.kind)
            prefix = "".join(match.group(i) or "" for i in range(1, keep + 1))
            return f"{prefix}[redacted {pattern.kind}]"

        text = pattern.regex.sub(replace, text)
    return Redacted(text, kinds)


def scrub(text: str) -> str:
    """`redact`, the text only."""
    return redact(text).text


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
