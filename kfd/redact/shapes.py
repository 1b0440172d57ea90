"""The shapes of secrets: kfd's own patterns, then a maintained detector's.

kfd's patterns (`OWN`) cover what it must never miss and what the
detector does not know: ``Authorization`` and ``Cookie`` headers, PEM blocks,
PEM or OpenSSH key bodies whose markers were cut off, PEM blocks encoded in
base64 (a kube config's ``client-key-data``), passwords inside URLs, an AWS
secret key next to its key id, and the token formats of services in
`TOKEN_FORMATS` (Hugging Face, Vault, npm, PyPI, ...; each with a test
sample). Further formats (AWS, GitHub, GitLab, Slack, Stripe, npm, PyPI, JWTs,
...) come from ``detect-secrets``' regular-expression detectors
(`DETECTORS`), read once from the installed package: when it learns a new
format, kfd does too. Its entropy and keyword heuristics are not used: they
flag ordinary code and hashes (`kfd.redact.assignments` does the keyword's
job, knowing code from configuration).

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
    check: Callable[[str, re.Match[str]], bool] | None = None
    """Whether a candidate (the secret, and the whole match around it) really is a
    secret (else it is left alone)."""
    triggers: tuple[str, ...] = ()
    """Literal substrings one of which any match contains (empty: always search)."""
    fold: bool = False
    """The triggers are lower case and looked for in the lowered text."""
    shortest: int = 0
    """Texts shorter than this cannot hold the shape (a streamed piece is not searched)."""


_B64 = "A-Za-z0-9+/"


def _reference(value: str) -> bool:
    """A value that names where a secret is (``$GITHUB_TOKEN``, ``${DB_PASSWORD}``,
    ``$(pass show db)``): a shell expansion, never a secret's own text; or stands
    for one in an example (``{password}``, ``<token>``, ``%(password)s``)."""
    return value.startswith(("$", "{", "<", "%(")) or value.lower() in _STAND_INS


_STAND_INS = frozenset({"password", "passwd", "pass", "secret", "token", "pwd", "xxx", "***"})


def _code(value: str) -> bool:
    """``self.headers.get(``, ``authorization.split()``: code handling a credential."""
    return (
        "(" in value
        or "[" in value
        or re.fullmatch(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+", value) is not None
    )


def _scheme(value: str) -> bool:
    """``Authorization: Basic ...`` in prose: the scheme's name, no credential after it."""
    return value.lower().strip(".") in ("bearer", "basic", "token", "digest", "negotiate", "")


def _session_cookie(value: str) -> bool:
    """A cookie header holding a generated value (a session), not an example's word."""
    for pair in value.split(";"):
        _, _, cookie = pair.partition("=")
        cookie = cookie.strip()
        if (
            len(cookie) >= 8
            and any(c.isdigit() for c in cookie)
            and any(c.isalpha() for c in cookie)
        ):
            return True
    return False


def _random(value: str) -> bool:
    """Upper case, lower case and digits all in it: a generated token, not a word."""
    return (
        any(c.isupper() for c in value)
        and any(c.islower() for c in value)
        and any(c.isdigit() for c in value)
    )


def _encoded_pem() -> str:
    """``-----BEGIN `` in base64 at each of its 3 alignments (a kube config's
    ``client-key-data``, a Kubernetes secret's ``tls.key``, ``base64 key.pem``)."""
    from kfd.redact.values import encoded_forms

    forms = encoded_forms("-----BEGIN ")
    return "|".join(sorted(f for f, kind in forms.items() if kind == "base64" and "-" not in f))


TOKEN_FORMATS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    # (kind, expression, triggers): formats services give their tokens, each
    # with a test sample (tests/unit/test_redact_families.py).
    # Not OpenSSH's security-key algorithms (``sk-ssh-ed25519-cert-v01@openssh.com``).
    ("api-key", r"sk-(?<![\w]sk-)(?!ssh-|ecdsa-)(?:ant-|proj-|or-)?[A-Za-z0-9_-]{20,}", ("sk-",)),
    (
        "github-token",
        r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_\w{30,})",
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
    ),
    ("slack-token", r"\bxox[abposr]-[A-Za-z0-9-]{10,}", ("xox",)),
    ("slack-token", r"\bxapp-\d-[A-Za-z0-9-]{20,}", ("xapp-",)),
    ("google-api-key", r"\bAIza[0-9A-Za-z_-]{35}", ("AIza",)),
    ("stripe-key", r"\b(?:sk|rk|pk)_(?:live|test)_[0-9A-Za-z]{16,}", ("_live_", "_test_")),
    ("jwt", r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}", ("eyJ",)),
    ("huggingface-token", r"\bhf_[A-Za-z0-9]{30,}\b", ("hf_",)),
    ("vault-token", r"\bhv[sbr]\.[A-Za-z0-9_-]{24,}", ("hvs.", "hvb.", "hvr.")),
    ("npm-token", r"\bnpm_[A-Za-z0-9]{36}\b", ("npm_",)),
    ("pypi-token", r"\bpypi-AgE[A-Za-z0-9_-]{50,}", ("pypi-AgE",)),
    ("digitalocean-token", r"\bdo[por]_v1_[a-f0-9]{64}\b", ("_v1_",)),
    ("shopify-token", r"\bshp(?:at|ss|ca|pa)_[a-fA-F0-9]{32}\b", ("shp",)),
    ("grafana-token", r"\bglsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8}\b", ("glsa_",)),
    ("age-key", r"\bAGE-SECRET-KEY-1[0-9A-Z]{58}\b", ("AGE-SECRET-KEY-",)),
    ("postman-key", r"\bPMAK-[a-f0-9]{24}-[a-f0-9]{34}\b", ("PMAK-",)),
    ("tailscale-key", r"\btskey-[a-z]+-[A-Za-z0-9]{6,}-[A-Za-z0-9]{16,}", ("tskey-",)),
)
"""Token formats kfd knows itself, beside detect-secrets' (`DETECTORS`)."""


