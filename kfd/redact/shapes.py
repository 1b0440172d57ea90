"""The shapes of secrets: kfd's own patterns, then a maintained detector's.

kfd's patterns (`OWN`) cover what it must never miss and what the
detector does not know: ``Authorization`` headers, PEM blocks and PEM or
OpenSSH key bodies whose markers were cut off, ``key = value`` assignments
(AWS credential files among them), passwords inside URLs. The token
formats of services (AWS, GitHub, GitLab, Slack, Stripe, npm, PyPI, JWTs,
...) come from ``detect-secrets``' regular-expression detectors
(`DETECTORS`), read once from the installed package: when it learns a new
format, kfd does too. Its entropy and keyword heuristics are not used: they
flag ordinary code and hashes.

Every shape names literal `Shape.triggers`; a text that contains none of
them is not searched with that shape's expression, which keeps redaction of
large tool outputs cheap.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any, NamedTuple


class Shape(NamedTuple):
    """One shape of secret."""

    kind: str
    """What the marker says: ``[redacted <kind>]``."""
    regex: re.Pattern[str]
    keep: int = 0
    """Leading groups kept (a header name, a key name, ``scheme://user:``); the
    secret is the group after them. 0: the whole match is the secret."""
    check: Callable[[str], bool] | None = None
    """Whether a candidate really looks like a secret (else it is left alone)."""
    triggers: tuple[str, ...] = ()
    """Literal substrings one of which any match contains (empty: always search)."""
    fold: bool = False
    """The triggers are lower case and looked for in the lowered text."""


def _mixed(value: str) -> bool:
    """A value with letters and digits: a literal credential, not a name in code."""
    return any(c.isdigit() for c in value) and any(c.isalpha() for c in value)


_B64 = "A-Za-z0-9+/"


def _reference(value: str) -> bool:
    """A value that names where a secret is (``$GITHUB_TOKEN``, ``${DB_PASSWORD}``,
    ``$(pass show db)``): a shell expansion, never a secret's own text."""
    return value.startswith("$")


OWN: tuple[Shape, ...] = (
    Shape(
        "private-key",
        re.compile(r"-----BEGIN [A-Z0-9 ]+-----[\s\S]*?-----END [A-Z0-9 ]+-----"),
        triggers=("-----BEGIN",),
    ),
    Shape(
        "private-key",
        # The body of a PEM block whose markers were cut: base64 lines of 64.
        re.compile(rf"(?m)^(?:[{_B64}]{{64}}\r?\n){{2,}}[{_B64}]{{0,64}}={{0,2}}"),
        triggers=("\n",),
    ),
    Shape("private-key", re.compile(rf"\bMII[{_B64}]{{60,}}={{0,2}}"), triggers=("MII",)),
    Shape(
        "private-key",
        re.compile(rf"\bb3BlbnNzaC1rZXktdjE[{_B64}=\s]{{20,}}"),
        triggers=("b3BlbnNzaC1rZXktdjE",),
    ),
    Shape(
        "authorization",
        re.compile(
            r"(?i)((?:proxy-)?authorization\s*[:=]\s*[\"']?(?:bearer|basic|token|digest)?\s*)"
            r"([^\s\"',;]{4,})"
        ),
        keep=1,
        check=lambda value: not _reference(value),
        triggers=("authorization",),
        fold=True,
    ),
    Shape(
        "url-password",
        re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://[^\s:/@?#]+:)([^\s@/?#]{2,})(?=@)"),
        keep=1,
        check=lambda value: not _reference(value),
        triggers=("://",),
    ),
    Shape(
        "api-key",
        re.compile(r"\bsk-(?:ant-|proj-|or-)?[A-Za-z0-9_-]{20,}"),
        triggers=("sk-",),
    ),
    Shape(
        "github-token",
        re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_\w{30,})"),
        triggers=("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
    ),
    Shape(
        "aws-access-key", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), triggers=("AKIA", "ASIA")
    ),
    Shape("slack-token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"), triggers=("xox",)),
    Shape("google-api-key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}"), triggers=("AIza",)),
    Shape(
        "stripe-key",
        re.compile(r"\b(?:sk|rk|pk)_(?:live|test)_[0-9A-Za-z]{16,}"),
        triggers=("_live_", "_test_"),
    ),
    Shape(
        "jwt",
        re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
        triggers=("eyJ",),
    ),
    Shape(
        "secret",
        # key = value, "key": "value", KEY=value: AWS credential files, .env files, YAML.
        re.compile(
            r"(?i)(\b[\w.-]*(?:api[_-]?key|access[_-]?key|secret[_-]?key|private[_-]?key"
            r"|secret|token|passw(?:or)?d|passwd|pwd|credential|auth)s?"
            r"[\"']?\s*[:=]\s*[\"']?)([^\s\"',;()\[\]{}<>]{8,})"
        ),
        keep=1,
        check=_mixed,
        triggers=("key", "secret", "token", "passw", "pwd", "credential", "auth"),
        fold=True,
    ),
)
"""kfd's own shapes, most specific first."""

