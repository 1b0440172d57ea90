"""The one configuration loader.

``$XDG_CONFIG_HOME/kfd/config.toml``, typed by the structs below, then the
environment on top:

======================= ==============================================
KFD_PROVIDER            ``[model] provider``
KFD_BASE_URL            ``[model] base_url``
KFD_MODEL               ``[model] model``
CLOUDFLARE_ACCOUNT_ID   ``[model] account_id``
KFD_GATEWAY_ID          ``[model] gateway_id``
KFD_CLOUDFLARE_API_URL  ``[model] cloudflare_api_url``
KFD_API_KEY             the API key itself (else the variable ``api_key_env``
                        names: ``CLOUDFLARE_API_TOKEN``, ``OPENAI_API_KEY`` or
                        ``ANTHROPIC_API_KEY`` by default)
======================= ==============================================

A mistake is reported with the file, the key and what was expected; the
daemon refuses to start on a broken config rather than guess. While it runs,
it reads the file again when it changes and keeps the last good config when
the new one is broken (`kfd.daemon.reload`).

A project's ``.kfd/config.toml`` (`ProjectConfig`, `read_project`) comes
with the repository: until the user trusts its exact content it only narrows
rights (`narrow`).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple

import msgspec

from kfd import paths
from kfd.errors import ConfigError
from kfd.gateway.catalog import ModelCatalog, ModelEntry
from kfd.protocol import Mode
from kfd.regular import read_regular

ProviderName = Literal["cloudflare", "openai", "anthropic"]


class ProviderDefaults(NamedTuple):
    """What an unset ``[model]`` key means for one provider."""

    base_url: str
    model: str
    api_key_env: str


PROVIDER_DEFAULTS: Mapping[str, ProviderDefaults] = {
    # Cloudflare's base is the AI Gateway's; the account and gateway follow it.
    "cloudflare": ProviderDefaults(
        "https://gateway.ai.cloudflare.com/v1",
        "workers-ai/@cf/moonshotai/kimi-k2.6",
        "CLOUDFLARE_API_TOKEN",
    ),
    "openai": ProviderDefaults("https://api.openai.com/v1", "gpt-4.1", "OPENAI_API_KEY"),
    "anthropic": ProviderDefaults(
        "https://api.anthropic.com/v1", "claude-sonnet-4-5", "ANTHROPIC_API_KEY"
    ),
}

FALLBACK_CONTEXT_WINDOW = 128_000
"""The window assumed for a model the model table does not know."""


class _Section(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    pass


class ModelConfig(_Section):
    """``[model]``: which model, where, and how patiently.

    Empty ``base_url``, ``model`` and ``api_key_env`` take the provider's
    defaults (`PROVIDER_DEFAULTS`; `load` fills them in, see `resolved`).
    ``context_window = 0`` takes the model table's window for ``model``
    (`kfd.gateway.catalog`), or 128,000 for a model it does not know.
    """

    provider: ProviderName = "cloudflare"
    base_url: str = ""
    model: str = ""
    api_key_env: str = ""
    account_id: str = ""
    """Cloudflare account id (the provider ``cloudflare`` needs it)."""
    gateway_id: str = ""
    """Cloudflare AI Gateway name; empty sends requests to Workers AI directly."""
    cloudflare_api_url: str = "https://api.cloudflare.com/client/v4"
    """Cloudflare's API: Workers AI without a gateway, and the gateway's log look-ups."""
    context_window: Annotated[int, msgspec.Meta(ge=0)] = 0
    max_output_tokens: int = 16_384
    connect_timeout_s: float = 10.0
    idle_timeout_s: float = 120.0
    """Longest silence allowed between two chunks of a streamed answer."""
    max_retries: int = 5
    retry_base_s: float = 1.0
    retry_max_s: float = 60.0

    def __post_init__(self) -> None:
        if not self.context_window:
            model = self.model or PROVIDER_DEFAULTS[self.provider].model
            self.context_window = table_window(model, {})

    def resolved(self) -> ModelConfig:
        """This config with the provider's defaults in place of empty keys."""
        defaults = PROVIDER_DEFAULTS[self.provider]
        return msgspec.structs.replace(
            self,
            base_url=self.base_url or defaults.base_url,
            model=self.model or defaults.model,
            api_key_env=self.api_key_env or defaults.api_key_env,
        )


