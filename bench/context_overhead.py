"""The fixed overhead of every request: the system prompt and the tool schemas as sent.

Measured on the bytes of the OpenAI chat-completions wire format (the system
message and the ``tools`` array), with the core tool set: the built-in
plugins kfd_fs and kfd_shell plus the daemon's own tools. Token counts come
from an offline tokenizer with bundled vocabularies (``bpe-openai``: o200k,
the GPT-4o family, and cl100k) when it is installed (``pip install
'kfd[bench]'``); otherwise only bytes are printed.

Budget (issue 6): at most 14,000 bytes and about 3,500 tokens.

    .venv/bin/python bench/context_overhead.py
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, cast

from kfd.agent.core_tools import with_core_tools
from kfd.agent.environment import facts
from kfd.agent.prompt import STABLE_PREFIX
from kfd.agent.tools import ToolRegistry
from kfd.gateway.openai import chat_completions_body
from kfd.gateway.types import ModelRequest
from kfd.plugins import PluginHost
from kfd.store.db import Store

BUDGET_BYTES = 14_000
BUDGET_TOKENS = 3_500
CORE_PLUGINS = ("fs", "shell")


def tokenizers() -> dict[str, Any]:
    try:
        import bpe_openai
    except ImportError:
        return {}
    return {name: bpe_openai.get_encoding(name) for name in ("o200k_base", "cl100k_base")}


def core_registry() -> ToolRegistry:
    from importlib.metadata import entry_points

    host = PluginHost()
    others = [e.name for e in entry_points(group="kfd") if e.name not in CORE_PLUGINS]
    host.load_entry_points(others)
    # The core tools only keep these references; nothing is called here.
    store = cast(Store, None)
    sessions = cast(Any, lambda _: None)
    return ToolRegistry(with_core_tools(host.tools({}), store, sessions, []))


def sample_environment() -> str:
    with tempfile.TemporaryDirectory() as directory:
        subprocess.run(["git", "init", "-q", "-b", "main", directory], check=True)
        return asyncio.run(facts(Path(directory)))


def main() -> int:
    registry = core_registry()
    environment = sample_environment()
    request = ModelRequest(
        model="m", system=STABLE_PREFIX + "\n" + environment, messages=[], tools=registry.specs
    )
    body = chat_completions_body(request, 1024)
    system = json.dumps(body["messages"][0], ensure_ascii=False)
    tools = json.dumps(body["tools"], ensure_ascii=False)
    encoders = tokenizers()

    def row(label: str, text: str) -> tuple[int, dict[str, int]]:
        counts = {name: len(enc.encode(text)) for name, enc in encoders.items()}
        figures = "  ".join(f"{n:>6,} tok ({name.split('_')[0]})" for name, n in counts.items())
        print(f"  {label:<34} {len(text.encode()):>7,} bytes  {figures}")
        return len(text.encode()), counts

    print(f"fixed overhead per request, {len(registry.specs)} core tools (OpenAI wire JSON)")
    row("stable prefix (rules)", STABLE_PREFIX)
    row("environment facts (sample repo)", environment)
    row("system message", system)
    row("tool schemas", tools)
    total_bytes, total_tokens = row("total", system + tools)
    print("per tool:")
    for spec in body["tools"]:
        row(spec["function"]["name"], json.dumps(spec, ensure_ascii=False))
    if not encoders:
        print("(install bpe-openai for token counts: pip install 'kfd[bench]')")
    worst = max(total_tokens.values(), default=0)
    verdict = total_bytes <= BUDGET_BYTES and (not encoders or worst <= BUDGET_TOKENS)
    print(
        f"budget: {BUDGET_BYTES:,} bytes, about {BUDGET_TOKENS:,} tokens: "
        f"{'within' if verdict else 'OVER'}"
    )
    return 0 if verdict else 1


if __name__ == "__main__":
    sys.exit(main())
