"""The one place that counts tokens: exactly where kfd has the model's
tokenizer, else a local estimate; calibrated per session either way.

OpenAI's models (GPT-4o, 4.1, 4.5, 5, the o-series, gpt-oss: ``o200k_base``;
GPT-4 and 3.5: ``cl100k_base``) have public tokenizers, and ``bpe-openai``
ships them inside the package, vocabularies included: nothing is downloaded at
run time (tiktoken would fetch its files on first use). For those models kfd
counts exactly. The tokenizer is loaded the first time a session on such a
model asks it (`start_loading`, in a thread: a third of a second and about
70 MB, once per daemon; requests go on, estimated, until it is there), never
at start, so a daemon serving other models pays nothing. Other models'
tokenizers cannot be had offline: kfd estimates UTF-8 bytes divided by four,
which tokenizers of current models land near for English and code.

Either way each session learns its own ratio from the input tokens the
provider reports (`Calibration`): the provider also counts the framing of
messages and tools, which no local count sees, and the estimate converges on
the real figures after a request or two.
"""

from __future__ import annotations

import asyncio
import importlib.machinery
import importlib.util
import logging
import math
import os
import re
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

import msgspec

from kfd.gateway.types import ModelRequest, ToolSpec
from kfd.transcript import AssistantMessage, Message, SummaryMessage, ToolResultMessage, UserMessage

log = logging.getLogger(__name__)

Count = Callable[[str], int]
"""Tokens of a text, by one way of counting."""

BYTES_PER_TOKEN = 4.0
MESSAGE_OVERHEAD = 4
"""Tokens each message costs beyond its text (role markers, separators)."""

_json = msgspec.json.Encoder()


def estimate(text: str) -> int:
    """Estimated tokens of ``text``, before calibration."""
    if not text:
        return 0
    return math.ceil(len(text.encode("utf-8", "replace")) / BYTES_PER_TOKEN)


def message_tokens(message: Message, count: Count = estimate) -> int:
    """Tokens of one transcript message as a provider sends it."""
    match message:
        case UserMessage() | SummaryMessage():
            size = count(message.text)
        case AssistantMessage():
            size = count(message.text) + count(message.reasoning)
            for call in message.tool_calls:
                size += count(call.name) + count(call.arguments) + MESSAGE_OVERHEAD
        case ToolResultMessage():
            size = count(message.content) + count(message.call_id)
    return size + MESSAGE_OVERHEAD


def messages_tokens(messages: Iterable[Message], count: Count = estimate) -> int:
    return sum(message_tokens(m, count) for m in messages)


def tools_tokens(tools: list[ToolSpec], count: Count = estimate) -> int:
    """Tokens of the tool definitions (sent as JSON schemas)."""
    return count(_json.encode(tools).decode()) if tools else 0


# --------------------------------------------------------------------------
# Exact counts, for models with a public tokenizer

_O200K = re.compile(r"^(gpt-4o|chatgpt-4o|gpt-4\.1|gpt-4\.5|gpt-5|gpt-oss|o[1-9](-|$))")
_CL100K = re.compile(r"^(gpt-4|gpt-3\.5)")

CACHED_TEXTS = 4096
"""Counts remembered per tokenizer: a transcript is counted again before every
request, and only its new texts need encoding (the others' hashes are cached
in the string objects themselves)."""

_CHUNK = 500_000
"""Characters encoded at once (bpe-openai refuses a million)."""

_loaded: dict[str, Count] = {}
_loading: dict[str, asyncio.Future[None]] = {}
_lock = threading.Lock()


def tokenizer_of(model: str) -> str | None:
    """The public tokenizer of a model, by name (``o200k_base``), or None.

    A model is named by its last part: ``openai/gpt-4o`` (OpenRouter),
    ``workers-ai/@cf/openai/gpt-oss-120b`` (Cloudflare).
    """
    base = model.rsplit("/", 1)[-1].lower()
    if _O200K.match(base):
        return "o200k_base"
    if _CL100K.match(base):
        return "cl100k_base"
    return None


def counter(model: str) -> Count:
    """The model's exact count once its tokenizer is loaded, else `estimate`."""
    name = tokenizer_of(model)
    return _loaded.get(name, estimate) if name is not None else estimate


def counted_with(model: str) -> str:
    """The tokenizer `counter` counts ``model``'s text with; "" for the estimate."""
    name = tokenizer_of(model)
    return name if name is not None and _loaded.get(name, estimate) is not estimate else ""


def start_loading(model: str) -> None:
    """Begin loading ``model``'s tokenizer in a thread, if kfd has one and it is
    not loaded: requests do not wait for it (they are estimated meanwhile)."""
    name = tokenizer_of(model)
    if name is not None and name not in _loaded and name not in _loading:
        loading = _loading[name] = asyncio.ensure_future(asyncio.to_thread(_load, name))
        loading.add_done_callback(lambda _: _loading.pop(name, None))


