"""Values given to secret-named keys, whatever the syntax that gives them.

``DB_PASSWORD=x``, ``password: x``, ``"api_key": "x"``, ``'secret' => 'x'``,
``define('AUTH_KEY', 'x')``, ``$token = "x"``, ``Password=x;`` in a
connection string, ``X-Api-Key: x`` in a header, ``<password>x</password>``:
one grammar, three judgements.

- The name (`secret_name`): a key is secret when a secret word is in it
  (``password``, ``passwd``, ``pwd``, ``secret``, ``token``, ``credential``,
  ``api_key``, ``private_key``, ``access_key``, ``client_key``, ``key_data``,
  ...), in any case and with any separators (``dbPassword``, ``DB-PASS``,
  ``db.password``), unless it names something about the secret rather than
  the secret itself (``token_count``, ``password_file``, ``secretName``,
  ``tokenizer``). ``auth``, ``pass`` and ``dsn`` count only as whole words, and
  as weak names: their values must look like credentials.
- A quoted value (`quoted_literal`) given to a secret name is a literal the
  code or config holds: a secret, unless it is a reference (``${DB_PASSWORD}``,
  ``{{ vault_pw }}``), a path, a URL without a password, a placeholder
  (``<token>``, ``***``), a label or sentence (``"Password"``, ``"Enter your
  password"``) or an identifier (``"access_token"``, ``"X-Auth-Token"``).
- A bare value (`bare_literal`) is mostly code (``password = getpass()``,
  ``token = self.token``, ``token: str``), so it must look like a credential:
  letters and digits, symbols, or letters in a random mix of cases. After an
  upper-case name (``POSTGRES_PASSWORD: example``: environments, compose files,
  Dockerfiles) a bare value is as good as a quoted one.

detect-secrets' keyword detector does the same job per file type (it wants a
file name; a command's output has none) and flags ordinary code, so it is not
used (`kfd.redact.shapes`).
"""

from __future__ import annotations

import itertools
import re

from kfd.redact.shapes import Shape
from kfd.redact.values import MIN_NAMED_SECRET, NOT_SECRET_VALUES

SECRET_WORDS = (
    "pass",
    "pwd",
    "secret",
    "token",
    "credential",
    "key",
    "auth",
    "contrase",
)
"""Literal parts one of which every secret name holds (the shapes' triggers)."""

_STRONG = re.compile(
    r"passw(?:or)?d|passphrase|pwd|secret(?!ar)|token(?!i[sz])|credential|contrase[ñn]a"
    r"|(?:api|private|access|client|auth|signing|encryption|master|account|storage|service|db"
    r"|database|license|app|consumer|session|shared|priv)_?key|key_?data|storepass|keypass"
    r"|session_?id"
)
_WEAK = re.compile(r"(?:^|_)(?:auth|pass|pw|dsn)(?:_|$)")
_ABOUT = frozenset(
    "type types count counts len length size limit max min name names file files path "  # noqa: SIM905
    "paths dir url uri urls endpoint env var variable header field prompt label policy "
    "ttl expiry expires expiration timeout format kind mode prefix suffix pattern regex "
    "hint help placeholder message msg error title description required enabled provider "
    "method scheme store manager class model schema version index usage budget ref refs "
    "arn location source command cmd stdin fd id ids used remaining rate estimate range "
    "tokens secrets passwords keys".split()
)
"""Last words of a name that say it holds something about secrets, not a secret."""


def _words(name: str) -> str:
    """``dbPassword`` / ``DB-PASSWORD`` / ``db.password`` -> ``db_password``."""
    name = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    return re.sub(r"[^a-z0-9ñ]+", "_", name.lower()).strip("_")


def secret_name(name: str) -> str | None:
    """``"strong"`` or ``"weak"`` when a key of this name holds a secret, else None."""
    words = _words(name)
    last = words.rsplit("_", 1)[-1]
    if last in _ABOUT or words.startswith(("no_", "ask_", "max_", "min_", "num_")):
        return None
    if _STRONG.search(words):
        return "strong"
    if _WEAK.search(words):
        return "weak"
    return None


