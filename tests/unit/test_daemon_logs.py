"""The daemon's log: JSON lines with the context they were written in, rotated by size."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from kfd import logcontext
from kfd.cli.logs import log_files, parse, render, wanted
from kfd.daemon.logs import start_logging


def test_lines_are_json_with_the_context_redacted_and_rotated(tmp_path: Path) -> None:
    path = tmp_path / "daemon.log"
    stop = start_logging(path, "info", max_bytes=16 * 1024, backups=2)
    log = logging.getLogger("kfd.test")
    try:
        for index in range(400):
            log.info("line %d %s", index, "x" * 100)
    finally:
        stop()
    files = log_files(tmp_path)
    assert [f.name for f in files] == ["daemon.log.2", "daemon.log.1", "daemon.log"]
    assert path.stat().st_size <= 16 * 1024
    records = [json.loads(line) for f in files for line in f.read_text().splitlines()]
    assert records[-1]["message"].startswith("line 399")
    first = json.loads((tmp_path / "daemon.log.2").read_text().splitlines()[0])
    assert set(first) >= {"ts", "level", "logger", "message"}


def test_context_exceptions_and_filters(tmp_path: Path) -> None:
    path = tmp_path / "daemon.log"
    stop = start_logging(path, "info")
    log = logging.getLogger("kfd.test")
    try:
        token = logcontext.SESSION.set("s123")
        turn = logcontext.TURN.set(4)
        log.warning("key sk-ant-abcdefghijklmnopqrstuvwxyz0123 leaked")
        logcontext.TURN.reset(turn)
        logcontext.SESSION.reset(token)
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("it failed")
    finally:
        stop()
    warning, error = (parse(line) for line in path.read_text().splitlines())
    assert (warning["session"], warning["turn"], warning["level"]) == ("s123", 4, "warning")
    assert "sk-ant-abc" not in warning["message"] and "[redacted" in warning["message"]
    assert "session" not in error
    assert "ValueError: boom" in error["exception"]
    assert wanted(warning, "s12", "warning") and not wanted(error, "s12", "debug")
    assert not wanted(warning, None, "error") and wanted(error, None, "error")
    shown = render(warning)
    assert "WARNING" in shown and "session=s123 turn=4" in shown
    assert "ValueError: boom" in render(error)
    assert parse("an old plain line\n")["message"] == "an old plain line"
