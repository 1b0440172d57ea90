"""The model table (windows, prices), its config overrides, and budget decisions."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import msgspec
import pytest

from kfd.agent import budgets
from kfd.config import BudgetConfig, ModelEntry, load
from kfd.errors import ConfigError
from kfd.gateway.catalog import ModelCatalog
from kfd.protocol import Usage

KIMI = "workers-ai/@cf/moonshotai/kimi-k2.6"


def test_kimi_k2_6_costs_what_workers_ai_lists() -> None:
    catalog = ModelCatalog.load()
    usage = Usage(input_tokens=1_000_000, cached_input_tokens=250_000, output_tokens=100_000)

    # 750k fresh at $0.95, 250k cached at $0.16, 100k out at $4.00 (per million).
    assert catalog.estimate(KIMI, usage) == pytest.approx(0.7125 + 0.04 + 0.4)
    assert catalog.context_window(KIMI) == 262_144


@pytest.mark.parametrize(
    ("asked", "found"),
    [
        ("@cf/moonshotai/kimi-k2.6", KIMI),  # Workers AI's own name
        ("openai/gpt-4.1", "gpt-4.1"),  # a router's prefix
        ("gpt-4.1-2025-04-14", "gpt-4.1"),  # a dated snapshot
        ("gpt-4.1-mini-2025-04-14", "gpt-4.1-mini"),  # the longest known name wins
        ("claude-sonnet-4", "claude-sonnet-4-0"),  # an alias
        ("llama3:8b", None),
    ],
)
def test_model_names_resolve_through_aliases_prefixes_and_snapshots(
    asked: str, found: str | None
) -> None:
    assert ModelCatalog.load().resolve(asked) == found


def test_anthropic_cache_writes_cost_more_than_plain_input() -> None:
    catalog = ModelCatalog.load()
    written = Usage(input_tokens=1_000_000, cache_write_tokens=1_000_000)
    plain = Usage(input_tokens=1_000_000)

    assert catalog.estimate("claude-sonnet-4-5", written) == pytest.approx(3.75)
    assert catalog.estimate("claude-sonnet-4-5", plain) == pytest.approx(3.00)


def test_an_unknown_model_has_no_price_rather_than_a_made_up_one() -> None:
    assert ModelCatalog.load().estimate("my-local-model", Usage(input_tokens=10)) is None


def test_config_overrides_change_only_the_keys_they_set_and_can_add_models(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        f'[models."{KIMI}"]\noutput = 5.0\n\n'
        '[models."my-local-model"]\ninput = 0.0\noutput = 0.0\ncontext_window = 32768\n'
    )
    config = load(path, environ={"KFD_MODEL": "my-local-model"})
    catalog = ModelCatalog.load(config.models)

    kimi = catalog.entry(KIMI)
    assert kimi is not None
    assert (kimi.input, kimi.output, kimi.context_window) == (0.95, 5.0, 262_144)
    assert catalog.estimate("my-local-model", Usage(input_tokens=5000)) == 0.0
    assert config.model.context_window == 32768  # the configured model's window


def test_the_default_config_is_cloudflare_kimi_with_its_window(tmp_path: Path) -> None:
    config = load(tmp_path / "absent.toml", environ={})

    assert config.model.provider == "cloudflare"
    assert config.model.model == KIMI
    assert config.model.base_url == "https://gateway.ai.cloudflare.com/v1"
    assert config.model.api_key_env == "CLOUDFLARE_API_TOKEN"
    assert config.model.context_window == 262_144


def test_cloudflare_settings_come_from_the_environment(tmp_path: Path) -> None:
    config = load(
        tmp_path / "absent.toml",
        environ={
            "CLOUDFLARE_ACCOUNT_ID": "acct",
            "KFD_GATEWAY_ID": "gw",
            "KFD_CLOUDFLARE_API_URL": "http://127.0.0.1:9/client/v4",
        },
    )
    assert (config.model.account_id, config.model.gateway_id) == ("acct", "gw")
    assert config.model.cloudflare_api_url == "http://127.0.0.1:9/client/v4"


def test_switching_provider_takes_that_providers_defaults(tmp_path: Path) -> None:
    config = load(tmp_path / "absent.toml", environ={"KFD_PROVIDER": "anthropic"})
    assert (config.model.model, config.model.api_key_env) == (
        "claude-sonnet-4-5",
        "ANTHROPIC_API_KEY",
    )
    assert config.model.context_window == 200_000


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[budget]\ndaily_usd = -1\n", "budget.daily_usd"),
        ("[budget]\nwarn_at = 2\n", "budget.warn_at"),
        ("[budget]\nmonthly_usd = 'lots'\n", "budget.monthly_usd"),
        ('[models."x"]\ninput = -0.5\n', "input"),
        ('[models."x"]\nprice = 1\n', "price"),
        ("[ledger]\nlookup_attempts = 0\n", "ledger.lookup_attempts"),
        ("[model]\nprovider = 'nonesuch'\n", "provider"),
    ],
)
def test_bad_money_settings_are_refused_naming_the_key(
    tmp_path: Path, text: str, fragment: str
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as error:
        load(path, environ={})
    assert fragment in str(error.value)


# --------------------------------------------------------------------------
# Budgets (pure)


def test_a_session_limit_replaces_the_configured_one_and_zero_means_none() -> None:
    config = BudgetConfig(session_usd=5.0, daily_usd=0.0, monthly_usd=100.0)

    assert budgets.limits(config, None) == [
        budgets.Limit("session", 5.0),
        budgets.Limit("monthly", 100.0),
    ]
    assert budgets.limits(config, 1.5)[0] == budgets.Limit("session", 1.5)


def test_a_request_that_would_pass_a_limit_is_refused_naming_it_and_how_to_raise_it() -> None:
    limits = [budgets.Limit("session", 1.0), budgets.Limit("daily", 10.0)]

    assert budgets.refusal(limits, {"session": 0.5, "daily": 0.5}, 0.4, "s1") is None
    refused = budgets.refusal(limits, {"session": 0.8, "daily": 0.8}, 0.3, "s1")
    assert refused is not None
    limit, message = refused
    assert limit.budget == "session"
    assert "$1.00" in message
    assert "kfd budget s1 USD" in message

    _, daily = budgets.refusal(limits, {"session": 0.0, "daily": 10.0}, 0.0, "s1") or (None, "")
    assert "today's budget" in daily
    assert "[budget] daily_usd" in daily


def test_warnings_come_once_at_the_threshold_and_once_at_the_limit() -> None:
    limits = [budgets.Limit("monthly", 10.0)]

    assert budgets.crossings(limits, {"monthly": 1.0}, {"monthly": 7.9}, 0.8, "s") == []
    [(_, spent, message)] = budgets.crossings(limits, {"monthly": 7.9}, {"monthly": 8.1}, 0.8, "s")
    assert spent == 8.1
    assert "81%" in message
    assert budgets.crossings(limits, {"monthly": 8.1}, {"monthly": 9.0}, 0.8, "s") == []
    [(_, _, reached)] = budgets.crossings(limits, {"monthly": 9.0}, {"monthly": 10.2}, 0.8, "s")
    assert "will not be sent" in reached


def test_days_and_months_start_at_local_midnight() -> None:
    now = datetime(2025, 3, 17, 15, 42, 7).astimezone()

    assert budgets.period_start("daily", now) == datetime(2025, 3, 17).astimezone().timestamp()
    assert budgets.period_start("monthly", now) == datetime(2025, 3, 1).astimezone().timestamp()
    assert budgets.period_start("session", now) is None


def test_a_model_entry_rejects_a_zero_window() -> None:
    with pytest.raises(msgspec.ValidationError, match="context_window"):
        msgspec.convert({"context_window": 0}, ModelEntry)
