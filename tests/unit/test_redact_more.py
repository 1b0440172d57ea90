"""Secrets by value and by the detector's shapes, streamed or whole, and rules that
would store one: the one redaction point, called directly."""

from __future__ import annotations

import base64
import urllib.parse
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kfd.agent.approvals import keepable as _keepable
from kfd.redact import StreamRedactor, learn_environment, redact, scrub
from kfd.redact.values import known, plausible
from kfd.sandbox import environment

DATABASE_URL = "postgres://app:Tr0ub4dor-pw@db.internal:5432/app"


@pytest.fixture(autouse=True)
def learned() -> Iterator[None]:
    saved = known.snapshot()
    daemon_env = {
        "PATH": "/usr/bin:/bin",
        "HOME": "/home/u",
        "LANG": "C.UTF-8",
        "DATABASE_URL": DATABASE_URL,
        "MYSQL_PWD": "hunter2",
        "BUILD_STAMP": "x7Rq9LmZp2Vw8TnK",
        "KFD_MODEL": "workers-ai/@cf/moonshotai/kimi-k2.6",
        "DESKTOP_SESSION": "ubuntu",
        "SHLVL": "1",
        "GIT_AUTHOR_NAME": "Jane Doe",
        "OLDPWD": "/home/u/src",
    }
    learn_environment(daemon_env, withheld=environment.withheld(daemon_env))
    yield
    known.restore(saved)


def test_withheld_variables_are_redacted_by_value_whatever_their_names() -> None:
    text = f"connect to {DATABASE_URL} as hunter2 with x7Rq9LmZp2Vw8TnK"
    assert scrub(text) == (
        "connect to [redacted $DATABASE_URL] as [redacted $MYSQL_PWD] with [redacted $BUILD_STAMP]"
    )


def test_ordinary_values_of_the_environment_are_left_alone() -> None:
    text = "model workers-ai/@cf/moonshotai/kimi-k2.6 on ubuntu by Jane Doe in /home/u/src, 1"
    assert scrub(text) == text


@pytest.mark.parametrize(
    ("value", "named", "secret"),
    [
        ("hunter2", True, True),
        ("/home/u", True, False),
        ("true", True, False),
        ("ubuntu", False, False),
        ("C.UTF-8", False, False),
        ("x86-64-linux", False, True),
        ("/usr/bin:/bin", False, False),
        ("correcthorsebatterystaple", False, True),
        ("https://u:p@h", False, True),
        ("12345678", False, False),
    ],
)
def test_which_values_could_be_secrets(value: str, named: bool, secret: bool) -> None:
    assert plausible(value, named=named) is secret


AWS_FILE = """[default]
aws_access_key_id = AKIAIOSFODNN7EXAMPLE
aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY
aws_session_token = IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQD
region = eu-west-1
"""

PEM_BODY = "\n".join(
    ["MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj"]
    + ["MZIQc1T3mIg0Y2xHXWqyQn0kv7dQKhQb2KoT8bL5Xv9cQwLm3nRz6H1pD4eF8sJk"] * 3
    + ["q9Rz4w=="]
)


@pytest.mark.parametrize(
    ("text", "gone", "kept"),
    [
        (AWS_FILE, ["AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI", "IQoJb3JpZ2lu"], ["eu-west-1"]),
        (f"the key:\n{PEM_BODY}\nend", ["MZIQc1T3mIg0Y2x", "MIIEvQIBADAN"], ["the key:", "end"]),
        (
            "git remote add origin https://jane:ghs-P4ss!word@git.example.org/x.git",
            ["ghs-P4ss!word"],
            ["https://jane:", "@git.example.org/x.git"],
        ),
        (
            "mysql://root:s3cr3t@127.0.0.1/db and redis://:hunter22@cache:6379",
            ["s3cr3t", "hunter22"],
            ["mysql://root:", "@127.0.0.1/db", "@cache:6379"],
        ),
        (
            "//registry.npmjs.org/:_authToken=npm_abcdefghijklmnopqrstuvwxyz0123456789",
            ["npm_abc"],
            [],
        ),
        ("GITLAB=glpat-abcdefghij0123456789xy", ["glpat-abcdefghij0123456789xy"], ["GITLAB="]),
        (
            "SG.abcdefghijklmnopqrstuv.abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
            ["SG.abcdefghij"],
            [],
        ),
        ("ssh body b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAAB", ["b3BlbnNzaC1r"], []),
    ],
)
def test_the_shapes_the_issue_names_and_the_detectors_formats_are_redacted(
    text: str, gone: list[str], kept: list[str]
) -> None:
    cleaned = scrub(text)
    for secret in gone:
        assert secret not in cleaned, cleaned
    for part in kept:
        assert part in cleaned, cleaned
    assert scrub(cleaned) == cleaned, "redacting twice changes nothing more"


