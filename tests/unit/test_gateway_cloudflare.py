"""The Cloudflare provider (the default): AI Gateway, Workers AI, and the gateway's cost.

Against the scripted model server's Cloudflare paths over real HTTP.
"""

from __future__ import annotations

import json
import socket
from typing import TYPE_CHECKING, Any

import pytest

from kfd.agent.cost_lookup import GatewayCosts
from kfd.config import LedgerConfig, ModelConfig
from kfd.errors import ProviderProtocolError, ProviderRejected, ProviderUnavailable
from kfd.gateway import (
    Completed,
    ModelRequest,
    ReasoningDelta,
    RequestInfo,
    Retrying,
    StreamEvent,
    TextDelta,
    make_provider,
)
from kfd.gateway.cloudflare import CloudflareProvider
from kfd.protocol import LedgerEntry, ToolCall, Usage
from kfd.testing import (
    CloudflareFormat,
    HttpError,
    Reply,
    ScriptedModelServer,
    ScriptedToolCall,
    ScriptedUsage,
)
from kfd.transcript import UserMessage

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator

TOKEN = "cf-token-0123456789abcdefXYZ"
KIMI = "workers-ai/@cf/moonshotai/kimi-k2.6"


@pytest.fixture
def server() -> Iterator[ScriptedModelServer]:
    with ScriptedModelServer() as running:
        yield running


@pytest.fixture
async def make(server: ScriptedModelServer) -> AsyncIterator[Callable[..., CloudflareProvider]]:
    made: list[CloudflareProvider] = []

    def build(environ: dict[str, str] | None = None, **overrides: Any) -> CloudflareProvider:
        settings: dict[str, Any] = {
            "provider": "cloudflare",
            "base_url": server.base_url,
            "cloudflare_api_url": server.cloudflare_api_url,
            "account_id": "acct123",
            "gateway_id": "my-gw",
            "model": KIMI,
            "idle_timeout_s": 2.0,
            "max_retries": 3,
            "retry_base_s": 0.001,
            "retry_max_s": 0.01,
        }
        config = ModelConfig(**(settings | overrides))
        provider = CloudflareProvider(
            config, environ={"CLOUDFLARE_API_TOKEN": TOKEN} if environ is None else environ
        )
        made.append(provider)
        return provider

    yield build
    for provider in made:
        await provider.aclose()


def ask(model: str = KIMI) -> ModelRequest:
    return ModelRequest(
        model=model,
        system="You are terse.",
        messages=[UserMessage(text="hi")],
        metadata={"session": "s0123", "turn": "7"},
    )


async def collect(provider: CloudflareProvider, request: ModelRequest | None = None) -> list[Any]:
    return [event async for event in provider.stream(request or ask())]


def completed(events: list[StreamEvent]) -> Completed:
    [final] = [e for e in events if isinstance(e, Completed)]
    return final


async def test_requests_go_through_the_gateway_compat_endpoint_with_its_headers(
    server: ScriptedModelServer, make: Callable[..., CloudflareProvider]
) -> None:
    server.add(Reply(text="Hello from Kimi", chunk_chars=5))

    events = await collect(make())

    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "Hello from Kimi"
    record = server.wait_for_request(0)
    assert record.path == "/v1/acct123/my-gw/compat/chat/completions"
    assert record.body["model"] == KIMI
    assert record.headers["authorization"] == f"Bearer {TOKEN}"
    assert record.headers["cf-aig-authorization"] == f"Bearer {TOKEN}"
    assert json.loads(record.headers["cf-aig-metadata"]) == {
        "kfd_session": "s0123",
        "kfd_turn": "7",
    }
    info = completed(events).info
    assert info.provider == "cloudflare"
    assert info.request_id == "log-0"
    assert info.extra["gateway_log_id"] == "log-0"
    assert info.extra["cache_status"] == "MISS"


