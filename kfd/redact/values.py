"""Secret values kfd knows, redacted wherever they appear, whatever their shape.

Learned at daemon start (`learn_environment`): the API key variables, every
variable whose name looks secret (`looks_secret`), and every variable
commands do not get (the sandbox's allow-list withholds it) whose value
could be a secret (`plausible`): ``DATABASE_URL``, ``MYSQL_PWD`` and an API
key under any name. Plugins add the secrets they obtain themselves
(`kfd.api.keep_secret`: a token from ``gh auth token``).
"""

from __future__ import annotations

import base64
import re
import urllib.parse
from collections.abc import Iterable, Mapping

MIN_KNOWN_SECRET = 8
"""Shorter values are not redacted by value (``1``, ``true``): they would blank
out ordinary text and protect nothing."""

MIN_NAMED_SECRET = 6
"""The floor for a variable whose name says it is secret (``MYSQL_PWD=hunter2``)."""

KNOWN_SECRET_VARIABLES = (
    "CLOUDFLARE_API_TOKEN",
    "KFD_API_KEY",
    "GITHUB_TOKEN",
    "GH_TOKEN",
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
)

NOT_SECRET_VALUES = frozenset({"true", "false", "yes", "no", "none", "null", "enabled", "disabled"})

KFD_SETTINGS = ("KFD_PROVIDER", "KFD_BASE_URL", "KFD_MODEL", "KFD_GATEWAY_ID")
"""kfd's own non-secret settings: they name models and endpoints shown everywhere."""


def looks_secret(name: str) -> bool:
    """Whether an environment variable's name says it holds a secret.

    ``*KEY*``, ``*TOKEN*``, ``*SECRET*``, ``*PASSWORD*``, ``*PASSWD*``,
    ``*CREDENTIAL*``, ``*PRIVATE*``, and the words ``PASS``, ``PWD``, ``AUTH``,
    ``COOKIE``, ``DSN`` between underscores, in any case. kfd redacts the
    values of such variables everywhere, even those ``[sandbox] env`` passes to
    commands. Commands get an allow-list of variables, not every variable
    whose name looks harmless.
    """
    upper = name.upper()
    if any(part in upper for part in _SECRET_PARTS):
        return True
    return not _SECRET_WORDS.isdisjoint(upper.split("_"))


_SECRET_PARTS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "PRIVATE")
_SECRET_WORDS = frozenset({"PASS", "PWD", "AUTH", "COOKIE", "DSN"})
"""Whole words of a name (between underscores): ``MYSQL_PWD``, not ``GIT_AUTHOR_NAME``."""


def plausible(value: str, *, named: bool = False) -> bool:
    """Whether ``value`` could be a secret: not a path, not a number, not a word.

    ``named``: its variable's name says it is secret, so a shorter or plainer
    value still counts.
    """
    if len(value) < (MIN_NAMED_SECRET if named else MIN_KNOWN_SECRET):
        return False
    if value.startswith(("/", "~", "./")) or value.lower() in NOT_SECRET_VALUES:
        return False
    if "://" in value and "@" in value:
        return True  # a URL with credentials
    if named:
        return not value.isdigit()
    if any(c.isspace() for c in value) or value.isdigit():
        return False
    if ":/" in value or value.count(":") > 2:
        return False  # a list of paths, an address
    return any(c.isdigit() for c in value) or len(value) >= 16


MIN_ENCODED_SECRET = 12
"""From this length a value is also found encoded (base64, hex, percent-encoded): the
encoded forms of shorter ones are too short to tell from ordinary text."""


def encoded_forms(value: str) -> dict[str, str]:
    """The forms a value takes when a command encodes it, each with its encoding:
    hex, percent-encoding and base64 (standard and URL-safe; for base64, the part
    that does not depend on the bytes around the value, at each of its 3 alignments)."""
    raw = value.encode("utf-8", "surrogatepass")
    forms = {raw.hex(): "hex", raw.hex().upper(): "hex", urllib.parse.quote(value, safe=""): "url"}
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + raw + b"\0\0").decode("ascii")
        # Whole 4-character groups of value bytes only: the first group holds the
        # bytes before the value (when shifted), the last ones the bytes after it.
        first = 4 if shift else 0
        last = (shift + len(raw)) // 3 * 4
        middle = encoded[first:last]
        if len(middle) >= MIN_ENCODED_SECRET:
            forms[middle] = "base64"
            forms[middle.replace("+", "-").replace("/", "_")] = "base64"
    forms.pop(value, None)
    return forms


class Known:
    """The secret values learned so far, and how to find them fast."""

    def __init__(self) -> None:
        self.labels: dict[str, str] = {}
        """Value -> what holds it (``$GITHUB_TOKEN``)."""
        self.forms: dict[str, str] = {}
        """Every form a value is found in (itself, encoded) -> what it is."""
        self.regex: re.Pattern[str] | None = None
        self.prefixes: frozenset[str] = frozenset()
        """Every proper prefix of every value (a streamed chunk may end inside one)."""
        self.longest = 0

    def learn(self, values: Mapping[str, str], *, minimum: int = MIN_KNOWN_SECRET) -> None:
        """Redact these values (labelled by what holds them) from now on."""
        added = False
        for label, value in values.items():
            usable = len(value) >= minimum and not value.startswith(("/", "~"))
            if usable and value not in self.labels:
                self.labels[value] = label
                added = True
        if not added:
            return
        forms: dict[str, str] = {}
        for value, label in self.labels.items():
            if len(value) >= MIN_ENCODED_SECRET:
                for form, encoding in encoded_forms(value).items():
                    forms.setdefault(form, f"{label} ({encoding})")
        self.forms = {**forms, **self.labels}
        ordered = sorted(self.forms, key=len, reverse=True)  # longest first: no partial hits
        self.regex = re.compile("|".join(re.escape(value) for value in ordered))
        self.prefixes = frozenset(value[:cut] for value in ordered for cut in range(1, len(value)))
        self.longest = len(ordered[0])

    def held(self, text: str) -> int:
        """How many characters at the end of ``text`` could begin a known value."""
        for size in range(min(self.longest - 1, len(text)), 0, -1):
            if text[-size:] in self.prefixes:
                return size
        return 0

    def snapshot(self) -> dict[str, str]:
        return dict(self.labels)

    def restore(self, labels: Mapping[str, str]) -> None:
        self.__init__()  # type: ignore[misc]
        self.learn({label: value for value, label in labels.items()}, minimum=1)


known = Known()
"""The daemon's known secret values (one per process)."""


def learn_environment(
    environ: Mapping[str, str],
    names: Iterable[str] = (),
    withheld: Mapping[str, str] | None = None,
) -> None:
    """Learn the values of ``names``, of `KNOWN_SECRET_VARIABLES`, of every variable
    whose name looks secret, and the `plausible` values of ``withheld`` variables
    (those commands do not get)."""
    wanted = {*names, *KNOWN_SECRET_VARIABLES}
    named = {
        f"${name}": value
        for name, value in environ.items()
        if (name in wanted or looks_secret(name)) and plausible(value, named=True)
    }
    known.learn(named, minimum=MIN_NAMED_SECRET)
    others = {
        f"${name}": value
        for name, value in (withheld or {}).items()
        if name not in KFD_SETTINGS and plausible(value)
    }
    known.learn(others)
