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
from bot.corroboration import Corroboration
from bot.texts import Html, say

MAX_MESSAGE_UNITS = 4096
MAX_TITLE_UNITS = 300
MAX_SOURCE_UNITS = 80
# A story line names the outlets of at most this many dispatches run more than once, and
# at most this many outlets of each.
MAX_DISPATCHES_NAMED = 2
MAX_COPIES_NAMED = 3
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
        if answer.followup is not None:
            return [say(lang, "followup_nothing")]
        if answer.period is not None:
            return [say(lang, "no_source_dated", period=str(answer.period))]
        return [say(lang, "no_source")]
    blocks: list[str] = []
    if answer.followup is not None and not answer.in_story:
        blocks.append(say(lang, "followup_elsewhere"))
    if answer.period is not None and not answer.dated:
        blocks.append(say(lang, "other_dates", period=str(answer.period)))
    first_quote = answer.citations[0].quote.strip()
    if answer.answer.strip() and answer.answer.strip() != first_quote:
        blocks.append(_fit(lambda cut: f"<b>{_escape(cut)}</b>", answer.answer.strip(), limit))
    first_of_story: dict[frozenset[str], int] = {}  # a story told by several citations
    first_of_article: dict[str, int] = {}  # an article quoted again (bot/answer.runners_up)
    for c in answer.citations:
        article = first_of_article.setdefault(c.article_id, c.n)
        if article != c.n:
            blocks.append(render_more_of(c, article, limit, lang))
            continue
        story = frozenset(c.story.article_ids) if c.story is not None else frozenset()
        same = first_of_story.setdefault(story, c.n) if story else c.n
        blocks.append(render_citation(c, limit, lang, same_story_as=same if same != c.n else None))
    return pack_blocks(blocks, limit)


def render_citation(
    citation: Citation,
    limit: int = MAX_MESSAGE_UNITS,
    lang: str = "en",
    same_story_as: int | None = None,
) -> str:
    """One numbered citation: its title (linked when the URL is http(s)), source and date,
    then the quote, then its story's corroboration (`render_story`; "the same as N" when
    citation N already told it); the quote is shortened until the whole fits in `limit`."""
    title = _escape(_shorten(citation.title.strip(), MAX_TITLE_UNITS) or "—")
    if citation.url and is_web_url(citation.url):
        title = f'<a href="{html.escape(citation.url, quote=True)}">{title}</a>'
    origin = ", ".join(
        _escape(x)
        for x in (_shorten(citation.source.strip(), MAX_SOURCE_UNITS), citation.date)
        if x
    )
    head = f"<b>{citation.n}.</b> {title}" + (f" — {origin}" if origin else "")
    story = ""
    if same_story_as is not None:
        story = f"\n<i>{say(lang, 'story_same', n=same_story_as)}</i>"
    elif citation.story is not None:
        story = f"\n<i>{render_story(citation.story, lang)}</i>"
    return _fit(
        lambda cut: f"{head}\n<blockquote>{_escape(cut)}</blockquote>{story}",
        citation.quote.strip(),
        limit,
    )


def render_more_of(citation: Citation, first: int, limit: int, lang: str) -> str:
    """A further quote of the article citation `first` already named: its number, "same
    article as N" and the quote (title, source, date and story are said once, above)."""
    head = f"<b>{citation.n}.</b> <i>{say(lang, 'same_article', n=first)}</i>"
    return _fit(
        lambda cut: f"{head}\n<blockquote>{_escape(cut)}</blockquote>",
        citation.quote.strip(),
        limit,
    )


def render_story(story: Corroboration, lang: str) -> str:
    """One line on a citation's story: "Story: 3 sources, 2 languages, 12–14 Sept 2023",
    then the outlets that ran copies of one dispatch (HTML, every name escaped)."""
    count = len(story.sources)
    languages = max(1, len(story.languages))
    parts: list[str] = [
        say(lang, "story_sources_one" if count == 1 else "story_sources_many", count=count),
        say(lang, "story_languages_one" if languages == 1 else "story_languages_many",
            count=languages),
    ]  # fmt: skip
    dates = date_span(story.first_date, story.last_date, lang)
    if dates:
        parts.append(_escape(dates))
    summary = ", ".join(parts)
    for dispatch in story.copies[:MAX_DISPATCHES_NAMED]:
        names = ", ".join(
            _shorten(s, MAX_SOURCE_UNITS) for s in dispatch.sources[:MAX_COPIES_NAMED]
        )
        if len(dispatch.sources) == 1:  # one outlet ran it more than once
            names += f" ×{len(dispatch.article_ids)}"
        elif len(dispatch.sources) > MAX_COPIES_NAMED:
            names += ", …"
        summary += " · " + say(lang, "story_copies", names=names)
    return say(lang, "story", summary=Html(summary))


def date_span(first: str | None, last: str | None, lang: str) -> str:
    """Publication dates as a reader says them: "12 Sept 2023", "12–14 Sept 2023",
    "30 Aug – 2 Sept 2023", "Oct 2013" (each as precise as the articles give it)."""
    if not first or not last:
        return ""
    months = say(lang, "months").split()
    a, b = _date_parts(first), _date_parts(last)
    if a is None or b is None:
        return first if first == last else f"{first} – {last}"

    def written(year: int, month: int | None, day: int | None, with_year: bool = True) -> str:
        text = " ".join(
            str(x) for x in (day, months[month - 1] if month else None) if x is not None
        )
        return f"{text} {year}".strip() if with_year else text

    if a == b or last.startswith(first):  # "2024-07" and "2024-07-11": July 2024
        return written(*a)
    if a[2] and b[2] and a[:2] == b[:2]:  # one month: "12–14 Sept 2023"
        return f"{a[2]}–{written(*b)}"
    if a[2] and b[2] and a[0] == b[0]:  # one year: "30 Aug – 2 Sept 2023"
        return f"{written(*a, with_year=False)} – {written(*b)}"
    return f"{written(*a)} – {written(*b)}"


def _date_parts(date: str) -> tuple[int, int | None, int | None] | None:
    """(year, month, day) of an ISO date as precise as it is written, or None."""
    match = re.match(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?", date)
    if match is None:
        return None
    year, month, day = (int(g) if g else None for g in match.groups())
    assert year is not None
    if month is not None and not 1 <= month <= 12:
        return None
    return year, month, day


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