async def load_tokenizer(model: str) -> None:
    """Load ``model``'s tokenizer if kfd has one, and wait for it (``kfd context``)."""
    start_loading(model)
    name = tokenizer_of(model)
    loading = _loading.get(name) if name is not None else None
    if loading is not None and loading.get_loop() is asyncio.get_running_loop():
        await asyncio.shield(loading)
    elif name is not None and name not in _loaded:
        await asyncio.to_thread(_load, name)  # begun on a loop now gone (tests): load here


def _load(name: str) -> None:
    with _lock:
        if name in _loaded:
            return
        try:
            count = _rust_count(name)
        except Exception:  # a dependency; if it is broken, counts stay estimates
            log.exception("the %s tokenizer cannot be loaded: token counts stay estimates", name)
            _loaded[name] = estimate
            return
        _loaded[name] = _cached(count)
        log.info("counting tokens with %s", name)


def _rust_count(name: str) -> Count:
    """bpe-openai's tokenizer for ``name``: its Rust extension's ``count``.

    The extension is loaded from the package's files without running the
    package's ``__init__``, which reads every vocabulary into Python dicts
    (for a tiktoken-like ``decode`` kfd does not need): 67 MB and a third of a
    second instead of 135 MB and a second. The extension's interface is the
    typed ``_bindings.pyi`` the package ships; if it ever changes, the
    package's public ``get_encoding`` is used instead.
    """
    spec = importlib.util.find_spec("bpe_openai")  # finds, without importing it
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("bpe-openai is not installed")
    try:
        bindings = _extension("bpe_openai._bindings", spec.submodule_search_locations[0])
        tokenizer = bindings.tokenizer_for_encoding(name)
        count: Count = tokenizer.count
        count("kfd")
    except Exception:
        log.info("bpe-openai's extension did not load directly; using its package", exc_info=True)
        with warnings.catch_warnings():  # it reads its files the old way; harmless
            warnings.simplefilter("ignore", DeprecationWarning)
            import bpe_openai

            encoding = bpe_openai.get_encoding(name)
        return lambda text: len(encoding.encode_ordinary(text))
    return count


def _extension(module: str, directory: str) -> Any:
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = os.path.join(directory, module.rsplit(".", 1)[1] + suffix)
        if os.path.exists(path):
            loader = importlib.machinery.ExtensionFileLoader(module, path)
            spec = importlib.util.spec_from_file_location(module, path, loader=loader)
            if spec is None:
                break
            loaded = importlib.util.module_from_spec(spec)
            loader.exec_module(loaded)
            return loaded
    raise ImportError(f"{module} not found in {directory}")


def _cached(count: Count) -> Count:
    # Keyed by the text's hash and length, not the text: a cache that held the
    # strings would keep the tool outputs of unloaded sessions alive.
    cache: OrderedDict[tuple[int, int], int] = OrderedDict()

    def cached(text: str) -> int:
        key = (hash(text), len(text))
        found = cache.get(key)
        if found is None:
            found = sum(count(_valid(chunk)) for chunk in _chunks(text)) if text else 0
            cache[key] = found
            if len(cache) > CACHED_TEXTS:
                cache.popitem(last=False)
        else:
            cache.move_to_end(key)
        return found

    return cached


def _valid(text: str) -> str:
    """``text`` without lone surrogates (they cannot cross into Rust as UTF-8)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text


def _chunks(text: str) -> Iterable[str]:
    """``text`` in pieces of at most `_CHUNK` characters, cut after a newline
    where there is one (no token spans a line end, so the count stays exact)."""
    start = 0
    while len(text) - start > _CHUNK:
        cut = text.rfind("\n", start, start + _CHUNK) + 1 or start + _CHUNK
        yield text[start:cut]
        start = cut
    yield text[start:]


# --------------------------------------------------------------------------
# Calibration


class Calibration:
    """A session's ratio of reported to estimated input tokens.

    The first report sets it; later ones are smoothed (a single odd request,
    such as one served by a different model, moves it only part way), and it
    is bounded, so a provider that reports nonsense cannot make kfd compact at
    every step, or never.
    """

    LOW, HIGH = 0.4, 2.5
    WEIGHT = 0.5

    def __init__(self) -> None:
        self.ratio = 1.0
        self.reported = 0
        """Input tokens the provider reported for the last request."""

    def scale(self, estimated: int) -> int:
        """``estimated`` in this session's real tokens, as far as known."""
        return math.ceil(estimated * self.ratio)

    def observe(self, estimated: int, reported: int) -> None:
        """Learn from one request: ``estimated`` locally, ``reported`` by the provider."""
        if estimated <= 0 or reported <= 0:
            return  # a provider that reports no usage teaches nothing
        observed = min(max(reported / estimated, self.LOW), self.HIGH)
        first = self.reported == 0
        self.reported = reported
        self.ratio = observed if first else self.ratio + (observed - self.ratio) * self.WEIGHT


def request_tokens(request: ModelRequest) -> int:
    """Input tokens of a request, uncalibrated: counted exactly where kfd has the
    model's tokenizer loaded, else estimated."""
    count = counter(request.model)
    system = count(request.system) + tools_tokens(request.tools, count)
    return system + messages_tokens(request.messages, count)
