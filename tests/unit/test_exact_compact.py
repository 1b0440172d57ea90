"""How every approval shows a command: exactly, and with long runs of blanks counted."""

from __future__ import annotations

import time

import pytest

from kfd.client.exact import compact, compact_segments, visible

BURIED = "echo hello > greeting.txt #" + "\n" * 6000 + "touch pwned.txt" + "\n" * 6000 + "echo bye"


def test_thousands_of_blank_lines_are_one_counted_marker_and_what_follows_starts_a_line() -> None:
    shown = compact(BURIED)
    assert shown == "echo hello > greeting.txt #⏎×6000\ntouch pwned.txt⏎×6000\necho bye"
    # Not run on after the comment: the buried command is on a line of its own.
    assert shown.split("\n")[1].startswith("touch pwned.txt")


def test_a_long_run_of_spaces_is_counted_so_what_follows_stays_in_view() -> None:
    assert compact("echo hello" + " " * 1300 + "; rm -rf ~/project") == (
        "echo hello␠×1300; rm -rf ~/project"
    )


def test_blank_lines_holding_spaces_and_tabs_are_counted_too() -> None:
    command = "echo a" + "\n \t" * 3000 + "\nrm -rf ~"
    assert compact(command) == "echo a⏎×3001␠×3000\\t×3000\nrm -rf ~"


@pytest.mark.parametrize(
    "text",
    [
        "ls -la",
        "make build\nmake test",
        "def f():\n\n    return 1",  # one blank line, indentation: as they are
        "x = 1\n\ny = 2",  # two line breaks in a row
        "        if deep:",  # indentation of 8 spaces
        "echo ========",  # a repeated character that shows
    ],
)
def test_ordinary_commands_show_as_they_are(text: str) -> None:
    assert compact(text) == visible(text) == text


def test_hidden_characters_are_escaped_and_a_run_of_one_is_counted() -> None:
    assert compact("ls\r\x1b[2Krm -rf /") == "ls\\r\\x1b[2Krm -rf /"
    assert compact("a" + "\u200b" * 500 + "b") == "a<U+200B>×500b"
    assert compact("x" + "\t" * 40 + "y") == "x\\t×40y"
    assert compact("x\t\ty") == "x\\t\\ty"  # a few stay as they are


def test_one_line_shows_every_line_break_as_a_marker() -> None:
    assert compact("a\nb", one_line=True) == "a⏎b"
    assert compact(BURIED, one_line=True) == (
        "echo hello > greeting.txt #⏎×6000touch pwned.txt⏎×6000echo bye"
    )
    assert "\n" not in compact("x\n\ny\n", one_line=True)


def test_markers_and_escapes_are_marked_for_a_display_to_set_apart() -> None:
    parts = list(compact_segments("a\x1b" + "\n" * 5 + "b" + " " * 20))
    assert parts == [
        ("a", False),
        ("\\x1b", True),
        ("⏎×5", True),
        ("\n", False),
        ("b", False),
        ("␠×20", True),
    ]


def test_a_megabyte_of_blanks_renders_in_a_moment_and_small() -> None:
    command = ("x" + "\n" * 50 + " " * 50) * 10_000
    started = time.monotonic()
    shown = compact(command)
    assert time.monotonic() - started < 2
    assert len(shown) < len(command) / 5
