"""Token counts: exact with the model's own tokenizer where kfd has it, else estimated."""

from __future__ import annotations

import pytest

from kfd.agent import tokens
from kfd.agent.tokens import request_tokens
from kfd.gateway.types import ModelRequest, ToolSpec
from kfd.transcript import UserMessage

# bpe-openai reads its vocabularies with an old importlib call; kfd hides that
# warning itself, this module calls the library directly to compare.
pytestmark = pytest.mark.filterwarnings("ignore:open_binary is deprecated:DeprecationWarning")


@pytest.mark.parametrize(
    ("model", "tokenizer"),
    [
        ("gpt-4o", "o200k_base"),
        ("gpt-4o-mini", "o200k_base"),
        ("openai/gpt-4.1", "o200k_base"),
        ("gpt-5", "o200k_base"),
        ("o3-mini", "o200k_base"),
        ("o1", "o200k_base"),
        ("workers-ai/@cf/openai/gpt-oss-120b", "o200k_base"),
        ("gpt-4", "cl100k_base"),
        ("gpt-4-turbo", "cl100k_base"),
        ("gpt-3.5-turbo", "cl100k_base"),
        ("workers-ai/@cf/moonshotai/kimi-k2.6", None),
        ("claude-sonnet-4-5", None),
        ("ollama", None),
        ("qwen2.5-coder:32b", None),
    ],
)
def test_openai_models_are_known_by_their_tokenizer(model: str, tokenizer: str | None) -> None:
    assert tokens.tokenizer_of(model) == tokenizer


async def test_an_openai_model_is_counted_exactly_once_its_tokenizer_is_loaded() -> None:
    text = "def total(values: list[float]) -> float:\n    return sum(values)  # ünïcode ✓\n"
    # Not loaded by the mere question: a daemon on another model pays nothing.
    assert tokens.counter("claude-sonnet-4-5") is tokens.estimate
    await tokens.load_tokenizer("gpt-4o")
    exact = tokens.counter("gpt-4o")
    assert exact is not tokens.estimate
    import bpe_openai

    assert exact(text) == len(bpe_openai.get_encoding("o200k_base").encode_ordinary(text))
    assert exact(text) != tokens.estimate(text)
    assert tokens.counted_with("openai/gpt-4o-mini") == "o200k_base"
    assert tokens.counted_with("workers-ai/@cf/moonshotai/kimi-k2.6") == ""
    # Special tokens in a user's text are text, not control tokens.
    assert exact("<|endoftext|>") > 1


async def test_texts_too_long_for_one_call_are_counted_in_chunks() -> None:
    await tokens.load_tokenizer("gpt-4o")
    line = "word " * 20 + "\n"
    text = line * 30_000  # 3 million characters
    assert tokens.counter("gpt-4o")(text) == 30_000 * tokens.counter("gpt-4o")(line)


async def test_a_request_is_counted_with_its_models_counter() -> None:
    await tokens.load_tokenizer("gpt-4o")
    tool = ToolSpec(name="read", description="Read a file.", parameters={"type": "object"})
    messages = [UserMessage(text="explain the repository, please", id="u1")]
    request = ModelRequest(model="gpt-4o", system="You are kfd.", messages=messages, tools=[tool])
    exact = tokens.counter("gpt-4o")
    expected = (
        exact("You are kfd.")
        + tokens.tools_tokens([tool], exact)
        + tokens.messages_tokens(messages, exact)
    )
    assert request_tokens(request) == expected
    other = ModelRequest(model="kimi", system="You are kfd.", messages=messages, tools=[tool])
    assert request_tokens(other) == (
        tokens.estimate("You are kfd.")
        + tokens.tools_tokens([tool])
        + tokens.messages_tokens(messages)
    )


async def test_the_public_api_counts_the_same_when_the_extension_cannot_be_loaded_directly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    direct = tokens._rust_count("cl100k_base")

    def refuse(module: str, directory: str) -> object:
        raise ImportError("no such file")

    monkeypatch.setattr(tokens, "_extension", refuse)
    fallback = tokens._rust_count("cl100k_base")
    text = "Tokenizers split text into pieces: <|endoftext|> is text here.\n"
    assert direct(text) == fallback(text) > 10


async def test_text_the_tokenizer_cannot_take_is_counted_anyway() -> None:
    await tokens.load_tokenizer("gpt-4o")
    count = tokens.counter("gpt-4o")
    assert count("a lone surrogate \ud800 here") > 3
    assert count("") == 0
