"""The cost ledger end to end: a real daemon, the scripted model, real requests.

Every resilience case is checked twice: by the events a frontend sees and by
the ledger rows the daemon committed (``cost.query``). Prices come from a
``[models]`` override, so every expected cost is exact.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from kfd import protocol as p
from kfd.client import Client, Item, RequestFailed
from kfd.testing import (
    CloudflareFormat,
    CutStream,
    HttpError,
    InvalidChunk,
    Reply,
    ScriptedModelServer,
    ScriptedToolCall,
    ScriptedUsage,
    Stall,
)
from kfd.testing.daemon import KfdDaemon
from kfd.testing.events import collect_until, turn_completed

PRICED = """
[model]
retry_base_s = 0.01
retry_max_s = 0.05
idle_timeout_s = 0.5
max_retries = 2

[models."scripted-model"]
input = 1.0
cached_input = 0.1
output = 2.0
context_window = 50000
"""
"""$1 per million fresh input tokens, $0.10 cached, $2 output."""

USAGE = ScriptedUsage(input_tokens=4000, output_tokens=500, cached_input_tokens=1000)
COST = (3000 * 1.0 + 1000 * 0.1 + 500 * 2.0) / 1_000_000
"""What USAGE costs at the PRICED prices: $0.0041."""


@pytest.fixture(scope="module")
def shared_server() -> Iterator[ScriptedModelServer]:
    with ScriptedModelServer() as server:
        yield server


@pytest.fixture(scope="module")
def priced(shared_server: ScriptedModelServer) -> Iterator[KfdDaemon]:
    """One daemon for the tests below that need nothing else: each uses its own
    session, and looks only at the model requests it caused (`Script`)."""
    with KfdDaemon(model=shared_server, config=PRICED) as daemon:
        yield daemon


class Script:
    """The shared server's script, seen from one test."""

    def __init__(self, server: ScriptedModelServer) -> None:
        self.server = server
        self.start = len(server.requests)

    def add(self, *replies: Reply) -> None:
        self.server.add(*replies)

    @property
    def requests(self) -> list[Any]:
        return self.server.requests[self.start :]


@pytest.fixture
def script(shared_server: ScriptedModelServer) -> Iterator[Script]:
    script = Script(shared_server)
    yield script
    assert shared_server.pending == 0, "a test left scripted replies unanswered"


async def run_turn(
    client: Client, session_id: str, text: str, until: Callable[[Item], bool] = turn_completed
) -> list[Item]:
    async with await client.attach(session_id, tail=0) as session:
        await client.send(session_id, text)
        return await collect_until(session, until)


async def ledger(client: Client, session_id: str | None = None, **query: Any) -> p.CostResult:
    result: p.CostResult = await client.request(
        p.CostQuery(id="", session=session_id, **({"entries": 100} | query))
    )
    return result


def of(items: list[Item], kind: type[Any]) -> list[Any]:
    return [item for item in items if isinstance(item, kind)]


