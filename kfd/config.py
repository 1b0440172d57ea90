"""The one configuration loader.

``$XDG_CONFIG_HOME/kfd/config.toml``, typed by the structs below, then the
environment on top:

============== =====================================================
KFD_PROVIDER   ``[model] provider``
KFD_BASE_URL   ``[model] base_url``
KFD_MODEL      ``[model] model``
KFD_API_KEY    the API key itself (else the variable ``api_key_env`` names)
============== =====================================================

A mistake is reported with the file, the key and what was expected; the
daemon refuses to start on a broken config rather than guess.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import msgspec

from kfd import paths
from kfd.errors import ConfigError
from kfd.protocol import Mode

ProviderName = Literal["openai"]


class _Section(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    pass


class ModelConfig(_Section):
    """``[model]``: which model, where, and how patiently."""

    provider: ProviderName = "openai"
    base_url: str = "https://api.openai.com/v1"
    model: str = "gpt-4.1"
    api_key_env: str = "OPENAI_API_KEY"
    context_window: int = 128_000
    max_output_tokens: int = 16_384
    connect_timeout_s: float = 10.0
    idle_timeout_s: float = 120.0
    """Longest silence allowed between two chunks of a streamed answer."""
    max_retries: int = 5
    retry_base_s: float = 1.0
    retry_max_s: float = 60.0


class AgentConfig(_Section):
    """``[agent]``: limits of the turn loop."""

    max_steps: int = 100
    """Model requests per turn before the turn stops with ``max_steps``."""
    repeat_limit: int = 3
    """Identical consecutive tool calls that stop the turn."""
    default_mode: Mode = "default"
    tool_timeout_s: float = 900.0
    """Hard ceiling for any tool call (tools have their own, lower, limits)."""


class DaemonConfig(_Section):
    """``[daemon]``."""

    log_level: Literal["debug", "info", "warning", "error"] = "info"
    commit_interval_ms: float = 0.0
    """Extra wait before a group commit to gather more events (0: none)."""
    delta_window_ms: float = 4.0
    """Streamed model text: at most one bus message per window (0: one per chunk)."""


class PluginsConfig(_Section):
    """``[plugins]``: which entry-point plugins to skip."""

    disable: list[str] = msgspec.field(default_factory=list)


class Config(_Section):
    model: ModelConfig = msgspec.field(default_factory=ModelConfig)
    agent: AgentConfig = msgspec.field(default_factory=AgentConfig)
    daemon: DaemonConfig = msgspec.field(default_factory=DaemonConfig)
    plugins: PluginsConfig = msgspec.field(default_factory=PluginsConfig)
    tools: dict[str, dict[str, Any]] = msgspec.field(default_factory=dict)
    """``[tools.<name>]`` tables, handed to the plugin that owns the tool."""


ENV_OVERRIDES: Mapping[str, str] = {
    "KFD_PROVIDER": "provider",
    "KFD_BASE_URL": "base_url",
    "KFD_MODEL": "model",
}


def load(path: Path | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Read the config file (absent is fine) and apply the environment."""
    path = path or paths.config_file()
    environ = os.environ if environ is None else environ
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raw = b""
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        config = msgspec.toml.decode(raw, type=Config) if raw.strip() else Config()
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{path}: {_name_keys(exc, raw)}") from exc
    except msgspec.DecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    overrides: dict[str, Any] = {}
    for variable, field in ENV_OVERRIDES.items():
        if environ.get(variable):
            overrides[field] = environ[variable]
    model = msgspec.structs.replace(config.model, **overrides) if overrides else config.model
    try:
        msgspec.convert(msgspec.to_builtins(model), ModelConfig)
    except msgspec.ValidationError as exc:
        names = ", ".join(f"{k}={v!r}" for k, v in overrides.items())
        raise ConfigError(f"environment overrides ({names}): {exc}") from exc
    return msgspec.structs.replace(config, model=model)


def _name_keys(error: msgspec.ValidationError, raw: bytes) -> str:
    """msgspec writes ``$.tools[...]`` for a table key; name the key instead."""
    message = str(error)
    if "$.tools[...]" in message:
        tables = msgspec.toml.decode(raw).get("tools", {})
        bad = [key for key, value in tables.items() if not isinstance(value, dict)]
        if bad:
            message = message.replace("$.tools[...]", f"$.tools.{bad[0]}")
    return message


def api_key(model: ModelConfig, environ: Mapping[str, str] | None = None) -> str | None:
    """The API key, from the environment only: never from or into a file."""
    environ = os.environ if environ is None else environ
    return environ.get("KFD_API_KEY") or environ.get(model.api_key_env) or None