_REFERENCE = re.compile(r"^(?:\$|%\(|%[A-Za-z_]+%|\{\{|\{%|#\{|<%|@\{|env[(:.]|process\.env)")
_TEMPLATE = re.compile(r"\{[\w.]*\}|%[sdr]|\$\{")
_PLACEHOLDER = re.compile(r"^(?:<[^<>]*>|\[[^\[\]]*\]|\{[^{}]*\}|([*x•.#?_-])\1+)$", re.IGNORECASE)
_IDENTIFIER = re.compile(r"^[A-Za-z]+(?:[-_.][A-Za-z]+)+$|^[a-z][a-z0-9]*(?:_[a-z0-9]+)+$")
_CONSTANT = re.compile(r"^[A-Z][A-Z_]*$|^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+$")
_UPPER_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")
_PROSE_WORD = re.compile(r"^[^\W\d_]+[.,:;!?)]*$")
_EMAIL = re.compile(r"^[\w.+-]+@[\w-]+(?:\.[\w-]+)+$")
_CODE_PATH = re.compile(r"^[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+$")


_TYPE_WORDS = frozenset(
    "string str number integer int float boolean bool object array any bytes text "  # noqa: SIM905
    "undefined optional required secret password token hidden masked redacted".split()
)
"""Words a schema or a form gives in place of a value."""
_NAMING = re.compile(r"(?i)(?:secret|token|passw|key).*[-_.]|[-_.].*(?:secret|token|passw|key)")
"""``libsecret-1-0``, ``my-app-token``: a value naming a secret, not holding one."""


def _never(value: str, name: str) -> bool:
    """Values that are never a secret, quoted or not: references, templates,
    placeholders, paths, plain URLs, names of code or constants, numbers."""
    lowered = value.lower()
    words = _words(name)
    return (
        _REFERENCE.match(value) is not None
        or _TEMPLATE.search(value) is not None
        or _PLACEHOLDER.match(value) is not None
        or value.startswith(("/", "~/", "./", "../"))
        or ("://" in value and "@" not in value)
        or lowered in NOT_SECRET_VALUES
        or lowered in _TYPE_WORDS
        or lowered in (words, *name.lower().split("."))
        or re.match(r"\d*\*", value) is not None  # 1*tchar: a grammar's repetition
        or lowered in words.split("_")
        or _IDENTIFIER.match(value) is not None
        or _CONSTANT.match(value) is not None
        or _NAMING.search(value) is not None
        or value.replace(".", "", 1).isdigit()
        or _EMAIL.match(value) is not None
        or re.match(r"#[0-9a-fA-F]{3,8}\b", value) is not None  # a colour
    )


def quoted_literal(value: str, name: str) -> bool:
    """Whether a quoted ``value`` given to secret-named ``name`` is a secret."""
    value = value.strip()
    if len(value) < MIN_NAMED_SECRET or _never(value, name):
        return False
    pieces = value.split()
    if len(pieces) > 1:
        # Words with spaces: a generated phrase (WordPress's keys), not a sentence
        # ("Enter your password") nor a style ("bold #ff0000").
        strong = [piece for piece in pieces if credential_like(piece) and piece[0] != "#"]
        return 2 * len(strong) >= len(pieces)
    return credential_like(value)


_CAMEL_NUMBERED = re.compile(r"^[a-z]+(?:[A-Z][a-z]+)+\d{0,2}$")
"""``mapToken2``, ``browserToken``: a variable of code."""


def bare_literal(value: str, name: str) -> bool:
    """Whether an unquoted ``value`` given to secret-named ``name`` is a secret."""
    if len(value) < MIN_NAMED_SECRET or _never(value, name):
        return False
    if value[0] in "!&*|>#" or _CODE_PATH.match(value) or "?." in value:
        return False  # YAML tags, anchors, aliases; self.token, settings.SECRET_KEY
    if _CAMEL_NUMBERED.match(value):
        return False
    return credential_like(value)


def credential_like(value: str) -> bool:
    """Letters with digits or symbols, or letters in a random mix of cases, or a run
    of lower-case letters longer than words are: not a word or a name of code."""
    if any(c.isspace() for c in value):
        return False
    if any(c.isdigit() for c in value) and any(c.isalpha() for c in value):
        return True
    if any(not (c.isalnum() or c in "_.-") for c in value):
        return True
    if not value.isalpha():
        return False
    switches = sum(a.isupper() != b.isupper() for a, b in itertools.pairwise(value))
    # A random mix switches case about every other letter; CamelCase words, every few.
    return (len(value) >= 10 and 2 * switches >= len(value)) or (
        value.islower() and len(value) >= 20
    )


