"""Driving the real ``kfd`` REPL in real terminals: tmux panes on a private server.

Each `Terminal` is a tmux session (its own pseudo-terminal) running one
command with the test daemon's environment. A terminal has no event to wait
on, so `Terminal.wait_for` polls the screen with a short interval and a
generous deadline.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

POLL_S = 0.05
DEADLINE_S = 20.0

TMUX_CONF = """
set -g remain-on-exit on
set -g history-limit 5000
set -g default-terminal xterm-256color
set -sg escape-time 0
"""


def require_tmux() -> str:
    tmux = shutil.which("tmux")
    if tmux is None:
        pytest.fail("tmux is needed for the terminal tests (requirements/apt-test.txt)")
    return tmux


class Tmux:
    """A private tmux server; one session per terminal."""

    def __init__(self, directory: Path, env: dict[str, str]) -> None:
        self.binary = require_tmux()
        self.socket = directory / "tmux.sock"
        self.conf = directory / "tmux.conf"
        self.conf.write_text(TMUX_CONF)
        self.env = dict(env, TERM="xterm-256color", LANG="C.UTF-8", LC_ALL="C.UTF-8")
        self.env.pop("TMUX", None)
        self.terminals: list[Terminal] = []

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.binary, "-S", str(self.socket), "-f", str(self.conf), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )

    def open(
        self,
        command: list[str],
        cwd: Path,
        *,
        width: int = 100,
        height: int = 50,
        env: dict[str, str] | None = None,
    ) -> Terminal:
        """A new terminal running ``command`` in ``cwd``."""
        name = f"t{len(self.terminals)}"
        extra = [f"-e{key}={value}" for key, value in (env or {}).items()]
        shell_command = " ".join(_quote(part) for part in command)
        done = self.run(
            "new-session", "-d", "-s", name, "-x", str(width), "-y", str(height),
            "-c", str(cwd), *extra, shell_command,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        terminal = Terminal(self, name)
        self.terminals.append(terminal)
        return terminal

    def kfd(self, *args: str, cwd: Path, **kwargs: object) -> Terminal:
        """A terminal running ``kfd ARGS`` (the REPL unless ARGS name a command)."""
        return self.open([sys.executable, "-m", "kfd", *args], cwd, **kwargs)  # type: ignore[arg-type]

    def close(self) -> None:
        self.run("kill-server")


class Terminal:
    """One pane: type into it, read its screen."""

    def __init__(self, server: Tmux, name: str) -> None:
        self.server = server
        self.name = name

    def type(self, text: str) -> None:
        """Type ``text`` literally (no key names)."""
        self.server.run("send-keys", "-t", self.name, "-l", text)

    def press(self, *keys: str) -> None:
        """Press keys by tmux name: Enter, C-c, C-d, BTab, Escape, Up..."""
        self.server.run("send-keys", "-t", self.name, *keys)

    def send(self, text: str) -> None:
        """Type a line and press Enter."""
        self.type(text)
        self.press("Enter")

    def screen(self, *, history: bool = False) -> str:
        """What the pane shows (with ``history``, also what scrolled off).

        When a pane's command ends, tmux (``remain-on-exit``) scrolls the
        screen up one line to write "Pane is dead" at the bottom: the line
        that scrolled off is still part of what the command showed.
        """
        args = ["capture-pane", "-p", "-J", "-t", self.name]
        if history:
            args += ["-S", "-5000"]
        elif self.dead():
            args += ["-S", "-1"]
        return self.server.run(*args).stdout

    def dead(self) -> bool:
        shown = self.server.run("display-message", "-p", "-t", self.name, "#{pane_dead}")
        return shown.stdout.strip() == "1"

    def wait_for(
        self,
        expected: str | re.Pattern[str] | Callable[[str], bool],
        *,
        timeout: float = DEADLINE_S,
        history: bool = False,
    ) -> str:
        """The screen once it shows ``expected``; fails with the screen after ``timeout``."""
        if isinstance(expected, str):
            text = expected

            def check(screen: str) -> bool:
                return text in screen
        elif isinstance(expected, re.Pattern):
            pattern = expected

            def check(screen: str) -> bool:
                return pattern.search(screen) is not None
        else:
            check = expected
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen(history=history)
            if check(screen):
                return screen
            if time.monotonic() > deadline:
                pytest.fail(f"terminal {self.name} did not show {expected!r}; it shows:\n{screen}")
            time.sleep(POLL_S)

    def exit_status(self) -> int | None:
        """The command's exit status once it ended, else None."""
        shown = self.server.run(
            "display-message", "-p", "-t", self.name,
            "#{pane_dead}:#{pane_dead_status}:#{pane_dead_signal}",
        ).stdout.strip()  # fmt: skip
        dead, status, signal = [*shown.split(":"), "", "", ""][:3]
        if dead != "1":
            return None
        if status:
            return int(status)
        if signal:
            return 128 + int(signal)
        self.last_seen = shown
        return None  # dead, with its status not known yet

    def wait_dead(self, timeout: float = DEADLINE_S) -> None:
        """Until the pane's command has ended (tmux may not say its status: `exit_status`)."""
        deadline = time.monotonic() + timeout
        while not self.dead():
            if time.monotonic() > deadline:
                pytest.fail(f"terminal {self.name} is still running:\n{self.screen()}")
            time.sleep(POLL_S)

    def wait_exit(self, timeout: float = DEADLINE_S) -> int:
        deadline = time.monotonic() + timeout
        while (status := self.exit_status()) is None:
            if time.monotonic() > deadline:
                seen = getattr(self, "last_seen", "")
                pytest.fail(f"terminal {self.name} is still running ({seen}):\n{self.screen()}")
            time.sleep(POLL_S)
        return status


def _quote(part: str) -> str:
    return "'" + part.replace("'", "'\\''") + "'"
