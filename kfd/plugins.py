"""The plugin host: pluggy behind one typed method per hook.

Plugins are found by entry point (group ``kfd``), built-in ones included. A
plugin that fails to import or to answer a hook is reported and skipped: one
broken plugin never keeps the daemon from starting.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Coroutine, Mapping, Sequence
from importlib.metadata import entry_points
from typing import Any, cast

import pluggy

from kfd import api
from kfd.api import AfterToolHook, Policy, Tool, ToolSource
from kfd.protocol import Event

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "kfd"

SHUTDOWN_TIMEOUT_S = 5.0
"""Longest wait for one plugin's `kfd_shutdown` before the daemon exits anyway."""


class PluginHost:
    """Loads plugins and calls their hooks."""

    def __init__(self) -> None:
        self._pm = pluggy.PluginManager(api.PROJECT)
        self._pm.add_hookspecs(api.Hooks)
        self.errors: list[str] = []

    @property
    def names(self) -> list[str]:
        return sorted(name for name, _ in self._pm.list_name_plugin() if name)

    def load_entry_points(self, disabled: list[str] | tuple[str, ...] = ()) -> None:
        """Register every installed plugin except the ``disabled`` names."""
        for entry in entry_points(group=ENTRY_POINT_GROUP):
            if entry.name in disabled:
                log.info("plugin %s disabled by config", entry.name)
                continue
            try:
                plugin = entry.load()
                self.register(plugin, entry.name)
            except Exception as exc:
                message = f"plugin {entry.name} ({entry.value}) failed to load: {exc!r}"
                log.exception(message)
                self.errors.append(message)

    def register(self, plugin: object, name: str) -> None:
        self._pm.register(plugin, name=name)

    def tools(self, config: Mapping[str, Any]) -> list[Tool[Any]]:
        """Every plugin's tools; a duplicate name keeps the first and is reported."""
        tools: dict[str, Tool[Any]] = {}
        for impl in self._pm.hook.kfd_tools.get_hookimpls():
            try:
                offered = cast("Sequence[Tool[Any]]", impl.function(config=config) or ())
            except Exception as exc:
                self._fail(impl.plugin_name, "kfd_tools", exc)
                continue
            for tool in offered:
                if tool.name in tools:
                    self.errors.append(
                        f"plugin {impl.plugin_name}: tool `{tool.name}` already offered; ignored"
                    )
                    continue
                tools[tool.name] = tool
        return sorted(tools.values(), key=lambda t: t.name)

    def policies(self, config: Mapping[str, Any]) -> list[Policy]:
        policies: list[Policy] = []
        for impl in self._pm.hook.kfd_policies.get_hookimpls():
            try:
                offered = cast("Sequence[Policy]", impl.function(config=config) or ())
                policies.extend(offered)
            except Exception as exc:
                self._fail(impl.plugin_name, "kfd_policies", exc)
        return policies

    def tool_sources(self, settings: Mapping[str, Any]) -> list[ToolSource]:
        """Every plugin's tool sources; ``settings`` is the whole config as plain data."""
        sources: list[ToolSource] = []
        for impl in self._pm.hook.kfd_tool_sources.get_hookimpls():
            try:
                sources.extend(cast("Sequence[ToolSource]", impl.function(config=settings) or ()))
            except Exception as exc:
                self._fail(impl.plugin_name, "kfd_tool_sources", exc)
        return sources

    def after_tool_hooks(self, config: Mapping[str, Any]) -> list[AfterToolHook]:
        hooks: list[AfterToolHook] = []
        for impl in self._pm.hook.kfd_after_tool_hooks.get_hookimpls():
            try:
                hooks.extend(cast("Sequence[AfterToolHook]", impl.function(config=config) or ()))
            except Exception as exc:
                self._fail(impl.plugin_name, "kfd_after_tool_hooks", exc)
        return hooks

    def status(self) -> dict[str, Any]:
        """Each plugin's `kfd_status` snapshot, by plugin name; a failure is reported in it."""
        snapshots: dict[str, Any] = {}
        for impl in self._pm.hook.kfd_status.get_hookimpls():
            try:
                snapshot = cast("Mapping[str, Any] | None", impl.function())
            except Exception as exc:
                log.exception("plugin %s failed in kfd_status", impl.plugin_name)
                snapshot = {"error": f"kfd_status failed: {exc!r}"}
            if snapshot is not None:
                snapshots[impl.plugin_name] = dict(snapshot)
        return snapshots

    async def shutdown(self, timeout: float = SHUTDOWN_TIMEOUT_S) -> None:
        """Await every plugin's `kfd_shutdown` coroutine, concurrently and bounded."""
        pending: list[Awaitable[None]] = []
        for impl in self._pm.hook.kfd_shutdown.get_hookimpls():
            try:
                coroutine = cast("Coroutine[Any, Any, None] | None", impl.function())
            except Exception as exc:
                self._fail(impl.plugin_name, "kfd_shutdown", exc)
                continue
            if coroutine is not None:
                pending.append(_bounded(coroutine, timeout))
        for outcome in await asyncio.gather(*pending, return_exceptions=True):
            if isinstance(outcome, BaseException):
                log.error("a plugin failed to shut down: %r", outcome)

    def observe(self, event: Event) -> None:
        for impl in self._pm.hook.kfd_event.get_hookimpls():
            try:
                impl.function(event=event)
            except Exception as exc:
                log.exception("plugin %s failed in kfd_event: %r", impl.plugin_name, exc)

    def _fail(self, plugin: str, hook: str, exc: Exception) -> None:
        message = f"plugin {plugin} failed in {hook}: {exc!r}"
        log.exception(message)
        self.errors.append(message)


async def _bounded(coroutine: Coroutine[Any, Any, None], timeout: float) -> None:
    async with asyncio.timeout(timeout):
        await coroutine