class BudgetConfig(_Section):
    """``[budget]``: spending limits in US dollars; 0 means no limit.

    A request that would pass a limit is not sent; a warning comes at
    ``warn_at`` of each. A session's own limit (``kfd budget``) replaces
    ``session_usd`` for that session.
    """

    session_usd: Annotated[float, msgspec.Meta(ge=0)] = 0.0
    daily_usd: Annotated[float, msgspec.Meta(ge=0)] = 0.0
    """Per calendar day, local time, all sessions together."""
    monthly_usd: Annotated[float, msgspec.Meta(ge=0)] = 0.0
    """Per calendar month, local time, all sessions together."""
    warn_at: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.8


class LedgerConfig(_Section):
    """``[ledger]``: the authoritative cost look-up after requests through a gateway."""

    gateway_cost: bool = True
    """Replace the estimate with the cost the gateway logged, when it has one."""
    lookup_delay_s: Annotated[float, msgspec.Meta(ge=0)] = 2.0
    """First wait before looking the cost up; it doubles after each miss."""
    lookup_attempts: Annotated[int, msgspec.Meta(ge=1, le=50)] = 8


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
    shutdown_timeout_s: Annotated[float, msgspec.Meta(gt=0)] = 10.0
    """After a stop is asked (running turns interrupted), the most the daemon waits
    for its last writes; then it exits, logging exactly what it could not write."""
    client_queue_kib: Annotated[int, msgspec.Meta(ge=64)] = 4096
    """Events kept for one frontend that reads slower than they come; past it,
    streamed pieces and then other events are shed and the frontend re-syncs."""
    log_max_kib: Annotated[int, msgspec.Meta(ge=64)] = 10240
    """``daemon.log`` is rotated past this size."""
    log_backups: Annotated[int, msgspec.Meta(ge=0, le=100)] = 5
    """Rotated logs kept (``daemon.log.1`` ...)."""
    unload_idle_s: Annotated[float, msgspec.Meta(gt=0)] = 1800.0
    """A session nobody watches or runs is dropped from memory after this long
    (it loads again, whole, when used)."""


class TelemetryConfig(_Section):
    """``[telemetry]``: OpenTelemetry export of traces and metrics (off by default).

    Spans: each turn, with its model requests and tool calls inside; metrics:
    tokens, cost and latencies. Sent over OTLP/HTTP (protobuf) to
    ``endpoint``, e.g. a local OpenTelemetry Collector.
    """

    enabled: bool = False
    endpoint: str = "http://127.0.0.1:4318"
    """The OTLP/HTTP base URL; ``/v1/traces`` and ``/v1/metrics`` are added."""
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    """Extra headers (an API key for a hosted backend: ``${VAR}`` reads the environment)."""
    service_name: str = "kfd"
    export_interval_s: Annotated[float, msgspec.Meta(gt=0)] = 10.0
    """How often metrics are sent (spans go in batches as they end)."""


