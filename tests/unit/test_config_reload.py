"""The user config reloads while the daemon runs; a broken file keeps the last good one."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import msgspec
import pytest

from kfd import config as config_module
from kfd.config import Config
from kfd.daemon.reload import ConfigReloader, changes
from kfd.protocol import ConfigInvalid, ConfigReloaded, Event

ENV: dict[str, str] = {}


def load(text: str) -> Config:
    return config_module.parse(text.encode(), Path("config.toml"), ENV)


def test_changes_name_each_changed_section_and_what_waits_for_a_restart() -> None:
    old = load("")
    new = load(
        '[permissions]\ndeny = ["bash(rm *)"]\n[budget]\nsession_usd = 2.0\n'
        '[model]\nmodel = "gpt-x"\nprovider = "openai"\n[plugins]\ndisable = ["kfd_web"]\n'
        "[daemon]\nlog_level = 'debug'\ncommit_interval_ms = 5.0\n"
        "[tools.web_fetch]\nmax_bytes = 10\n[mcp.servers.x]\ncommand = 'x'\n"
    )
    found = changes(old, new)
    applied = " | ".join(found.applied)
    for section in ("[permissions]", "[budget]", "[model]", "[tools.web_fetch]", "log_level"):
        assert section in applied
    assert "gpt-x" in applied and "a session keeps its own model" in applied
    later = " | ".join(found.not_applied)
    for section in ("[plugins]", "commit_interval_ms", "[mcp]"):
        assert section in later and "restart" in later
    assert changes(new, new) == ([], [])


class Harness:
    """A reloader on a real file, with the apply and publish it calls recorded."""

    def __init__(self, path: Path, text: str | None) -> None:
        self.path = path
        if text is not None:
            self.write(text)
        self.applied: list[tuple[Config, Config]] = []
        self.events: list[Event] = []
        self.failing = False
        self.reloader = ConfigReloader(
            path, load(text or ""), self.apply, self.events.append, environ=ENV
        )

    async def apply(self, old: Config, new: Config) -> None:
        if self.failing:
            raise RuntimeError("the provider refused")
        self.applied.append((old, new))

    def write(self, text: str) -> None:
        self.path.write_text(text)
        # Within one clock tick, a second write must still look new: move the mtime back
        # (also keeps the reloader from waiting for the file to be quiet).
        stat = self.path.stat()
        past = stat.st_mtime_ns - 10**9 - (hash(text) % 1000) * 1000
        os.utime(self.path, ns=(past, past))


async def test_an_edit_applies_and_says_what_changed(tmp_path: Path) -> None:
    h = Harness(tmp_path / "config.toml", "")
    await h.reloader.reload()  # the file as the daemon started with it
    assert h.events == [] and h.applied == []
    assert not h.reloader.stale()
    h.write('[permissions]\nallow = ["bash(make)"]\n')
    assert h.reloader.stale()
    await h.reloader.refresh()
    (event,) = h.events
    assert isinstance(event, ConfigReloaded) and event.applied[0].startswith("[permissions]")
    assert h.reloader.config.permissions.allow == ["bash(make)"]
    assert h.applied[0][1] is h.reloader.config


async def test_a_broken_edit_keeps_the_last_good_config_and_says_so_once(tmp_path: Path) -> None:
    h = Harness(tmp_path / "config.toml", '[permissions]\ndeny = ["bash(rm *)"]\n')
    await h.reloader.reload()
    good = h.reloader.config
    h.write("[permissions\ndeny = [")
    await h.reloader.reload()
    await h.reloader.reload()
    (event,) = h.events
    assert isinstance(event, ConfigInvalid) and "not valid TOML" in event.message
    assert str(h.path) in event.message
    assert h.reloader.config is good and h.reloader.error == event.message
    h.write('[permissions]\nallow = ["bash(ls"]\n')
    await h.reloader.reload()
    assert isinstance(h.events[-1], ConfigInvalid) and "is not a rule" in h.events[-1].message
    assert h.reloader.config is good
    h.write('[permissions]\ndeny = ["bash(rm *)"]\n')  # back as it was: fixed
    await h.reloader.reload()
    assert isinstance(h.events[-1], ConfigReloaded) and h.reloader.error == ""
    assert h.reloader.config == good


async def test_a_deleted_config_keeps_the_last_and_a_missing_one_at_start_is_the_defaults(
    tmp_path: Path,
) -> None:
    h = Harness(tmp_path / "config.toml", '[permissions]\ndeny = ["bash(rm *)"]\n')
    await h.reloader.reload()
    h.path.unlink()
    await h.reloader.reload()
    (event,) = h.events
    assert isinstance(event, ConfigInvalid) and "is gone" in event.message
    assert h.reloader.config.permissions.deny == ["bash(rm *)"]

    never = Harness(tmp_path / "absent.toml", None)
    await never.reloader.reload()
    assert never.events == [] and never.reloader.error == ""
    never.write("[budget]\nsession_usd = 1.0\n")
    await never.reloader.reload()
    assert isinstance(never.events[-1], ConfigReloaded)
    assert never.reloader.config.budget.session_usd == 1.0


async def test_a_config_that_cannot_be_applied_is_not_half_applied(tmp_path: Path) -> None:
    h = Harness(tmp_path / "config.toml", "")
    await h.reloader.reload()
    before = h.reloader.config
    h.failing = True
    h.write('[model]\nprovider = "anthropic"\n')
    await h.reloader.reload()
    (event,) = h.events
    assert isinstance(event, ConfigInvalid) and "the provider refused" in event.message
    assert h.reloader.config is before


async def test_touching_the_file_changes_nothing(tmp_path: Path) -> None:
    h = Harness(tmp_path / "config.toml", "[budget]\ndaily_usd = 3.0\n")
    await h.reloader.reload()
    stat = h.path.stat()
    os.utime(h.path, ns=(stat.st_atime_ns, stat.st_mtime_ns - 7_000_000))
    await h.reloader.reload()
    h.write("# a comment now\n[budget]\ndaily_usd = 3.0\n")
    await h.reloader.reload()
    assert h.events == [] and h.applied == []


async def test_the_watcher_reloads_on_its_own_when_the_file_changes(tmp_path: Path) -> None:
    directory = tmp_path / "kfd"  # created only after the watcher started
    h = Harness(directory / "config.toml", None)
    arrived = asyncio.Event()

    def publish(event: Event) -> None:
        h.events.append(event)
        arrived.set()

    h.reloader._publish = publish  # type: ignore[method-assign]
    stop = asyncio.Event()
    watching = asyncio.create_task(h.reloader.watch(stop))

    async def change_until_told(text: str) -> None:
        # The watcher sets its watches up in the background: write until it notices
        # (each write a new content, or the reloader would rightly ignore it).
        arrived.clear()
        for attempt in range(100):
            directory.mkdir(exist_ok=True)
            (directory / "config.toml").write_text(f"{text}# {attempt}\n")
            try:
                await asyncio.wait_for(arrived.wait(), 0.2)
                return
            except TimeoutError:
                continue
        raise AssertionError("the watcher never noticed the change")

    try:
        await change_until_told("[agent]\nmax_steps = 7\n")
        assert h.reloader.config.agent.max_steps == 7
        await change_until_told("[agent\n")
        assert isinstance(h.events[-1], ConfigInvalid)
        assert h.reloader.config.agent.max_steps == 7
    finally:
        stop.set()
        await asyncio.wait_for(watching, 10)


def test_configs_compare_by_value() -> None:
    assert load("[tools.x]\na = 1\n") == load("[tools.x]\na = 1\n")
    assert msgspec.structs.replace(load(""), triggers=[]) == load("")


@pytest.mark.parametrize("text", ["", "[permissions]\n"])
def test_an_empty_config_is_the_defaults(text: str) -> None:
    assert load(text) == load("")


def test_writing_kfds_own_config_or_state_always_asks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kfd.policy.defaults import protected

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    # Live reload makes an edit of the config take effect at once: never without asking.
    assert protected(str(tmp_path / "config" / "kfd" / "config.toml"))
    assert protected(str(tmp_path / "state" / "kfd" / "kfd.db"))
    assert protected(str(tmp_path / "config" / "other" / "x")) is None
