"""`kfd.cli.show`: what a command prints is what the text holds, nothing a terminal acts on."""

from __future__ import annotations

import io

from kfd.cli.show import lines_of, one_line, say, say_text


def test_one_line_escapes_controls_format_characters_and_newlines() -> None:
    text = "a\x1b[2K\rb\x08\tc\nd\x7f\x85\x9b\u202e\u2066\u2069\u200b\u200f\ufeff"
    assert one_line(text) == (
        r"a\x1b[2K\rb\x08\tc\nd\x7f\x85\x9b<U+202E><U+2066><U+2069><U+200B><U+200F><U+FEFF>"
    )
    assert one_line("git status  é ✓") == "git status  é ✓"


def test_one_line_shows_escaped_text_as_it_is() -> None:
    once = one_line("x\x1b]52;c;aGk=\x07\n")
    assert one_line(once) == once


def test_say_prints_each_argument_on_one_line_of_its_own() -> None:
    out = io.StringIO()
    say("allow bash", "hook turn_end: make lint\n  allow read(/**)", "", file=out)
    assert out.getvalue() == "allow bash\nhook turn_end: make lint\\n  allow read(/**)\n\n"


def test_say_text_keeps_its_line_breaks_and_with_keep_tabs_its_tabs() -> None:
    out = io.StringIO()
    say_text("+\tx = 1\r\n-\x1b[31mred\n", file=out, keep_tabs=True)
    assert out.getvalue() == "+\tx = 1\n-\\x1b[31mred\n"
    assert lines_of("a\rb\x0cc\nd") == ["a\rb\x0cc", "d"]
    assert lines_of("") == []