class BusConfig(_Section):
    """``[bus]``: where the daemon listens besides its local sockets.

    Each ``listen`` entry is ``tcp://HOST:PORT``: requests on ``PORT``,
    events on ``PORT + 1``, the daemon's public key (for first-use pinning)
    on ``PORT + 2`` (see `kfd.remote`). TCP is always CURVE-encrypted and
    admits only the client keys of ``authorized_keys``; there is no
    unauthenticated mode.
    """

    listen: list[str] = msgspec.field(default_factory=list)
    heartbeat_s: Annotated[float, msgspec.Meta(ge=0.05, le=600)] = 5.0
    """ZMTP heartbeat interval on TCP; a peer silent for three of them is dropped."""
    handshake_timeout_s: Annotated[float, msgspec.Meta(ge=0.1, le=600)] = 10.0
    """A TCP peer that has not finished the CURVE handshake by then is dropped."""
    max_clients_per_key: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 16
    """Clients attached at once with one key; more are refused at hello."""
    announce_key: bool = True
    """Tell anyone who connects to ``PORT + 2`` the daemon's public key (only that),
    so clients can pin it on first use; false: clients need ``daemon_key``."""

    def __post_init__(self) -> None:
        from kfd.remote import parse_endpoint  # pure and small

        for text in self.listen:
            try:
                parse_endpoint(text)
            except ValueError as exc:
                raise ValueError(f"listen: {exc}") from None
        if len(set(self.listen)) != len(self.listen):
            raise ValueError("listen: an endpoint is listed twice")


class RemoteConfig(_Section):
    """``[remotes.NAME]``: a daemon on another host (``kfd --remote NAME``).

    ``daemon_key`` pins the daemon's public key (``kfd keys show --daemon``
    on that host prints it); without it the key is pinned on first use in
    ``known_daemons``, and a changed key is refused from then on.
    """

    endpoint: str
    daemon_key: str = ""
    workspace: str = ""
    """Where sessions started there work when no ``--cwd`` is given (a path on that host)."""
    heartbeat_s: Annotated[float, msgspec.Meta(ge=0.05, le=600)] = 5.0
    """How often this side checks the link: a link silent for three is dropped and retried."""

    def __post_init__(self) -> None:
        from kfd.remote import is_key, parse_endpoint  # pure and small

        try:
            parse_endpoint(self.endpoint)
        except ValueError as exc:
            raise ValueError(f"endpoint: {exc}") from None
        if self.daemon_key and not is_key(self.daemon_key):
            raise ValueError(
                "daemon_key: not a CURVE public key (40 Z85 characters, as "
                "`kfd keys show --daemon` prints on the daemon's host)"
            )


class PluginsConfig(_Section):
    """``[plugins]``: which entry-point plugins to skip."""

    disable: list[str] = msgspec.field(default_factory=list)


class ContextConfig(_Section):
    """``[context]``: what the model reads, and when the transcript is compacted."""

    auto_compact: bool = True
    """Compact by itself when the context passes ``compact_at``; ``/compact`` always works."""
    compact_at: Annotated[float, msgspec.Meta(gt=0.1, le=1.0)] = 0.8
    """Fraction of the window (less ``output_reserve``) at which compaction starts."""
    output_reserve: Annotated[int, msgspec.Meta(ge=0)] | None = None
    """Tokens kept free for the answer; default ``[model] max_output_tokens``."""
    keep_recent_tokens: Annotated[int, msgspec.Meta(ge=0)] = 20_000
    """Recent transcript kept verbatim by a compaction (at most a third of the threshold)."""
    summary_max_tokens: Annotated[int, msgspec.Meta(ge=256)] = 4_000
    instruction_file_bytes: Annotated[int, msgspec.Meta(ge=256)] = 16_000
    """Each AGENTS.md / KFD.md / CLAUDE.md is cut past this, with a note saying so."""
    instructions_total_bytes: Annotated[int, msgspec.Meta(ge=256)] = 48_000
    memory_recall: Annotated[int, msgspec.Meta(ge=0, le=20)] = 3
    """Remembered facts placed beside each new user message (0: none)."""
    memory_recall_tokens: Annotated[int, msgspec.Meta(ge=0)] = 400
    """Most estimated tokens those facts may take together."""
    defer_tools_after: Annotated[int, msgspec.Meta(ge=0)] = 10
    """Deferrable tools (MCP servers') listed in full; the rest are found with ``tool_search``."""