def test_code_base64_and_hashes_stay_readable() -> None:
    text = (
        "def token_count(text: str) -> int:\n"
        "commit 4b825dc642cb6eb9a060e54bf8d69288fbee4904\n"
        '"integrity": "sha512-XJJ5GEdiNrT1h/AXuQrPUmt0LFMSdhXe2ScLioFffVPul1Zw/TVGoJdUfDMH"\n'
        "url = https://example.org/path?q=1\n"
    )
    assert scrub(text) == text


def test_a_known_secret_split_across_stream_chunks_never_shows() -> None:
    for cut in range(1, len(DATABASE_URL)):
        stream = StreamRedactor()
        shown = [
            stream.feed(f"the url is {DATABASE_URL[:cut]}"),
            stream.feed(f"{DATABASE_URL[cut:]} ok"),
            stream.finish(),
        ]
        assert "".join(shown) == "the url is [redacted $DATABASE_URL] ok", cut


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80), st.lists(st.integers(min_value=0, max_value=200), max_size=6))
def test_a_stream_shows_exactly_what_whole_redaction_of_clean_text_shows(
    text: str, cuts: list[int]
) -> None:
    # Text without secrets comes through unchanged, however it is cut.
    text = text.replace("[", "(")
    stream = StreamRedactor()
    points = sorted({min(cut, len(text)) for cut in cuts})
    pieces = [text[a:b] for a, b in zip([0, *points], [*points, len(text)], strict=True)]
    shown = "".join(stream.feed(piece) for piece in pieces) + stream.finish()
    assert shown == scrub(text)


def test_a_rule_holding_a_secret_cannot_be_kept_always() -> None:
    assert _keepable("bash(npm run build)")
    assert not _keepable(f"bash(psql {DATABASE_URL})")
    assert not _keepable("bash(curl -H 'Authorization: Bearer abcdef123456' x)")
    assert not _keepable("grant(bash:unsandboxed)")


def test_redaction_names_every_kind_it_found() -> None:
    result = redact(f"{DATABASE_URL} AKIAIOSFODNN7EXAMPLE")
    assert result.kinds == ["$DATABASE_URL", "aws-access-key"]


@pytest.mark.parametrize("before", ["", "a", "ab", "abc"])
@pytest.mark.parametrize("after", ["", "x", "xy"])
def test_a_known_secret_encoded_by_a_command_is_redacted_too(before: str, after: str) -> None:
    """`base64`, `xxd -p`, a URL's percent-encoding: wherever the value sits in the
    encoded bytes, the part that is only the value's is found."""
    data = f"{before}{DATABASE_URL}{after}"
    for encoded in (
        base64.b64encode(data.encode()).decode(),
        base64.urlsafe_b64encode(data.encode()).decode(),
        data.encode().hex(),
        urllib.parse.quote(data, safe=""),
    ):
        shown = scrub(f"output: {encoded}\n")
        assert "[redacted $DATABASE_URL (" in shown, (encoded, shown)


def test_encoded_forms_survive_a_snapshot_and_restore() -> None:
    saved = known.snapshot()
    known.restore(saved)
    assert DATABASE_URL.encode().hex() in known.forms
    assert all(not label.endswith(")") for label in known.snapshot().values())


@pytest.mark.parametrize(
    "text",
    [
        'curl -H "Authorization: token $GITHUB_TOKEN" https://api.github.com/user',
        "psql postgres://app:${DB_PASSWORD}@db/app",
        "curl https://admin:$(pass show site)@example.com/",
    ],
)
def test_a_reference_to_a_secret_is_not_one(text: str) -> None:
    """Where a secret is (a variable, a command printing it) is shown: an approval
    holding it must stay askable (`kfd.agent.approvals.NotShowable`)."""
    assert scrub(text) == text


def test_a_literal_credential_in_the_same_places_still_is() -> None:
    assert "hunter2pw" not in scrub("curl https://admin:hunter2pw@example.com/")
    assert "abcd1234efgh" not in scrub("Authorization: Bearer abcd1234efgh")