# --------------------------------------------------------------------------
# Resilience, with the ledger checked after each case


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        (HttpError(429, message="slow down", retry_after=0.05), "HTTP 429"),
        (HttpError(500, message="boom"), "HTTP 500"),
        (HttpError(502, message="bad gateway"), "HTTP 502"),
        (HttpError(503, message="unavailable"), "HTTP 503"),
        (CutStream(after_chunks=3), "dropped"),
        (Stall(after_chunks=2, seconds=5), "stalled"),
        (InvalidChunk(after_chunks=2, data="{not json"), "not JSON"),
    ],
    ids=["429-retry-after", "500", "502", "503", "cut-stream", "stall", "invalid-json"],
)
async def test_a_failed_attempt_is_retried_and_the_ledger_holds_one_row_with_the_retry(
    priced: KfdDaemon,
    script: Script,
    workspace: Path,
    fault: Any,
    reason: str,
) -> None:
    script.add(
        Reply(text="an answer that will not count", fault=fault), Reply(text="done", usage=USAGE)
    )
    async with await priced.client() as client:
        info = await client.create_session(workspace)
        events = await run_turn(client, info.id, "go")
        result = await ledger(client, info.id)

    [retry] = of(events, p.ModelRetry)
    assert reason in retry.reason
    if isinstance(fault, HttpError) and fault.retry_after is not None:
        assert retry.delay_s == pytest.approx(0.05)
    assert events[-1].stop_reason == "end_turn"
    assert [m.text for m in of(events, p.MessageCompleted)] == ["done"]
    [usage] = of(events, p.UsageReported)
    assert usage.request.cost_usd == pytest.approx(COST)
    assert usage.total.cost_usd == pytest.approx(COST)
    assert usage.context_window == 50_000

    [row] = result.entries
    assert (row.retries, row.error, row.cost_source) == (1, "", "estimate")
    assert (row.input_tokens, row.cached_input_tokens, row.output_tokens) == (4000, 1000, 500)
    assert row.cost_usd == pytest.approx(COST)
    assert row.id == usage.ledger_id
    assert (result.total.requests, result.total.retries) == (1, 1)
    assert result.total.cost_usd == pytest.approx(COST)


async def test_usage_repeated_in_every_chunk_is_counted_once(
    priced: KfdDaemon, script: Script, workspace: Path
) -> None:
    script.add(Reply(text="counted once", usage=USAGE, repeat_usage=True, chunk_chars=2))
    async with await priced.client() as client:
        info = await client.create_session(workspace)
        events = await run_turn(client, info.id, "go")
        result = await ledger(client, info.id)

    [usage] = of(events, p.UsageReported)
    assert (usage.total.input_tokens, usage.total.output_tokens) == (4000, 500)
    assert (result.total.input_tokens, result.total.output_tokens) == (4000, 500)
    assert result.total.cost_usd == pytest.approx(COST)


async def test_malformed_tool_arguments_become_an_error_result_and_both_requests_are_counted(
    priced: KfdDaemon, script: Script, workspace: Path
) -> None:
    script.add(
        Reply(tool_calls=[ScriptedToolCall("read", '{"path": ')], usage=USAGE),
        Reply(text="sorry, bad call", usage=USAGE),
    )
    async with await priced.client() as client:
        info = await client.create_session(workspace)
        events = await run_turn(client, info.id, "go")
        result = await ledger(client, info.id)

    [tool] = of(events, p.ToolCompleted)
    assert tool.status == "error"
    assert events[-1].stop_reason == "end_turn"
    assert len(result.entries) == 2
    assert all(row.error == "" for row in result.entries)
    assert result.total.cost_usd == pytest.approx(2 * COST)
    assert of(events, p.UsageReported)[-1].total.cost_usd == pytest.approx(2 * COST)


async def test_a_request_that_fails_for_good_is_an_error_row_and_an_error_event(
    priced: KfdDaemon, script: Script, workspace: Path
) -> None:
    unavailable = Reply(fault=HttpError(503, message="down for maintenance"))
    script.add(unavailable, unavailable, unavailable)
    async with await priced.client() as client:
        info = await client.create_session(workspace)
        events = await run_turn(client, info.id, "go")
        result = await ledger(client, info.id)

    [error] = of(events, p.ErrorEvent)
    assert error.code == "provider"
    assert "3 attempts" in error.message
    assert events[-1].stop_reason == "error"
    [row] = result.entries
    assert row.retries == 2
    assert "down for maintenance" in row.error
    assert (row.input_tokens, row.cost_usd) == (0, 0.0)
    assert (result.total.requests, result.total.errors) == (1, 1)