class PermissionsConfig(_Section):
    """``[permissions]``: rules that allow, ask or deny tool calls (see `kfd.policy.rules`).

    In the user config and in a project's ``.kfd/config.toml``. Deny beats ask
    beats allow, whatever the file. ``defaults = false`` drops the built-in
    rules (the read-only commands allowed, the secret files denied).
    """

    allow: list[str] = msgspec.field(default_factory=list)
    ask: list[str] = msgspec.field(default_factory=list)
    deny: list[str] = msgspec.field(default_factory=list)
    defaults: bool = True

    def __post_init__(self) -> None:
        from kfd.policy.rules import RuleError, parse_rule  # pure and small

        for key in ("allow", "ask", "deny"):
            for text in getattr(self, key):
                try:
                    parse_rule(text)
                except RuleError as exc:
                    raise ValueError(f"{key}: {exc}") from None


class SandboxConfig(_Section):
    """``[sandbox]``: how commands are confined (bubblewrap; see `kfd.sandbox`).

    The whole file system is read-only but the workspace, the project's cache
    home and a private ``/tmp``; credentials and kfd's own files are hidden;
    ``.git`` internals, ``.kfd`` and shell start-up files stay read-only; the
    environment is an allow-list; no network unless ``network`` or the call
    asked for it and was approved.
    """

    enabled: bool = True
    """False runs commands unconfined (kfd asks before each when it cannot confine one)."""
    network: bool = False
    """Commands reach the network without asking."""
    env_allow: list[str] = msgspec.field(default_factory=list)
    """The older name of ``env`` (both are read)."""
    env: list[str] = msgspec.field(default_factory=list)
    """Variables (names or globs) passed to commands beyond the built-in allow-list."""
    hide: list[str] = msgspec.field(default_factory=list)
    """Paths unreadable in the sandbox beyond the built-in credential locations."""
    sockets: list[str] = msgspec.field(default_factory=list)
    """Unix sockets outside the workspace that commands may connect to."""


class CheckpointsConfig(_Section):
    """``[checkpoints]``: what kfd keeps so that a turn's file changes can be undone."""

    enabled: bool = True
    keep_days: Annotated[float, msgspec.Meta(gt=0)] = 30.0
    """Turns older than this are forgotten (their changes can no longer be undone)."""
    max_total_mb: Annotated[float, msgspec.Meta(gt=0)] = 2048.0
    """The shadow repositories together; past it, the oldest turns are forgotten."""
    max_file_mb: Annotated[float, msgspec.Meta(gt=0)] = 10.0
    """A file larger than this is not kept (its change is listed, not undoable)."""


HookEvent = Literal[
    "before_tool", "after_tool", "turn_end", "session_start", "approval_requested", "notification"
]


class HookConfig(_Section):
    """One ``[[hooks]]`` table: a shell command run on an event of every session.

    The event goes to the command as JSON on stdin. A ``before_tool`` hook
    denies the call by exiting 2 (stderr is the reason) or by printing
    ``{"decision": "deny", "reason": "..."}`` (or ``"ask"``), and may add
    ``{"context": "..."}`` for the model; an ``after_tool`` hook's output is
    appended to the result the model reads. Hooks run in the sandbox like
    ``bash`` unless ``sandbox = false`` in your own config.
    """

    event: HookEvent
    command: str
    match: str = ""
    """A regular expression searched in ``<tool> <arguments as JSON>`` (tool
    events) or the event's JSON (others); empty matches everything."""
    timeout_s: Annotated[float, msgspec.Meta(gt=0, le=600)] = 30.0
    sandbox: bool = True
    """False runs the hook outside the sandbox: honoured in your own config only."""

    def __post_init__(self) -> None:
        import re

        if not self.command.strip():
            raise ValueError("command: a hook needs a command")
        try:
            re.compile(self.match)
        except re.error as exc:
            raise ValueError(f"match: not a regular expression: {exc}") from None


class ProjectConfig(_Section):
    """A project's ``.kfd/config.toml``: only its permission rules.

    It comes with the repository, so it only narrows rights until the user
    trusts its exact content (`narrow`, ``kfd trust``).
    """

    permissions: PermissionsConfig = msgspec.field(default_factory=PermissionsConfig)
    hooks: list[HookConfig] = msgspec.field(default_factory=list)
    """``[[hooks]]``: run only once the user trusts the file, always in the sandbox."""


