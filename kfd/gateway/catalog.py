"""The model table: context windows and prices, kept as data.

The table ships as ``models.toml`` beside this module; ``[models."<name>"]``
tables in the user's config change or add entries, key by key. Everything that
needs a model's window or price asks a `ModelCatalog`: the cost estimate of
each ledger row, the ``usage`` events' context figures, ``kfd models``.

Pure: no I/O beyond reading the packaged file once per process.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated

import msgspec

from kfd.protocol import Usage

_DATA_FILE = "models.toml"
_GATEWAY_PREFIXES = ("workers-ai/", "openai/", "anthropic/")
"""Prefixes a gateway or router puts before a provider's own model name."""


class ModelEntry(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One model of the model table, or a ``[models."<name>"]`` override of it.

    Prices are US dollars per million tokens. An override changes only the
    keys it sets; a name the table does not know adds a model. (A config
    section, `kfd.config.Config.models`, kept here so that the table needs
    nothing of the config.)
    """

    provider: str = ""
    context_window: Annotated[int, msgspec.Meta(gt=0)] | None = None
    input: Annotated[float, msgspec.Meta(ge=0)] | None = None
    cached_input: Annotated[float, msgspec.Meta(ge=0)] | None = None
    """Input read from the provider's prompt cache (default: the input price)."""
    cache_write: Annotated[float, msgspec.Meta(ge=0)] | None = None
    """Input written to the prompt cache (Anthropic; default: the input price)."""
    output: Annotated[float, msgspec.Meta(ge=0)] | None = None
    aliases: list[str] = msgspec.field(default_factory=list)
    """Other names of the same model (without a gateway's prefix, say)."""


class _Table(msgspec.Struct, forbid_unknown_fields=True):
    models: dict[str, ModelEntry]


@functools.cache
def builtin_models() -> Mapping[str, ModelEntry]:
    """The packaged model table (read once)."""
    # Imported here: importlib.resources costs more than the rest of the config
    # loader, and most commands never need the table.
    from importlib import resources

    raw = resources.files(__package__).joinpath(_DATA_FILE).read_bytes()
    return msgspec.toml.decode(raw, type=_Table).models


@dataclass(frozen=True, slots=True)
class Price:
    """US dollars per million tokens."""

    input: float
    cached_input: float
    cache_write: float
    output: float

    def cost(self, usage: Usage) -> float:
        """What ``usage`` costs at these prices.

        ``input_tokens`` counts every prompt token; the cached and
        cache-written ones among them are priced at their own rates.
        """
        special = usage.cached_input_tokens + usage.cache_write_tokens
        plain = max(0, usage.input_tokens - special)
        dollars = (
            plain * self.input
            + usage.cached_input_tokens * self.cached_input
            + usage.cache_write_tokens * self.cache_write
            + usage.output_tokens * self.output
        )
        return dollars / 1_000_000


class ModelCatalog:
    """The built-in model table with the user's overrides on top."""

    def __init__(self, entries: Mapping[str, ModelEntry]) -> None:
        self.entries: dict[str, ModelEntry] = dict(entries)
        self._names: dict[str, str] = {}
        for name, entry in self.entries.items():
            for alias in entry.aliases:
                self._names.setdefault(alias, name)
        for name in self.entries:
            self._names[name] = name

    @classmethod
    def load(cls, overrides: Mapping[str, ModelEntry] | None = None) -> ModelCatalog:
        """The packaged table, each override merged into its entry key by key."""
        entries = dict(builtin_models())
        for name, override in (overrides or {}).items():
            base = entries.get(name)
            if base is None:
                entries[name] = override
                continue
            changed = {
                field: getattr(override, field)
                for field in override.__struct_fields__
                if getattr(override, field) not in (None, "", [])
            }
            entries[name] = msgspec.structs.replace(base, **changed)
        return cls(entries)

    def resolve(self, model: str) -> str | None:
        """The table's name for ``model``, or None when it is not known.

        Tries the name, an alias, the name without a gateway's prefix
        (``openai/gpt-4.1``), then a dated snapshot of a known name
        (``gpt-4.1-2025-04-14``).
        """
        for candidate in _candidates(model):
            if candidate in self._names:
                return self._names[candidate]
        for candidate in _candidates(model):
            # The longest known name the snapshot starts with, then "-".
            prefixes = [n for n in self._names if candidate.startswith(n + "-")]
            if prefixes:
                return self._names[max(prefixes, key=len)]
        return None

    def entry(self, model: str) -> ModelEntry | None:
        """The table entry for ``model`` (see `resolve`)."""
        name = self.resolve(model)
        return self.entries[name] if name is not None else None

    def context_window(self, model: str) -> int | None:
        """The model's context window in tokens, or None when not known."""
        entry = self.entry(model)
        return entry.context_window if entry is not None else None

    def price(self, model: str) -> Price | None:
        """The model's prices, or None when the table has none for it."""
        entry = self.entry(model)
        if entry is None or entry.input is None or entry.output is None:
            return None
        return Price(
            input=entry.input,
            cached_input=entry.cached_input if entry.cached_input is not None else entry.input,
            cache_write=entry.cache_write if entry.cache_write is not None else entry.input,
            output=entry.output,
        )

    def estimate(self, model: str, usage: Usage) -> float | None:
        """The estimated cost of ``usage`` on ``model``; None for an unpriced model."""
        price = self.price(model)
        return price.cost(usage) if price is not None else None


def _candidates(model: str) -> list[str]:
    names = [model]
    for prefix in _GATEWAY_PREFIXES:
        if model.startswith(prefix):
            names.append(model[len(prefix) :])
    return names