GITLAB_PREFIXES = (
    "glpat-",
    "gldt-",
    "glft-",
    "glsoat-",
    "glrt-",
    "gr1348941",
    "glcbt-",
    "glimt-",
    "glptt-",
    "glagent-",
    "gloas-",
)

DETECTORS: dict[str, tuple[str, tuple[str, ...], bool]] = {
    "AWSKeyDetector": ("aws-key", ("A3T", "ABIA", "ACCA", "AKIA", "ASIA", "aws"), True),
    "AzureStorageKeyDetector": ("azure-storage-key", ("accountkey=",), True),
    "BasicAuthDetector": ("url-password", ("://",), False),
    "DiscordBotTokenDetector": ("discord-token", (), False),
    "GitHubTokenDetector": ("github-token", ("ghp_", "gho_", "ghu_", "ghs_", "ghr_"), False),
    "GitLabTokenDetector": (
        "gitlab-token",
        GITLAB_PREFIXES,
        True,
    ),
    "JwtTokenDetector": ("jwt", ("eyJ",), False),
    "MailchimpDetector": ("mailchimp-key", ("-us",), False),
    "NpmDetector": ("npm-token", ("_authToken",), False),
    "OpenAIDetector": ("api-key", ("T3BlbkFJ",), False),
    "PypiTokenDetector": ("pypi-token", ("pypi-",), False),
    "SendGridDetector": ("sendgrid-key", ("SG.",), False),
    "SlackDetector": ("slack-token", ("xox", "hooks.slack.com"), False),
    "SquareOAuthDetector": ("square-token", ("sq0csp-",), False),
    "StripeDetector": ("stripe-key", ("k_live_",), False),
    "TelegramBotTokenDetector": ("telegram-token", (":",), False),
    "TwilioKeyDetector": ("twilio-key", ("AC", "SK"), False),
}
"""The ``detect-secrets`` detectors used: (kind, triggers, triggers folded)."""


@functools.cache
def detector_shapes() -> tuple[Shape, ...]:
    """The `DETECTORS`' expressions as shapes (imported once; ~0.15 s, at daemon start)."""
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class

    found: dict[str, Any] = get_mapping_from_secret_type_to_class()
    classes = {detector.__name__: detector for detector in found.values()}
    shapes = []
    for name, (kind, triggers, fold) in DETECTORS.items():
        detector = classes.get(name)
        if detector is None:  # a detector a later detect-secrets dropped
            continue
        for regex in getattr(detector(), "denylist", ()):
            shapes.append(Shape(kind, regex, IN_CONTEXT, None, triggers, fold))
    return tuple(shapes)


IN_CONTEXT = -1
"""`Shape.keep` of a detector's expression: when its one group comes after some
context (``://user:`` before a password), only the group is the secret."""


def secret_span(shape: Shape, match: re.Match[str]) -> tuple[int, int]:
    """Where the secret of ``match`` is: the group after the kept ones, else it all."""
    if shape.keep > 0:
        return match.span(shape.keep + 1)
    if shape.keep == IN_CONTEXT and match.re.groups == 1 and match.group(1):
        start, end = match.span(1)
        if start > match.start():
            return start, end
    return match.span()