def _name_of(match: re.Match[str]) -> tuple[str, int]:
    """The whole key name the match's secret word ends (``db`` + ``_password``), and
    where it begins."""
    text, begin = match.string, match.start()
    while begin > 0 and (text[begin - 1].isalnum() or text[begin - 1] in "_.-"):
        begin -= 1
    return text[begin : match.start()] + match.group("tail"), begin


_OPERATOR_AFTER = re.compile(r"[ \t]*(?:\?\?|\|\||&&|[-+*/%?:<>=&|^]|\.\w|\[|\()")
"""After a bare value: it is one operand of code (``error ?? this.pop()``)."""
_EXPRESSION_AFTER = re.compile(r"\s*(?:[-+%*]|\.\w|\[)")
"""After a quoted value: it is one piece of an expression ("Basic " + encoded)."""


def _assigned(secret: str, match: re.Match[str]) -> bool:
    full, begin = _name_of(match)
    name = full.lstrip("-.")
    strength = secret_name(name)
    if strength is None:
        return False
    text, end = match.string, match.end()
    quote_before = text[begin - 1 : begin] if begin > 0 else ""
    if match.group("quoted") is None:
        if match.group("sep").strip() == ",":
            return False  # ("password", other): one argument after another
        if _OPERATOR_AFTER.match(text, end) or (
            text[end : end + 1] == ";" and match.group("sep") != match.group("sep").strip()
        ):
            return False  # token = error ?? fallback; var token = other;
        if match.group("sep").strip() == ":" and re.match(r"[ \t]+\w", text[end : end + 2]):
            return False  # password: the user's password (a sentence)
        if strength == "strong" and _UPPER_NAME.match(name):
            # DB_PASSWORD=x, POSTGRES_PASSWORD: x: an environment, not code.
            return quoted_literal(secret, name) and text[end : end + 1] not in ("(", "[")
        return bare_literal(secret, name) and text[end : end + 1] not in ("(", "[")
    if _EXPRESSION_AFTER.match(text, end) or re.match(r"[.,)\]+]", secret):
        return False  # one piece of an expression, or a string read inside out
    if quote_before and not match.group("close") and match.group("q")[-1] == quote_before:
        return False  # "Set-Cookie:", sep: the separator was inside a string
    if match.group("sep").strip() == ",":
        # define('KEY', 'value'): a quoted key, then one quoted credential that
        # closes the call or the pair (not a list of names, not a JSON key).
        closes = re.match(r"\s*[)\]]", text[end : end + 8]) is not None
        if not (quote_before and match.group("close") and closes) or "." in name:
            return False
        return quoted_literal(secret, name) and credential_like(secret)
    if strength == "weak":
        return quoted_literal(secret, name) and credential_like(secret)
    return quoted_literal(secret, name)


def _cased(words: tuple[str, ...]) -> str:
    """``pass|Pass|PASS|...``: ten times faster to search for than ``(?i)pass|...``
    (an expression ignoring case is not searched for by its literal words)."""
    return "|".join(f"{w}|{w.title()}|{w.upper()}" for w in words)


_NAME = f"(?P<tail>(?:{_cased(SECRET_WORDS)})[\\w.-]*)"
_SEP = r"(?P<close>\\?[\"'`]?\]?)(?P<sep>\s*(?:=>|:=|=(?![=>~])|:(?![:/\\]))|(?<=[\"'`])\s*,)"
_VALUE = (
    r"[ \t]*(?:(?P<q>\\?[\"'`])(?P<quoted>(?:(?!(?P=q))[^\n]){1,400}?)(?P=q)"
    r"|(?P<bare>[^\s\"'`,;()\[\]{}<>]+))"
)

SHAPES: tuple[Shape, ...] = (
    Shape(
        "secret",
        re.compile(f"{_NAME}{_SEP}{_VALUE}"),
        check=_assigned,
        triggers=SECRET_WORDS,
        fold=True,
    ),
    Shape(
        "secret",
        # <password>x</password>: Maven's settings.xml, .NET and Java configs.
        re.compile(
            r"(?i)<(?P<tail>[\w:.-]*(?:pass|secret|token|key|credential)[\w.-]*)>"
            r"(?P<quoted>[^<\n]{1,400})</(?P=tail)>"
        ),
        check=lambda secret, match: (
            secret_name(match["tail"]) == "strong" and quoted_literal(secret, match["tail"])
        ),
        triggers=("</",),
    ),
)
"""A value given to a secret-named key; the same, as an XML element."""
