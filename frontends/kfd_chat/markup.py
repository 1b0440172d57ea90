"""The bridge's Markdown as each service shows it.

Matrix clients render ``formatted_body`` (HTML); the plain ``body`` stays
Markdown for clients that do not. The HTML comes from markdown-it-py
(CommonMark) with raw HTML off, so a model's ``<span>`` or ``<font>`` is shown
as text, never interpreted; images are off (a URL in an answer must not make
every reader's client fetch it); link targets are checked by markdown-it's
own ``validateLink`` (no ``javascript:``).

Slack's ``mrkdwn`` gives ``<``, ``>`` and ``&`` their own meaning (mentions,
links): they are escaped, as Slack's formatting guide asks.
"""

from __future__ import annotations

from functools import cache

from markdown_it import MarkdownIt


@cache
def _markdown() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": False, "linkify": False}).disable("image")


def matrix_html(text: str) -> str:
    """``text`` (CommonMark) as the HTML of a Matrix ``formatted_body``."""
    return str(_markdown().render(text)).strip()


def slack_escape(text: str) -> str:
    """``text`` with Slack's control characters escaped (no mention, no link)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
