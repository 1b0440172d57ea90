"""The model gateway: the only part of kfd that talks to a model provider.

`make_provider` builds the `Provider` the ``[model]`` config names; the turn
loop then streams `ModelRequest` values through it and reads `StreamEvent`
values back (see `kfd.gateway.types`). Providers: `cloudflare` (the default:
Workers AI through an AI Gateway), `openai` (any OpenAI-compatible endpoint),
`anthropic` (the Messages API). What they share (retries, refusals, idle
timeouts) is in `kfd.gateway.streaming`, the retry policy in
`kfd.gateway.retry`, and the model table (windows, prices) in
`kfd.gateway.catalog`.

Adding a provider is a new module with a `Provider` subclass whose constructor
takes the `ModelConfig`, plus one line in ``PROVIDERS``. Provider modules are
imported only when chosen, so nobody pays for a provider they do not use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, cast

from kfd.errors import ConfigError
from kfd.gateway.types import (
    Completed,
    ModelRequest,
    Provider,
    ReasoningDelta,
    RequestInfo,
    Retrying,
    SendObserver,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    ToolSpec,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from kfd.config import ModelConfig

__all__ = [
    "PROVIDERS",
    "Completed",
    "ModelRequest",
    "Provider",
    "ReasoningDelta",
    "RequestInfo",
    "Retrying",
    "SendObserver",
    "StreamEvent",
    "TextDelta",
    "ToolCallDelta",
    "ToolSpec",
    "make_provider",
]

PROVIDERS: dict[str, str] = {
    "cloudflare": "kfd.gateway.cloudflare:CloudflareProvider",
    "openai": "kfd.gateway.openai:OpenAIProvider",
    "anthropic": "kfd.gateway.anthropic:AnthropicProvider",
}
"""``[model] provider`` name -> ``module:class`` of its `Provider`."""


def make_provider(config: ModelConfig) -> Provider:
    """The provider ``config.provider`` names, configured by ``config``.

    Raises `kfd.errors.ConfigError` for a provider kfd does not know.
    """
    target = PROVIDERS.get(config.provider)
    if target is None:
        known = ", ".join(sorted(PROVIDERS))
        raise ConfigError(
            f"[model] provider = {config.provider!r} is not known; use one of {known}"
        )
    module_name, _, class_name = target.partition(":")
    provider_class = getattr(importlib.import_module(module_name), class_name)
    if not (isinstance(provider_class, type) and issubclass(provider_class, Provider)):
        raise TypeError(f"{target} is not a kfd.gateway.Provider")
    # Every provider's constructor takes the ModelConfig (see the module docstring).
    return cast("Callable[[ModelConfig], Provider]", provider_class)(config)