PROJECT_CONFIG = Path(".kfd") / "config.toml"
"""Where a project keeps its config, relative to the project root."""


DEFAULT_TRIGGER_PROMPT = (
    "These files changed in the workspace:\n{changed_files}\n\n"
    "The changes:\n{diff}\n\nReview the changes and say what needs attention."
)


class TriggerConfig(_Section):
    """One ``[[triggers]]`` table: watch files, start a turn when they change.

    ``prompt`` is a template with ``{changed_files}``, ``{diff}`` and
    ``{trigger}``; an empty prompt makes a trigger that only answers
    ``AI!`` / ``AI?`` comments.
    """

    name: str
    workspace: str
    paths: list[str] = msgspec.field(default_factory=lambda: ["**"])
    """Globs relative to the workspace (``src/**/*.py``); ``**`` matches all."""
    ignore: list[str] = msgspec.field(default_factory=list)
    """Globs skipped on top of ``.git``, virtualenvs and git-ignored files."""
    prompt: str = DEFAULT_TRIGGER_PROMPT
    mode: Mode = "plan"
    """Unattended runs change nothing unless the trigger says so."""
    debounce_ms: int = 500
    """Changes closer together than this make one firing."""
    session: str = "new"
    """``"new"``: a new session per firing; else the title of a session to reuse."""
    budget_usd: float | None = None
    """What this trigger's turns may spend in total; it stops firing past it."""
    cooldown_s: float = 30.0
    """Least time between two firings; changes meanwhile wait and fire together."""
    ai_comments: bool = True
    """Comments ending in ``AI!`` (do it) or ``AI?`` (answer it) start a turn."""


class Config(_Section):
    model: ModelConfig = msgspec.field(default_factory=ModelConfig)
    models: dict[str, ModelEntry] = msgspec.field(default_factory=dict)
    """``[models."<name>"]``: prices and windows on top of the built-in model table."""
    budget: BudgetConfig = msgspec.field(default_factory=BudgetConfig)
    ledger: LedgerConfig = msgspec.field(default_factory=LedgerConfig)
    agent: AgentConfig = msgspec.field(default_factory=AgentConfig)
    daemon: DaemonConfig = msgspec.field(default_factory=DaemonConfig)
    telemetry: TelemetryConfig = msgspec.field(default_factory=TelemetryConfig)
    plugins: PluginsConfig = msgspec.field(default_factory=PluginsConfig)
    context: ContextConfig = msgspec.field(default_factory=ContextConfig)
    permissions: PermissionsConfig = msgspec.field(default_factory=PermissionsConfig)
    sandbox: SandboxConfig = msgspec.field(default_factory=SandboxConfig)
    tools: dict[str, dict[str, Any]] = msgspec.field(default_factory=dict)
    """``[tools.<name>]`` tables, handed to the plugin that owns the tool."""
    mcp: dict[str, Any] = msgspec.field(default_factory=dict)
    """``[mcp]`` (``[mcp.servers.<name>]``): MCP servers, handed to the kfd_mcp
    plugin, which validates them (see its docstring)."""
    triggers: list[TriggerConfig] = msgspec.field(default_factory=list)
    """``[[triggers]]``: file-watch triggers the daemon runs."""
    checkpoints: CheckpointsConfig = msgspec.field(default_factory=CheckpointsConfig)
    hooks: list[HookConfig] = msgspec.field(default_factory=list)
    """``[[hooks]]``: shell commands run on the events of every session."""
    notify: dict[str, Any] = msgspec.field(default_factory=dict)
    """``[notify]``: handed to the desktop notifier frontend, which checks it."""
    chat: dict[str, Any] = msgspec.field(default_factory=dict)
    """``[chat]`` (and ``[chat.matrix]``, ``[chat.slack]``): handed to the chat bridge."""
    bus: BusConfig = msgspec.field(default_factory=BusConfig)
    remotes: dict[str, RemoteConfig] = msgspec.field(default_factory=dict)
    """``[remotes.NAME]``: daemons on other hosts, for ``--remote NAME``."""

    def __post_init__(self) -> None:
        for name in self.remotes:
            if not _REMOTE_NAME.fullmatch(name) or name == LOCAL_REMOTE:
                raise ValueError(
                    f"remotes: {name!r} cannot name a remote (letters, digits, '.', '_', '-'; "
                    f"{LOCAL_REMOTE!r} means this machine's daemon)"
                )


