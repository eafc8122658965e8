"""Answer -> Telegram HTML messages: every field escaped, quotes in <blockquote>, numbered
citations, and no message over Telegram's 4096 UTF-16 code units.

Long answers are split between citations, never inside one, so every message is HTML that
parses on its own. A citation too long for one message has its quote shortened with "…".
`plain_text` gives the same message without markup, for when Telegram refuses the HTML.
"""

from __future__ import annotations

import html
import re
from bisect import bisect_right
from collections.abc import Callable, Sequence
from itertools import accumulate
from urllib.parse import urlsplit

from bot.answer import Answer, Citation
from bot.texts import say

MAX_MESSAGE_UNITS = 4096
MAX_TITLE_UNITS = 300
MAX_SOURCE_UNITS = 80
ELLIPSIS = "…"
_BLOCK_SEPARATOR = "\n\n"
_LINK = re.compile(r'<a href="([^"]*)">(.*?)</a>', re.DOTALL)
_TAG = re.compile(r"<[^>]+>")


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, the unit of Telegram's limits."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def render_answer(answer: Answer, lang: str, limit: int = MAX_MESSAGE_UNITS) -> list[str]:
    """The messages that carry `answer`, in order, each within `limit` (plain text included)."""
    if not answer.answered or not answer.citations:
        if answer.period is not None:
            return [say(lang, "no_source_dated", period=str(answer.period))]
        return [say(lang, "no_source")]
    blocks: list[str] = []
    if answer.period is not None and not answer.dated:
        blocks.append(say(lang, "other_dates", period=str(answer.period)))
    first_quote = answer.citations[0].quote.strip()
    if answer.answer.strip() and answer.answer.strip() != first_quote:
        blocks.append(_fit(lambda cut: f"<b>{_escape(cut)}</b>", answer.answer.strip(), limit))
    blocks += [render_citation(c, limit) for c in answer.citations]
    return pack_blocks(blocks, limit)


def render_citation(citation: Citation, limit: int = MAX_MESSAGE_UNITS) -> str:
    """One numbered citation: its title (linked when the URL is http(s)), source and date,
    then the quote; the quote is shortened until the whole fits in `limit`."""
    title = _escape(_shorten(citation.title.strip(), MAX_TITLE_UNITS) or "—")
    if citation.url and is_web_url(citation.url):
        title = f'<a href="{html.escape(citation.url, quote=True)}">{title}</a>'
    origin = ", ".join(
        _escape(x)
        for x in (_shorten(citation.source.strip(), MAX_SOURCE_UNITS), citation.date)
        if x
    )
    head = f"<b>{citation.n}.</b> {title}" + (f" — {origin}" if origin else "")
    return _fit(
        lambda cut: f"{head}\n<blockquote>{_escape(cut)}</blockquote>",
        citation.quote.strip(),
        limit,
    )


def pack_blocks(blocks: Sequence[str], limit: int = MAX_MESSAGE_UNITS) -> list[str]:
    """Join blocks into as few messages as fit in `limit`; a message boundary only ever falls
    between two blocks. Each block must fit on its own."""
    messages: list[str] = []
    current = ""
    for block in blocks:
        candidate = current + _BLOCK_SEPARATOR + block if current else block
        if current and message_units(candidate) > limit:
            messages.append(current)
            candidate = block
        current = candidate
    if current:
        messages.append(current)
    return messages


def message_units(message_html: str) -> int:
    """What a message costs against the limit: its plain-text form, which is never shorter
    than the text Telegram shows for the HTML (links add their URL)."""
    return utf16_len(plain_text(message_html))


def plain_text(message_html: str) -> str:
    """The message without markup, links written out as "title (url)"; for HTML this module
    or bot.texts produced (every text field escaped, so every '<' opens a tag)."""
    linked = _LINK.sub(lambda m: f"{m.group(2)} ({m.group(1)})", message_html)
    return html.unescape(_TAG.sub("", linked))


def is_web_url(url: str) -> bool:
    """Only http(s) URLs with a host become links; anything else (javascript:, data:,
    relative paths) is shown as nothing at all."""
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        return False
    parts = urlsplit(url)
    return parts.scheme.lower() in ("http", "https") and bool(parts.hostname)


def _escape(text: str) -> str:
    """Escape text content: &, < and > (quotes only matter inside attributes)."""
    return html.escape(text, quote=False)


def _fit(build: Callable[[str], str], text: str, limit: int) -> str:
    """build(text), with `text` cut at a word boundary (and ended with "…") until it fits."""
    rendered = build(text)
    while text and (excess := message_units(rendered) - limit) > 0:
        text = _shorten(text, utf16_len(text) - excess)
        rendered = build(text)
    return rendered


def _shorten(text: str, max_units: int) -> str:
    """`text` within `max_units` UTF-16 units, "…" included, cut at a space where one is near."""
    if utf16_len(text) <= max_units:
        return text
    budget = max_units - utf16_len(ELLIPSIS)
    ends = list(accumulate(2 if ord(char) > 0xFFFF else 1 for char in text))
    cut = text[: bisect_right(ends, budget)]
    space = cut.rfind(" ")
    if space > len(cut) * 0.8:
        cut = cut[:space]
    return cut.rstrip() + ELLIPSIS if cut.strip() else ""
