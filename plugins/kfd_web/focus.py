"""Keeping the parts of a page that matter for what the model asked.

``web_fetch(prompt=...)`` keeps the sections of a page (split at its Markdown
headings, or into paragraphs when it has none) that share the most words with
the prompt (each word weighted by how rare it is across the page; a word
repeated counts little more than once), in page order.
No model is asked: a plugin has no model to ask, and a lexical cut is
predictable, instant and free.
"""

from __future__ import annotations

import math
import re

_WORD = re.compile(r"[^\W_]{3,}")
_HEADING = re.compile(r"^#{1,6} ", re.MULTILINE)
_STOP_WORDS = """the and for with that this from have what when where which how does into
about your you are was were will can not but all any use using page"""
_STOP = frozenset(_STOP_WORDS.split())
PARAGRAPHS_PER_CHUNK_CHARS = 1500
RELEVANT_FRACTION = 0.5
"""A section is kept when it scores at least this share of the best one."""


def terms_of(prompt: str) -> list[str]:
    """The significant words of ``prompt``, lower-cased, once each."""
    seen: list[str] = []
    for word in _WORD.findall(prompt.lower()):
        if word not in _STOP and word not in seen:
            seen.append(word)
    return seen


def sections_of(text: str) -> list[str]:
    """The page cut at its headings, or into chunks of paragraphs."""
    starts = [match.start() for match in _HEADING.finditer(text)]
    if starts:
        bounds = [0, *starts] if starts[0] > 0 else starts
        return [text[a:b] for a, b in zip(bounds, [*bounds[1:], len(text)], strict=True)]
    chunks: list[str] = []
    current = ""
    for paragraph in re.split(r"\n\s*\n", text):
        if current and len(current) + len(paragraph) > PARAGRAPHS_PER_CHUNK_CHARS:
            chunks.append(current)
            current = ""
        current += paragraph + "\n\n"
    if current.strip():
        chunks.append(current)
    return chunks


def focus(text: str, prompt: str, budget: int) -> str:
    """The sections of ``text`` most relevant to ``prompt``, within ``budget`` characters."""
    terms = terms_of(prompt)
    sections = sections_of(text)
    if not terms or len(sections) < 2:
        return text
    words = [_WORD.findall(section.lower()) for section in sections]
    present = {term: sum(1 for w in words if term in w) for term in terms}
    scores = []
    for index, section_words in enumerate(words):
        score = 0.0
        for term in terms:
            count = section_words.count(term)
            if count:
                # Covering more of the prompt counts more than repeating one word.
                rarity = math.log(len(sections) / present[term]) + 1
                score += rarity * (1 + 0.25 * math.log(count))
        scores.append((score, index))
    best = max(score for score, _ in scores)
    # Sections that only share a word common to the whole page trail far behind.
    ranked = [
        index
        for score, index in sorted(scores, key=lambda s: (-s[0], s[1]))
        if score > 0 and score >= best * RELEVANT_FRACTION
    ]
    if not ranked:
        return (
            f"[nothing on the page matched {' '.join(terms)!r}; the whole page follows]\n\n{text}"
        )
    kept: list[int] = []
    used = 0
    for index in ranked:
        if kept and used + len(sections[index]) > budget:
            continue
        kept.append(index)
        used += len(sections[index])
    kept.sort()
    note = (
        f"[kept {len(kept)} of {len(sections)} sections matching {' '.join(terms)!r}; "
        "fetch without prompt for the whole page]\n\n"
    )
    return note + "".join(sections[index] for index in kept).strip() + "\n"