LOCAL_REMOTE = "local"
"""``--remote local``: this machine's daemon, over its local sockets (never a remote's name)."""

_REMOTE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


ENV_OVERRIDES: Mapping[str, str] = {
    "KFD_PROVIDER": "provider",
    "KFD_BASE_URL": "base_url",
    "KFD_MODEL": "model",
    "CLOUDFLARE_ACCOUNT_ID": "account_id",
    "KFD_GATEWAY_ID": "gateway_id",
    "KFD_CLOUDFLARE_API_URL": "cloudflare_api_url",
}


def load(path: Path | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Read the config file (absent is fine) and apply the environment."""
    path = path or paths.config_file()
    return parse(read(path), path, environ)


MAX_CONFIG_BYTES = 1024 * 1024
"""A config file larger than this does not load (one is a few KB)."""


def read(path: Path) -> bytes:
    """The bytes of the config file ``path``; empty when it does not exist. Only a
    regular file is read, and never waited on (`kfd.regular`)."""
    try:
        return read_regular(path, MAX_CONFIG_BYTES)
    except FileNotFoundError:
        return b""
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc


def parse(raw: bytes, path: Path, environ: Mapping[str, str] | None = None) -> Config:
    """The config in ``raw`` (the content of ``path``), with the environment on top."""
    environ = os.environ if environ is None else environ
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
    model = model.resolved()
    if not _sets(raw, "model", "context_window"):
        # The window of the model the environment chose, with [models] overrides.
        window = table_window(model.model, config.models)
        model = msgspec.structs.replace(model, context_window=window)
    return msgspec.structs.replace(config, model=model)


def load_project(root: Path) -> ProjectConfig:
    """Read ``root/.kfd/config.toml`` (absent is fine); a mistake names the file and key."""
    path = root / PROJECT_CONFIG
    try:
        raw = read_regular(path, MAX_PROJECT_CONFIG_BYTES)
    except (FileNotFoundError, NotADirectoryError):
        return ProjectConfig()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    return parse_project(raw, path)


def parse_project(raw: bytes, path: Path) -> ProjectConfig:
    """The project config in ``raw`` (the content of ``path``)."""
    try:
        return msgspec.toml.decode(raw, type=ProjectConfig) if raw.strip() else ProjectConfig()
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    except msgspec.DecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc


# -- a project's config, and what of it applies before the user trusts it ---------

MAX_PROJECT_CONFIG_BYTES = 1024 * 1024
"""A project config larger than this does not load (one is a few KB)."""


def digest(content: bytes) -> str:
    """The sha256 (hex) that pins a file's content (`kfd.store.trust`)."""
    return hashlib.sha256(content).hexdigest()


class ProjectFile(NamedTuple):
    """A project's ``.kfd/config.toml``, read once: what is hashed is what is parsed."""

    path: str
    exists: bool = False
    sha256: str = ""
    """The hash of the content read (empty when the file does not exist)."""
    config: ProjectConfig = ProjectConfig()
    problem: str = ""
    """Why the file does not load; then ``config`` is empty."""


def read_project(root: str) -> ProjectFile:
    """Read and parse ``root/.kfd/config.toml`` (blocking: run it in a thread)."""
    path = os.path.join(root, PROJECT_CONFIG)
    try:
        # Never waits: the repository may have made it a FIFO, or a link to one.
        raw = read_regular(path, MAX_PROJECT_CONFIG_BYTES)
    except (FileNotFoundError, NotADirectoryError):
        return ProjectFile(path)
    except OSError as exc:
        return ProjectFile(path, True, problem=f"cannot read {path}: {exc.strerror}")
    sha256 = digest(raw)
    try:
        return ProjectFile(path, True, sha256, parse_project(raw, Path(path)))
    except ConfigError as exc:
        return ProjectFile(path, True, sha256, problem=str(exc))


class Narrowed(NamedTuple):
    """What of a project config applies, and what does not."""

    permissions: PermissionsConfig
    """The rules that apply."""
    hooks: list[HookConfig]
    """The hooks that run (none until the file is trusted; always sandboxed)."""
    ignored: list[str]
    """What does not apply, each with why (shown, never dropped silently)."""
    grants: list[str]
    """What trusting the file applies (whether it is trusted or not)."""


def narrow(project: ProjectConfig, *, trusted: bool) -> Narrowed:
    """What a project config may do: only narrow rights until the user trusts it.

    A repository is untrusted: its ``ask`` and ``deny`` rules apply at once
    (they only take rights away); its ``allow`` rules wait until the user
    trusts the file's exact content. ``defaults = false`` (dropping the
    built-in rules, the secret files' denies among them) is honoured from the
    user's own config only, trusted project or not. Whatever a later project
    key can widen (commands, hooks, servers) belongs here too.
    """
    permissions = project.permissions
    grants = [f"allow {rule}" for rule in permissions.allow]
    grants += [f"hook {hook.event}: {hook.command}" for hook in project.hooks]
    ignored = []
    if not trusted:
        ignored += [f"allow {rule}: not until you trust this file" for rule in permissions.allow]
        ignored += [
            f"hook {hook.event}: {hook.command}: not until you trust this file"
            for hook in project.hooks
        ]
    if not permissions.defaults:
        ignored.append("defaults = false: only your own config.toml can drop the built-in rules")
    applied = msgspec.structs.replace(
        permissions, allow=list(permissions.allow) if trusted else [], defaults=True
    )
    hooks = [msgspec.structs.replace(h, sandbox=True) for h in project.hooks] if trusted else []
    return Narrowed(applied, hooks, ignored, grants)


def table_window(model: str, overrides: Mapping[str, ModelEntry]) -> int:
    """The context window of ``model`` in the model table, with ``overrides``."""
    return ModelCatalog.load(overrides).context_window(model) or FALLBACK_CONTEXT_WINDOW


def _sets(raw: bytes, section: str, key: str) -> bool:
    """Whether the (valid) TOML ``raw`` sets ``[section] key``."""
    if not raw.strip():
        return False
    table = msgspec.toml.decode(raw).get(section)
    return isinstance(table, dict) and key in table


def _name_keys(error: msgspec.ValidationError, raw: bytes) -> str:
    """msgspec writes ``$.tools[...]`` for a table key; name the key instead."""
    message = str(error)
    if "$.tools[...]" in message:
        tables = msgspec.toml.decode(raw).get("tools", {})
        bad = [key for key, value in tables.items() if not isinstance(value, dict)]
        if bad:
            message = message.replace("$.tools[...]", f"$.tools.{bad[0]}")
    if "$.remotes[...]" in message:
        tables = msgspec.toml.decode(raw).get("remotes", {})
        for name, table in tables.items():
            try:
                msgspec.convert(table, RemoteConfig)
            except msgspec.ValidationError:
                message = message.replace("$.remotes[...]", f"$.remotes.{name}")
                break
    return message


def api_key(model: ModelConfig, environ: Mapping[str, str] | None = None) -> str | None:
    """The API key, from the environment only: never from or into a file."""
    environ = os.environ if environ is None else environ
    return environ.get("KFD_API_KEY") or environ.get(api_key_variable(model)) or None


def api_key_variable(model: ModelConfig) -> str:
    """The variable holding the provider's key (``KFD_API_KEY`` wins over it)."""
    return model.api_key_env or PROVIDER_DEFAULTS[model.provider].api_key_env