async def test_a_cancelled_request_is_a_row_with_estimated_tokens_and_counts_in_the_totals(
    priced: KfdDaemon, script: Script, workspace: Path
) -> None:
    script.add(Reply(text="word " * 400, chunk_chars=5, chunk_delay_s=0.01))
    async with await priced.client() as client:
        info = await client.create_session(workspace)
        async with await client.attach(info.id, tail=0) as view:
            await client.send(info.id, "talk")
            await collect_until(view, lambda e: isinstance(e, p.MessageDelta) and e.offset > 40)
            await client.cancel(info.id)
            events = await collect_until(view, turn_completed)
        result = await ledger(client, info.id)
        session = await client.session(info.id)

    assert events[-1].stop_reason == "cancelled"
    [usage] = of(events, p.UsageReported)
    [row] = result.entries
    assert row.error.startswith("cancelled")
    assert row.input_tokens > 0 and 10 < row.output_tokens < 500  # what was sent and streamed
    assert row.cost_usd == pytest.approx((row.input_tokens * 1.0 + row.output_tokens * 2.0) / 1e6)
    assert usage.ledger_id == row.id
    assert session.usage.cost_usd == pytest.approx(result.total.cost_usd)
    assert session.usage.requests == result.total.requests == 1


async def test_a_request_cancelled_while_tool_arguments_stream_bills_what_arrived(
    priced: KfdDaemon, script: Script, workspace: Path
) -> None:
    content = "A" * 100_000
    call = ScriptedToolCall("write", {"path": "big.txt", "content": content})
    script.add(Reply(tool_calls=[call], chunk_chars=100, chunk_delay_s=0.005))
    async with await priced.client() as client:
        info = await client.create_session(workspace, mode="accept-edits")
        async with await client.attach(info.id, tail=0) as view:
            await client.send(info.id, "write it")
            await script.server.wait_for_request_async(script.start)
            await asyncio.sleep(0.5)  # ~100 pieces of arguments (5 ms apart) arrive meanwhile
            await client.cancel(info.id)
            events = await collect_until(view, turn_completed)
        result = await ledger(client, info.id)

    assert events[-1].stop_reason == "cancelled"
    assert not (workspace / "big.txt").exists()
    [row] = result.entries
    assert row.state == "interrupted" and row.error.startswith("cancelled")
    # Arguments are output like text: 4 characters a token, of what arrived.
    assert 250 <= row.output_tokens < len(content) / 4
    assert row.cost_usd == pytest.approx((row.input_tokens * 1.0 + row.output_tokens * 2.0) / 1e6)


async def test_an_answer_far_past_max_tokens_is_no_longer_read_and_billed_for_what_arrived(
    model_server: ScriptedModelServer, workspace: Path
) -> None:
    config = PRICED.replace("[model]\n", "[model]\nmax_output_tokens = 1000\n", 1)
    model_server.add(
        Reply(text="B" * 400_000, chunk_chars=500, chunk_delay_s=0.001),  # max_tokens ignored
        Reply(text="short"),
    )
    with KfdDaemon(model=model_server, config=config) as daemon:
        async with await daemon.client() as client:
            info = await client.create_session(workspace)
            endless = await run_turn(client, info.id, "go")
            after = await run_turn(client, info.id, "again")
            result = await ledger(client, info.id)

    first = model_server.requests[0]
    assert first.body["max_tokens"] == 1000
    assert await first.wait_done_async() == "client_disconnected"
    assert endless[-1].stop_reason == "max_tokens"
    assert "output limit of 1,000 tokens" in endless[-1].message
    assert of(endless, p.MessageCompleted) == []  # the runaway answer is not kept
    assert after[-1].stop_reason == "end_turn"
    assert "BBBB" not in json.dumps(model_server.requests[1].body)
    cut = result.entries[-1]  # newest first
    assert (cut.state, cut.estimated) == ("interrupted", True)
    assert cut.error.startswith("stopped: the answer passed 2x its output limit")
    # Read to twice the limit (4 characters a token), and at most one more piece.
    assert 2 * 1000 < cut.output_tokens <= 2 * 1000 + 500 / 4


# --------------------------------------------------------------------------
# The gateway's cost replaces the estimate

KIMI = "workers-ai/@cf/moonshotai/kimi-k2.6"
KIMI_ESTIMATE = (3000 * 0.95 + 1000 * 0.16 + 500 * 4.00) / 1_000_000
TOKEN = "cf-secret-token-4f8a2b9c1d7e6f30"