async def test_tool_calls_reasoning_and_usage_arrive_through_the_gateway(
    server: ScriptedModelServer, make: Callable[..., CloudflareProvider]
) -> None:
    calls = [
        ScriptedToolCall("read", {"path": "a.py"}, id="c1"),
        ScriptedToolCall("read", {"path": "b.py"}, id="c2"),
    ]
    usage = ScriptedUsage(input_tokens=900, output_tokens=80, cached_input_tokens=512)
    server.add(Reply(reasoning="Both files.", tool_calls=calls, usage=usage, repeat_usage=True))

    events = await collect(make())

    assert "".join(e.text for e in events if isinstance(e, ReasoningDelta)) == "Both files."
    final = completed(events)
    assert final.message.tool_calls == [
        ToolCall(id="c1", name="read", arguments='{"path": "a.py"}'),
        ToolCall(id="c2", name="read", arguments='{"path": "b.py"}'),
    ]
    assert final.usage == Usage(
        input_tokens=900, cached_input_tokens=512, output_tokens=80, requests=1
    )


async def test_a_workers_ai_name_gets_the_gateway_prefix(
    server: ScriptedModelServer, make: Callable[..., CloudflareProvider]
) -> None:
    server.add(Reply(text="ok"))

    await collect(make(), ask("@cf/moonshotai/kimi-k2.6"))

    assert server.wait_for_request(0).body["model"] == KIMI


async def test_without_a_gateway_requests_go_to_workers_ai_directly(
    server: ScriptedModelServer, make: Callable[..., CloudflareProvider]
) -> None:
    server.add(Reply(text="direct"))
    provider = make(gateway_id="")

    events = await collect(provider)

    record = server.wait_for_request(0)
    assert record.path == "/client/v4/accounts/acct123/ai/v1/chat/completions"
    assert record.body["model"] == "@cf/moonshotai/kimi-k2.6"
    assert record.headers["authorization"] == f"Bearer {TOKEN}"
    assert "cf-aig-authorization" not in record.headers
    assert "cf-aig-metadata" not in record.headers
    assert not provider.reports_cost(completed(events).info)


async def test_out_of_capacity_3040_is_retried(
    server: ScriptedModelServer, make: Callable[..., CloudflareProvider]
) -> None:
    capacity = HttpError(429, message="No more data centers to forward the request to", code="3040")
    server.add(Reply(fault=capacity), Reply(fault=HttpError(400, code="3040")), Reply(text="ok"))

    events = await collect(make())

    reasons = [e.reason for e in events if isinstance(e, Retrying)]
    assert len(reasons) == 2
    assert "No more data centers" in reasons[0]
    assert completed(events).message.text == "ok"


async def test_a_used_up_daily_allocation_3036_is_not_retried_and_says_what_to_do(
    server: ScriptedModelServer, make: Callable[..., CloudflareProvider]
) -> None:
    server.add(
        Reply(
            fault=HttpError(429, message="You have used up your daily free allocation", code="3036")
        )
    )

    with pytest.raises(ProviderRejected) as caught:
        await collect(make())

    assert "daily free allocation" in str(caught.value)
    assert "Workers Paid" in str(caught.value)
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    ("overrides", "environ", "named"),
    [
        ({"account_id": ""}, {"CLOUDFLARE_API_TOKEN": TOKEN}, ["CLOUDFLARE_ACCOUNT_ID"]),
        ({}, {}, ["CLOUDFLARE_API_TOKEN"]),
        ({"account_id": ""}, {}, ["CLOUDFLARE_ACCOUNT_ID", "CLOUDFLARE_API_TOKEN"]),
    ],
    ids=["no-account", "no-token", "nothing"],
)
async def test_missing_credentials_send_nothing_and_name_what_to_set(
    server: ScriptedModelServer,
    make: Callable[..., CloudflareProvider],
    overrides: dict[str, str],
    environ: dict[str, str],
    named: list[str],
) -> None:
    with pytest.raises(ProviderRejected) as caught:
        await collect(make(environ=environ, **overrides))

    message = str(caught.value)
    for variable in named:
        assert variable in message
    assert "KFD_GATEWAY_ID" in message
    assert "[model] provider" in message
    assert server.requests == []


def test_cloudflare_is_the_default_provider() -> None:
    provider = make_provider(ModelConfig())
    assert isinstance(provider, CloudflareProvider)
    assert provider.config.model == KIMI
    assert provider.config.context_window == 262_144


