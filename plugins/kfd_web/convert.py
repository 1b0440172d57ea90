"""A downloaded body to text the model can read, by content type.

HTML goes through trafilatura, which keeps the main content (navigation,
scripts, headers and footers dropped) and writes Markdown; a CSS selector
narrows the page first. JSON is pretty-printed, PDF text extracted with pypdf,
plain text kept; anything else binary is refused with a message.
"""

from __future__ import annotations

import io
import json
import logging
import re

import lxml.html
import trafilatura
from lxml.cssselect import CSSSelector
from lxml.etree import ParserError, XPathError
from pypdf import PdfReader
from pypdf.errors import PdfReadError

from kfd.api import ToolError

HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
JSON_TYPES = frozenset({"application/json", "application/ld+json", "application/problem+json"})
PDF_TYPES = frozenset({"application/pdf"})
TEXTUAL_APPLICATION = frozenset(
    {"application/xml", "application/javascript", "application/x-sh", "application/toml"}
)

MAX_PDF_PAGES = 200

# trafilatura logs every page it finds no article in at ERROR: that is an
# expected outcome here (we fall back), not a daemon error.
logging.getLogger("trafilatura").setLevel(logging.CRITICAL)


def to_text(body: bytes, content_type: str, charset: str | None, selector: str = "") -> str:
    """The readable text of a body; raises ToolError for what cannot be read."""
    kind = content_type or _sniff(body)
    if kind in HTML_TYPES:
        return html_to_markdown(_decode(body, charset), selector)
    if selector:
        raise ToolError(f"selector applies to HTML pages only; this is {kind}")
    if kind in JSON_TYPES or kind.endswith("+json"):
        text = _decode(body, charset)
        try:
            return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
        except ValueError:
            return text
    if kind in PDF_TYPES:
        return pdf_to_text(body)
    if kind.startswith("text/") or kind in TEXTUAL_APPLICATION or kind.endswith("+xml"):
        return _decode(body, charset)
    raise ToolError(
        f"the response is {kind or 'binary data'} ({len(body):,} bytes), which cannot be "
        "read as text; fetch an HTML, text, JSON or PDF URL instead"
    )


def html_to_markdown(html: str, selector: str = "") -> str:
    """Main content of a page as Markdown, with its title as a heading."""
    if not html.strip():
        return ""
    title = _title(html)
    if selector:
        html = _select(html, selector)
    elif "<body" not in html.lower():
        html = f"<html><body>{html}</body></html>"  # a bare fragment: give it a document
    text = trafilatura.extract(
        html,
        output_format="markdown",
        include_links=True,
        include_formatting=True,
        include_tables=True,
        include_images=False,
        include_comments=False,
        favor_recall=True,
        with_metadata=False,
    )
    if not text:
        # Not an article (a list, a tiny page): every visible text, scripts dropped.
        text = trafilatura.html2txt(html) or ""
    if title and not selector and not text.lstrip().startswith("#"):
        text = f"# {title}\n\n{text}"
    return text.strip() + "\n"


def _title(html: str) -> str:
    match = re.search(r"<title[^>]*>(.*?)</title>", html, re.IGNORECASE | re.DOTALL)
    return " ".join(match.group(1).split()) if match else ""


def _select(html: str, selector: str) -> str:
    try:
        matcher = CSSSelector(selector)
    except (SyntaxError, XPathError, ValueError) as exc:
        raise ToolError(f"invalid CSS selector {selector!r}: {exc}") from None
    try:
        document = lxml.html.document_fromstring(html)
    except ParserError as exc:
        raise ToolError(f"the page is not parseable HTML: {exc}") from None
    found = matcher(document)
    if not found:
        raise ToolError(f"no element matches the selector {selector!r}; fetch without it")
    parts = "".join(lxml.html.tostring(element, encoding="unicode") for element in found)
    return f"<html><body>{parts}</body></html>"


def pdf_to_text(body: bytes) -> str:
    """The text of a PDF's pages, each headed by its number."""
    try:
        reader = PdfReader(io.BytesIO(body))
        pages = [page.extract_text() or "" for page in reader.pages[:MAX_PDF_PAGES]]
    except (PdfReadError, ValueError, KeyError) as exc:
        raise ToolError(f"the PDF cannot be read: {exc}") from None
    total = len(reader.pages)
    text = "\n\n".join(f"--- page {n} ---\n{page.strip()}" for n, page in enumerate(pages, 1))
    if not text.strip() or not any(page.strip() for page in pages):
        raise ToolError(
            f"the PDF ({total} pages) has no extractable text (scanned images?); "
            "it cannot be read as text"
        )
    if total > MAX_PDF_PAGES:
        text += f"\n\n[… {total - MAX_PDF_PAGES} more pages not shown]"
    return text


def _decode(body: bytes, charset: str | None) -> str:
    try:
        return body.decode(charset or "utf-8", errors="replace")
    except LookupError:  # an unknown charset name
        return body.decode("utf-8", errors="replace")


def _sniff(body: bytes) -> str:
    head = body[:512].lstrip().lower()
    if head.startswith(b"%pdf"):
        return "application/pdf"
    if head.startswith((b"<!doctype html", b"<html")):
        return "text/html"
    if head.startswith((b"{", b"[")):
        return "application/json"
    return "text/plain" if b"\x00" not in head else "application/octet-stream"
