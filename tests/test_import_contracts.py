"""The import-linter contracts in pyproject.toml name every module they must.

A contract that lists modules explicitly silently stops protecting a module
added later; this test fails instead, naming what to add.
"""

from __future__ import annotations

import pkgutil
import tomllib
from pathlib import Path

import kfd

ROOT = Path(__file__).parents[1]
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
CONTRACTS = {contract["name"]: contract for contract in CONFIG["contracts"]}
KFD = {f"kfd.{m.name}" for m in pkgutil.iter_modules(kfd.__path__) if m.name != "__main__"}
DAEMON = {f"kfd.daemon.{m.name}" for m in pkgutil.iter_modules([str(ROOT / "kfd" / "daemon")])}
PLUGINS = {p.name for p in (ROOT / "plugins").iterdir() if (p / "__init__.py").exists()}
FRONTENDS = {p.name for p in (ROOT / "frontends").iterdir() if (p / "__init__.py").exists()}


def test_every_plugin_and_frontend_is_a_root_package() -> None:
    assert set(CONFIG["root_packages"]) == {"kfd"} | PLUGINS | FRONTENDS


def test_plugins_may_import_only_kfd_api() -> None:
    contract = CONTRACTS["plugins import only kfd.api from kfd"]
    assert set(contract["source_modules"]) == PLUGINS
    assert set(contract["forbidden_modules"]) == KFD - {"kfd.api"}


def test_frontends_may_import_only_the_client_and_the_protocol() -> None:
    if not FRONTENDS:
        return
    contract = CONTRACTS["frontends import only kfd.client and kfd.protocol from kfd"]
    assert set(contract["source_modules"]) == FRONTENDS
    assert set(contract["forbidden_modules"]) == KFD - {"kfd.client", "kfd.protocol"}


def test_kfd_imports_no_plugin_and_no_frontend() -> None:
    contract = CONTRACTS["kfd never imports a plugin or a frontend"]
    assert set(contract["forbidden_modules"]) == PLUGINS | FRONTENDS


def test_only_the_store_speaks_sql() -> None:
    assert set(CONTRACTS["only the store speaks SQL"]["source_modules"]) == KFD - {"kfd.store"}


def test_only_the_gateway_speaks_to_providers() -> None:
    contract = CONTRACTS["only the gateway speaks to model providers"]
    assert set(contract["source_modules"]) == KFD - {"kfd.gateway", "kfd.testing"}


def test_only_the_bus_and_the_client_touch_zeromq() -> None:
    contract = CONTRACTS["only the bus and the client touch ZeroMQ"]
    # The bus's TCP side (CURVE listeners, ZAP) is part of the bus.
    bus = {"kfd.daemon.bus", "kfd.daemon.bus_tcp"}
    expected = (KFD - {"kfd.daemon", "kfd.client", "kfd.testing"}) | (DAEMON - bus)
    assert set(contract["source_modules"]) == expected