# --------------------------------------------------------------------------
# The gateway's cost


def logged(log_id: str = "log-0") -> RequestInfo:
    return RequestInfo(provider="cloudflare", model=KIMI, extra={"gateway_log_id": log_id})


async def test_the_gateway_log_gives_the_cost_once_it_lands(
    server: ScriptedModelServer, make: Callable[..., CloudflareProvider]
) -> None:
    server.add(Reply(text="priced", gateway_cost_usd=0.004217))
    provider = make()
    info = completed(await collect(provider)).info

    assert provider.reports_cost(info)
    assert await provider.reported_cost(info) is None  # not logged yet (404)
    assert await provider.reported_cost(info) == pytest.approx(0.004217)

    lookups = server.wire(CloudflareFormat).lookups
    assert [r.path for r in lookups] == [
        "/client/v4/accounts/acct123/ai-gateway/gateways/my-gw/logs/log-0"
    ] * 2
    assert lookups[0].headers["authorization"] == f"Bearer {TOKEN}"
    assert len(server.requests) == 1  # look-ups are not model requests


async def test_a_log_id_from_a_hostile_answer_cannot_climb_the_api_path(
    server: ScriptedModelServer, make: Callable[..., CloudflareProvider]
) -> None:
    provider = make()

    await provider.reported_cost(logged("../../../../user/tokens"))

    [lookup] = server.wire(CloudflareFormat).lookups
    assert lookup.path.startswith("/client/v4/accounts/acct123/ai-gateway/gateways/my-gw/logs/")
    assert "/user/tokens" not in lookup.path


async def test_a_logged_entry_without_a_cost_leaves_the_estimate(
    server: ScriptedModelServer, make: Callable[..., CloudflareProvider]
) -> None:
    server.add(Reply(text="unpriced"))
    provider = make()
    info = completed(await collect(provider)).info

    assert await provider.reported_cost(info) is None
    assert await provider.reported_cost(info) is None


async def test_a_token_without_log_permission_is_told_so(
    make: Callable[..., CloudflareProvider],
) -> None:
    with ScriptedModelServer([], formats=[_Refusing()]) as refusing:
        provider = make(cloudflare_api_url=refusing.cloudflare_api_url)
        with pytest.raises(ProviderRejected) as caught:
            await provider.reported_cost(logged())
    assert "AI Gateway Read" in str(caught.value)
    assert TOKEN not in str(caught.value)


async def test_an_impossible_cost_is_not_believed(make: Callable[..., CloudflareProvider]) -> None:
    with ScriptedModelServer([], formats=[_Garbled()]) as garbled:
        provider = make(cloudflare_api_url=garbled.cloudflare_api_url)
        with pytest.raises(ProviderProtocolError, match="impossible cost"):
            await provider.reported_cost(logged())


async def test_without_network_the_look_up_fails_quietly_and_the_estimate_stands(
    make: Callable[..., CloudflareProvider],
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}/client/v4"
    provider = make(cloudflare_api_url=closed)
    with pytest.raises(ProviderUnavailable, match="cannot look up"):
        await provider.reported_cost(logged())

    confirmed: list[float] = []

    async def on_cost(session: Any, entry: LedgerEntry, cost: float) -> None:
        confirmed.append(cost)

    costs = GatewayCosts(provider, LedgerConfig(lookup_delay_s=0.001, lookup_attempts=3), on_cost)
    entry = LedgerEntry(id="l1", session="s", turn=1, ts=0.0, provider="cloudflare", model=KIMI)
    costs.start(None, entry, logged())  # type: ignore[arg-type]
    await costs.wait()

    assert confirmed == []
    assert costs.pending == 0


class _Refusing(CloudflareFormat):
    def side_answer(self, request: Any) -> tuple[int, Any] | None:
        return 403, {"success": False, "errors": [{"code": 10000, "message": f"no {TOKEN}"}]}


class _Garbled(CloudflareFormat):
    def side_answer(self, request: Any) -> tuple[int, Any] | None:
        return 200, {"success": True, "result": {"id": "log-0", "cost": -3}}
