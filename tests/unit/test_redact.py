"""The one redaction point: secret shapes, the environment's secret values, events,
and the daemon's log file."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from kfd.api import looks_secret
from kfd.daemon.logs import start_logging
from kfd.protocol import ApprovalRequested, Preview, ToolCompleted
from kfd.redact import learn_environment, redact_struct, scrub
from kfd.redact.values import known

TOKEN = "cf-9f8e7d6c5b4a39281706"


@pytest.fixture(autouse=True)
def learned() -> Iterator[None]:
    """Each test learns its own secrets; the process-wide ones are restored after."""
    saved = known.snapshot()
    learn_environment(
        {"CLOUDFLARE_API_TOKEN": TOKEN, "MY_LLM": "llm-key-0123456789", "SHORT_KEY": "1"},
        names=["MY_LLM"],
    )
    yield
    known.restore(saved)


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("CLOUDFLARE_API_TOKEN", True),
        ("KFD_API_KEY", True),
        ("GITHUB_TOKEN", True),
        ("GH_TOKEN", True),
        ("DB_PASSWORD", True),
        ("aws_secret_access_key", True),
        ("GOOGLE_APPLICATION_CREDENTIALS", True),
        ("PATH", False),
        ("HOME", False),
        ("GIT_AUTHOR_NAME", False),
    ],
)
def test_secret_looking_names(name: str, secret: bool) -> None:
    assert looks_secret(name) is secret


def test_the_values_of_known_secret_variables_are_redacted_by_name() -> None:
    text = f"curl -H 'x: {TOKEN}' and llm-key-0123456789 and 1"
    assert scrub(text) == (
        "curl -H 'x: [redacted $CLOUDFLARE_API_TOKEN]' and [redacted $MY_LLM] and 1"
    )


def test_code_that_names_secrets_is_left_readable() -> None:
    code = 'token = self.token_value\napi_key = os.environ["API_KEY"]\npassword = getpass()'
    assert scrub(code) == code


def test_every_string_of_an_event_is_redacted_and_a_clean_one_is_untouched() -> None:
    event = ApprovalRequested(
        session="s",
        approval_id="a",
        call_id="c",
        tool="bash",
        preview=Preview(command=f"deploy --token {TOKEN}"),
        reason="default mode asks",
    )
    cleaned = redact_struct(event)
    assert cleaned.preview.command == "deploy --token [redacted $CLOUDFLARE_API_TOKEN]"
    assert cleaned.reason == "default mode asks"
    clean = ToolCompleted(session="s", call_id="c", name="bash", output="fine")
    assert redact_struct(clean) is clean


def test_the_daemon_log_file_never_holds_a_secret(tmp_path: Path) -> None:
    path = tmp_path / "daemon.log"
    stop = start_logging(path, "info")
    try:
        log = logging.getLogger("kfd.test.redact")
        log.info("calling with %s", TOKEN)
        try:
            raise ValueError(f"Authorization: Bearer {TOKEN}zz")
        except ValueError:
            log.exception("request failed")
    finally:
        stop()
    text = path.read_text()
    assert TOKEN not in text
    assert "calling with [redacted $CLOUDFLARE_API_TOKEN]" in text
    assert "ValueError: Authorization: Bearer [redacted" in text


def test_a_value_learned_after_a_text_was_redacted_is_caught_in_it_next_time() -> None:
    text = "deploy with zq-1234567890abcdef now"
    assert scrub(text) == text  # remembered as clean
    learn_environment({"DEPLOY_KEY": "zq-1234567890abcdef"})
    assert scrub(text) == "deploy with [redacted $DEPLOY_KEY] now"