@pytest.fixture
def cloudflare(model_server: ScriptedModelServer) -> Iterator[KfdDaemon]:
    config = (
        "[model]\nretry_base_s = 0.01\nretry_max_s = 0.05\n"
        '[daemon]\nlog_level = "debug"\n'
        "[ledger]\nlookup_delay_s = 0.02\n"
    )
    env = {
        "KFD_PROVIDER": "cloudflare",
        "KFD_MODEL": KIMI,
        "CLOUDFLARE_ACCOUNT_ID": "acct0123",
        "KFD_GATEWAY_ID": "kfd-gw",
        "KFD_CLOUDFLARE_API_URL": model_server.cloudflare_api_url,
        "KFD_API_KEY": "",
        "CLOUDFLARE_API_TOKEN": TOKEN,
    }
    with KfdDaemon(model=model_server, config=config, env=env) as daemon:
        yield daemon


def counting(kind: type[Any], wanted: int) -> Callable[[Item], bool]:
    seen = 0

    def done(item: Item) -> bool:
        nonlocal seen
        seen += isinstance(item, kind)
        return seen >= wanted

    return done


async def test_the_gateway_logged_cost_replaces_the_estimate(
    cloudflare: KfdDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    model_server.add(
        Reply(
            tool_calls=[ScriptedToolCall("read", {"path": "README.md"})],
            usage=USAGE,
            gateway_cost_usd=0.0123,
        ),
        Reply(text="done", usage=USAGE, gateway_cost_usd=0.02),
    )
    async with await cloudflare.client() as client:
        info = await client.create_session(workspace)
        events = await run_turn(client, info.id, "go", until=counting(p.CostUpdated, 2))
        result = await ledger(client, info.id)
        session = await client.session(info.id)

    usages = of(events, p.UsageReported)
    assert [u.cost_source for u in usages] == ["estimate", "estimate"]
    assert usages[0].request.cost_usd == pytest.approx(KIMI_ESTIMATE)
    assert usages[0].context_window == 262_144
    updates = of(events, p.CostUpdated)
    assert {u.ledger_id: u.cost_usd for u in updates} == {
        usages[0].ledger_id: pytest.approx(0.0123),
        usages[1].ledger_id: pytest.approx(0.02),
    }
    assert all(u.estimate_usd == pytest.approx(KIMI_ESTIMATE) for u in updates)
    assert updates[-1].total.cost_usd == pytest.approx(0.0323)
    assert updates[-1].total.confirmed_cost_usd == pytest.approx(0.0323)

    rows = {row.gateway_log_id: row for row in result.entries}
    assert set(rows) == {"log-0", "log-1"}
    assert [rows["log-0"].cost_source, rows["log-1"].cost_source] == ["gateway", "gateway"]
    assert rows["log-0"].cost_usd == pytest.approx(0.0123)
    assert rows["log-0"].estimate_usd == pytest.approx(KIMI_ESTIMATE)
    assert rows["log-0"].cache_status == "MISS"
    assert result.total.cost_usd == pytest.approx(0.0323)
    assert result.total.confirmed_usd == pytest.approx(0.0323)
    assert result.total.estimated_usd == 0.0
    assert session.usage.cost_usd == pytest.approx(0.0323)

    metadata = json.loads(model_server.requests[0].headers["cf-aig-metadata"])
    assert metadata == {"kfd_session": info.id, "kfd_turn": "1"}


async def test_a_cost_look_up_cut_short_by_a_stop_is_finished_after_the_restart(
    cloudflare: KfdDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    config = cloudflare.config_dir / "config.toml"
    patient = config.read_text().replace("lookup_delay_s = 0.02", "lookup_delay_s = 600")
    config.write_text(patient)
    cloudflare.restart()  # look-ups now wait ten minutes: the stop below comes first
    model_server.add(Reply(text="done", usage=USAGE, gateway_cost_usd=0.05))
    async with await cloudflare.client() as client:
        info = await client.create_session(workspace)
        events = await run_turn(client, info.id, "go")
    [usage] = of(events, p.UsageReported)
    assert usage.cost_source == "estimate"

    config.write_text(patient.replace("lookup_delay_s = 600", "lookup_delay_s = 0.02"))
    cloudflare.restart()
    async with await cloudflare.client() as client:
        async with await client.attach(info.id, tail=0) as view:
            update = (await collect_until(view, lambda e: isinstance(e, p.CostUpdated)))[-1]
        result = await ledger(client, info.id)
    assert update.ledger_id == usage.ledger_id
    assert update.cost_usd == pytest.approx(0.05)
    [row] = result.entries
    assert (row.cost_source, row.cost_usd) == ("gateway", pytest.approx(0.05))


async def test_the_api_token_never_reaches_the_database_the_event_log_or_the_logs(
    cloudflare: KfdDaemon, model_server: ScriptedModelServer, workspace: Path
) -> None:
    model_server.add(
        Reply(fault=HttpError(429, message=f"slow down, {TOKEN}", retry_after=0.01)),
        Reply(tool_calls=[ScriptedToolCall("read", {"path": "README.md"})], usage=USAGE),
        Reply(text="done", usage=USAGE, gateway_cost_usd=0.01),
        Reply(fault=HttpError(401, message=f"token {TOKEN} is not valid")),
    )
    async with await cloudflare.client() as client:
        info = await client.create_session(workspace)
        first = await run_turn(client, info.id, "go", until=counting(p.CostUpdated, 1))
        second = await run_turn(client, info.id, "again")
        attached = await client.request(p.SessionAttach(id="", session=info.id))

    # The token was really used: as the bearer, for the gateway, for the log look-up.
    assert model_server.requests[0].headers["authorization"] == f"Bearer {TOKEN}"
    assert model_server.requests[0].headers["cf-aig-authorization"] == f"Bearer {TOKEN}"
    [lookup, *_] = model_server.wire(CloudflareFormat).lookups
    assert lookup.headers["authorization"] == f"Bearer {TOKEN}"
    for said in (of(first, p.ModelRetry)[0].reason, of(second, p.ErrorEvent)[0].message):
        assert TOKEN not in said and "[redacted $" in said
    assert cloudflare.stop() == 0

    secret = TOKEN.encode()
    stored = [cloudflare.database, *cloudflare.state_dir.glob("kfd.db-*")]
    for path in [*stored, *cloudflare.state_dir.glob("*.log*"), cloudflare.root / "daemon.stderr"]:
        assert secret not in path.read_bytes(), f"the token is in {path.name}"
    assert all(secret not in bytes(raw) for raw in attached.events)
    assert "HTTP Request" in cloudflare.log_text()  # debug logging was on, and said plenty


async def test_without_cloudflare_credentials_the_default_provider_says_what_to_set(
    model_server: ScriptedModelServer, workspace: Path
) -> None:
    env = {
        "KFD_PROVIDER": "",
        "KFD_MODEL": "",
        "KFD_API_KEY": "",
        "CLOUDFLARE_ACCOUNT_ID": "",
        "CLOUDFLARE_API_TOKEN": "",
        "KFD_GATEWAY_ID": "",
    }
    with KfdDaemon(model=model_server, env=env) as daemon:
        async with await daemon.client() as client:
            info = await client.create_session(workspace)
            events = await run_turn(client, info.id, "hello")

    assert info.model == KIMI
    [error] = of(events, p.ErrorEvent)
    for variable in ("CLOUDFLARE_ACCOUNT_ID", "CLOUDFLARE_API_TOKEN", "KFD_GATEWAY_ID"):
        assert variable in error.message
    assert events[-1].stop_reason == "error"
    assert model_server.requests == []


# --------------------------------------------------------------------------
# Budgets


async def test_a_session_budget_refuses_the_request_and_says_how_to_raise_it(
    priced: KfdDaemon, script: Script, workspace: Path
) -> None:
    script.add(Reply(text="after raising the budget", usage=USAGE))
    async with await priced.client() as client:
        info = await client.create_session(workspace)
        await client.request(p.SessionSetBudget(id="", session=info.id, usd=0.0001))
        refused = await run_turn(client, info.id, "expensive question")
        assert script.requests == []

        raised = priced.cli("budget", info.id[:16], "0.50")  # a unique prefix
        assert raised.returncode == 0, raised.stderr
        assert "$0.5000 budget" in raised.stdout
        allowed = await run_turn(client, info.id, "try again")
        result = await ledger(client, info.id)

    [error] = of(refused, p.ErrorEvent)
    assert error.code == "budget"
    assert "$0.00" in error.message
    assert f"kfd budget {info.id} USD" in error.message
    assert refused[-1].stop_reason == "error"
    assert allowed[-1].stop_reason == "end_turn"
    assert len(result.entries) == 1
    [state] = result.budgets
    assert (state.budget, state.limit_usd) == ("session", 0.5)
    assert state.spent_usd == pytest.approx(COST)


async def test_an_answer_is_cut_off_once_it_costs_what_the_budget_had_left(
    priced: KfdDaemon, script: Script, workspace: Path
) -> None:
    # $2 per million output tokens: $0.01 is ~5,000 tokens, ~20,000 characters.
    script.add(Reply(text="B" * 400_000, chunk_chars=2000, chunk_delay_s=0.001))
    async with await priced.client() as client:
        info = await client.create_session(workspace)
        await client.request(p.SessionSetBudget(id="", session=info.id, usd=0.01))
        events = await run_turn(client, info.id, "go on forever")
        result = await ledger(client, info.id)

    assert await script.requests[0].wait_done_async() == "client_disconnected"
    [error] = of(events, p.ErrorEvent)
    assert error.code == "budget"
    assert "was reached while the answer streamed" in error.message
    assert f"kfd budget {info.id} USD" in error.message
    assert events[-1].stop_reason == "error"
    assert of(events, p.MessageCompleted) == []
    [row] = result.entries
    assert row.state == "interrupted" and "session budget" in row.error
    # Stopped at the first piece that passed the budget: one piece (500 tokens) over at most.
    assert 0.01 < row.cost_usd <= 0.01 + 500 * 2.0 / 1e6
    [state] = result.budgets
    assert state.spent_usd == pytest.approx(row.cost_usd)


async def test_the_daily_budget_warns_at_80_percent_then_refuses(
    model_server: ScriptedModelServer, workspace: Path
) -> None:
    # One USAGE costs $0.0041: 82% of $0.005. The next prompt alone passes the limit.
    config = PRICED + "\n[budget]\ndaily_usd = 0.005\n"
    model_server.add(Reply(text="first", usage=USAGE), Reply(text="never sent"))
    with KfdDaemon(model=model_server, config=config) as daemon:
        async with await daemon.client() as client:
            info = await client.create_session(workspace)
            first = await run_turn(client, info.id, "one")
            second = await run_turn(client, info.id, "two")
            result = await ledger(client)

    [warning] = of(first, p.BudgetWarning)
    assert warning.budget == "daily"
    assert warning.limit_usd == 0.005
    assert warning.spent_usd == pytest.approx(COST)
    assert "82%" in warning.message
    [error] = of(second, p.ErrorEvent)
    assert error.code == "budget"
    assert "today's budget" in error.message
    assert "[budget] daily_usd" in error.message
    assert len(model_server.requests) == 1
    assert [(b.budget, b.limit_usd) for b in result.budgets] == [("daily", 0.005)]


# --------------------------------------------------------------------------
# Seeing it: kfd cost, kfd models, and what bad input gets


async def test_kfd_cost_json_totals_are_the_sum_of_its_rows(
    priced: KfdDaemon, script: Script, workspace: Path
) -> None:
    script.add(Reply(text="a", usage=USAGE), Reply(text="b", usage=USAGE))
    since = datetime.now().isoformat()  # other tests share this daemon's ledger
    async with await priced.client() as client:
        ids = []
        for text in ("one", "two"):
            info = await client.create_session(workspace)
            await run_turn(client, info.id, text)
            ids.append(info.id)

    by_session = priced.cli("cost", "--json", "--by", "session", "--since", since)
    assert by_session.returncode == 0, by_session.stderr
    data = json.loads(by_session.stdout)
    assert {row["session"] for row in data["rows"]} == set(ids)
    for key in ("total_usd", "input_tokens", "cached_input_tokens", "output_tokens", "requests"):
        assert data[key] == pytest.approx(sum(row[key] for row in data["rows"]))
    assert data["total_usd"] == pytest.approx(2 * COST)
    assert data["requests"] == 2

    one = json.loads(priced.cli("cost", "--json", "--session", ids[0]).stdout)
    assert one["total_usd"] == pytest.approx(COST)
    assert [row["model"] for row in one["rows"]] == ["scripted-model"]
    by_day = json.loads(priced.cli("cost", "--json", "--by", "day", "--since", "today").stdout)
    assert len(by_day["rows"]) == 1
    assert by_day["rows"][0]["day"] == datetime.now().strftime("%Y-%m-%d")
    nothing = json.loads(priced.cli("cost", "--json", "--until", "2000-01-01").stdout)
    assert (nothing["requests"], nothing["rows"]) == (0, [])

    human = priced.cli("cost", "--since", since)
    assert "scripted-model" in human.stdout and "$0.0082" in human.stdout


async def test_kfd_models_lists_windows_and_prices_from_the_model_table(
    priced: KfdDaemon,
) -> None:
    listed = priced.cli("models", "--json")
    assert listed.returncode == 0, listed.stderr
    data = json.loads(listed.stdout)
    models = {m["name"]: m for m in data["models"]}
    kimi = models[KIMI]
    assert (kimi["context_window"], kimi["input"], kimi["cached_input"], kimi["output"]) == (
        262_144,
        0.95,
        0.16,
        4.0,
    )
    assert models["scripted-model"]["context_window"] == 50_000  # the config's own entry
    assert data["default"] == "scripted-model"
    assert "kimi-k2.6" in priced.cli("models").stdout


@pytest.mark.parametrize(
    ("request_", "fragment"),
    [
        (p.CostQuery(id="", since=-5.0), "since"),
        (p.CostQuery(id="", until=-1.0), "until"),
        (p.CostQuery(id="", since="yesterday"), "since"),  # type: ignore[arg-type]
        (p.CostQuery(id="", by="weekly"), "by"),  # type: ignore[arg-type]
        (p.CostQuery(id="", entries=-3), "entries"),
        (p.CostQuery(id="", session="s" + "x" * 100_000), "no session"),
        (p.SessionSetBudget(id="", session="s0", usd=-1.0), "usd"),
        (p.SessionSetBudget(id="", session="s0", usd=0.0), "usd"),
        (p.SessionSetBudget(id="", session="s0", usd=1e12), "usd"),
        (p.SessionSetBudget(id="", session="s0", usd="ten"), "usd"),  # type: ignore[arg-type]
    ],
)
async def test_bad_cost_and_budget_requests_get_an_error_and_the_daemon_serves_on(
    priced: KfdDaemon, request_: p.Request, fragment: str
) -> None:
    async with await priced.client() as client:
        with pytest.raises(RequestFailed) as failed:
            await client.request(request_)
        assert failed.value.code in {"bad_request", "not_found"}
        assert fragment in failed.value.message
        huge = await ledger(client, entries=10**9)  # clamped, not refused
        assert len(huge.entries) == huge.total.requests


def test_kfd_cost_refuses_a_date_it_cannot_read(priced: KfdDaemon) -> None:
    result = priced.cli("cost", "--since", "last tuesday")
    assert result.returncode == 2
    assert "YYYY-MM-DD" in result.stderr
    bad_budget = priced.cli("budget", "s0", "ten dollars")
    assert bad_budget.returncode == 2
    assert "not an amount" in bad_budget.stderr