OWN: tuple[Shape, ...] = (
    Shape(
        "private-key",
        re.compile(r"-----BEGIN [A-Z0-9 ]+-----[\s\S]*?-----END [A-Z0-9 ]+-----"),
        triggers=("-----BEGIN",),
    ),
    Shape(
        "private-key",
        # A PEM block encoded once more: the run of base64 it starts, lines and all.
        re.compile(
            rf"[{_B64}]{{0,4}}(?:{_encoded_pem()})[{_B64}]*={{0,2}}"
            rf"(?:\r?\n[ \t]*[{_B64}]{{40,}}={{0,2}})*"
        ),
        triggers=tuple(_encoded_pem().split("|")),
    ),
    Shape(
        "private-key",
        # The body of a PEM block whose markers were cut: base64 lines of 64.
        re.compile(rf"(?m)^(?:[{_B64}]{{64}}\r?\n){{2,}}[{_B64}]{{0,64}}={{0,2}}"),
        shortest=130,
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
            # Spelled in its three cases: ten times faster than (?i) to search for.
            r"((?:authorization|Authorization|AUTHORIZATION)[ \t]*[:=]"
            r"[ \t]*[\"']?(?:bearer|Bearer|BEARER|basic|Basic|BASIC|token|Token|TOKEN"
            r"|digest|Digest)?"
            r"[ \t]*)"
            r"([^\s\"'`,;]{4,})"
        ),
        keep=1,
        check=lambda value, _: not (_reference(value) or _code(value) or _scheme(value)),
        triggers=("authorization",),
        fold=True,
    ),
    Shape(
        "cookie",
        # Every cookie of the header, not only the first.
        re.compile(
            r"(?:cookie|Cookie|COOKIE)[\"']?[ \t]*:[ \t]*[\"']?(?P<secret>[^\r\n\"'=]+=[^\r\n\"']+)"
        ),
        check=lambda value, _: not _reference(value) and _session_cookie(value),
        triggers=("cookie",),
        fold=True,
    ),
    Shape(
        "url-password",
        # From "://" (searched for by it, fast): the scheme before it is no part of the secret.
        re.compile(r"://[^\s:/@?#]+:(?P<secret>[^\s@/?#]{2,})(?=@)"),
        check=lambda value, _: not _reference(value),
        triggers=("://",),
    ),
    Shape(
        "aws-secret-key",
        # A secret access key right after its key id: credentials.csv, `aws configure list`.
        re.compile(
            r"\b(?:AKIA|ASIA)[0-9A-Z]{16}[\s,;:|\"'=]+(?P<secret>[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+])"
        ),
        triggers=("AKIA", "ASIA"),
    ),
    Shape(
        "aws-access-key", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), triggers=("AKIA", "ASIA")
    ),
    Shape(
        "vault-token",
        # Vault's tokens before 1.10: s. (service) or b. (batch) and 24 random characters.
        # No trigger ("s." ends every other word): the look-behind comes after the
        # first letter, so the expression is searched for by it, fast.
        re.compile(r"[sb]\.(?<![\w.][sb]\.)[A-Za-z0-9]{24}(?![\w.])"),
        check=lambda value, _: _random(value[2:]),
        shortest=26,
    ),
    *(
        Shape(kind, re.compile(expression), triggers=triggers)
        for kind, expression, triggers in TOKEN_FORMATS
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
    "MailchimpDetector": ("mailchimp-key", tuple(f"-us{d}" for d in range(10)), False),
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


SECRET_GROUPS = ("secret", "quoted", "bare")
"""Named groups that hold a shape's secret (the first that took part in a match)."""


def secret_span(shape: Shape, match: re.Match[str]) -> tuple[int, int]:
    """Where the secret of ``match`` is: its named secret group, or the group after
    the kept ones, else it all."""
    for name in SECRET_GROUPS:
        if name in match.re.groupindex and match.group(name) is not None:
            return match.span(name)
    if shape.keep > 0:
        return match.span(shape.keep + 1)
    if shape.keep == IN_CONTEXT and match.re.groups == 1 and match.group(1):
        start, end = match.span(1)
        if start > match.start():
            return start, end
    return match.span()
