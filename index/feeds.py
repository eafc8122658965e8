"""RSS/Atom feeds and article pages -> Articles: feed settings, parsing (feedparser),
page extraction (trafilatura), and one poll of one feed."""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlsplit

import feedparser
import httpx
import trafilatura
from trafilatura.settings import Document

from index.articles import (
    Article,
    ArticleError,
    article_id,
    article_problem,
    canonical_url,
    clean_text,
    guess_language,
    normalise_date,
    paragraphs_of,
    title_from_text,
    with_language,
)
from index.fetch import FetchError, FetchResult, fetch, make_client

log = logging.getLogger(__name__)

MAX_PAGES_PER_POLL = 30
PAGE_MAX_BYTES = 3_000_000
PAGE_BUDGET_S = 60.0
FULL_TEXT_MIN_WORDS = 150
PAGE_MIN_CHARS = 100


class FeedError(FetchError):
    """The response came, but it is not a usable RSS or Atom feed."""


@dataclass(frozen=True)
class FeedSource:
    """A feed to follow: its URL, and optionally the name and language to give its articles
    (the language is kept as its primary subtag, "pt-BR" -> "pt", as articles carry it)."""

    url: str
    source: str | None = None
    lang: str | None = None

    def __post_init__(self) -> None:
        url = clean_text(self.url).strip() if isinstance(self.url, str) else self.url
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{self.url!r} is not an http(s) URL")
        lang = _primary_lang(self.lang) if self.lang else None
        if self.lang and not lang:
            raise ValueError(f"{self.lang!r} is not a language code like 'en' or 'pt-BR'")
        object.__setattr__(self, "url", url)
        object.__setattr__(self, "source", clean_text(self.source or "").strip() or None)
        object.__setattr__(self, "lang", lang)


def parse_feed_settings(value: str | list[Any]) -> list[FeedSource]:
    """NEWSBOT_FEEDS: a JSON list of URLs, or of objects {url, source?, lang?}."""
    if isinstance(value, str):
        if not value.strip():
            return []
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(
                f"feeds: not valid JSON ({exc.msg} at column {exc.colno}); expected a list of "
                'URLs or of objects like {"url": "https://…", "source": "…", "lang": "en"}'
            ) from None
    if not isinstance(value, list):
        raise ValueError(f"feeds: expected a JSON list, got {_json_kind(value)}")
    sources: list[FeedSource] = []
    seen: dict[str, int] = {}
    for number, entry in enumerate(value, start=1):
        try:
            source = _feed_source(entry)
        except ValueError as exc:
            raise ValueError(f"feeds: item {number}: {exc}") from None
        key = canonical_url(source.url)
        if key in seen:
            raise ValueError(f"feeds: item {number} repeats item {seen[key]} ({source.url})")
        seen[key] = number
        sources.append(source)
    return sources


def _feed_source(entry: Any) -> FeedSource:
    if isinstance(entry, FeedSource):
        return entry
    if isinstance(entry, str):
        return FeedSource(entry)
    if not isinstance(entry, dict):
        raise ValueError(f"expected a URL or an object with 'url', got {_json_kind(entry)}")
    unknown = sorted(set(entry) - {"url", "source", "lang"})
    if unknown:
        raise ValueError(f"unknown key {unknown[0]!r} (expected url, source, lang)")
    if "url" not in entry:
        raise ValueError("'url' is missing")
    for key in ("url", "source", "lang"):
        if entry.get(key) is not None and not isinstance(entry[key], str):
            raise ValueError(f"'{key}' must be a string, got {_json_kind(entry[key])}")
    return FeedSource(entry["url"], entry.get("source"), entry.get("lang"))


def _json_kind(value: Any) -> str:
    kinds = {dict: "an object", list: "a list", str: "a string", bool: "true/false"}
    if value is None:
        return "null"
    return kinds.get(type(value), "a number" if isinstance(value, int | float) else "a value")


@dataclass(frozen=True)
class FeedItem:
    """One feed entry, as text. `content` is set only when the feed carries the whole
    article; otherwise the page has to be fetched for it."""

    guid: str | None
    link: str | None
    title: str
    summary: str
    content: str | None
    date: str | None
    author: str | None
    feed_title: str
    source: str
    lang: str | None


@dataclass(frozen=True)
class ParsedFeed:
    """A parsed feed; `warning` says why it was malformed when its items were still usable."""

    title: str
    link: str | None
    lang: str | None
    items: list[FeedItem]
    warning: str | None = None


def parse_feed(content: bytes, source: FeedSource, base_url: str | None = None) -> ParsedFeed:
    """Parse RSS 0.9x/1.0/2.0 or Atom bytes; raise FeedError when there is no feed in them.
    The encoding comes from the document (BOM, XML declaration), never from HTTP headers."""
    if not content.strip():
        raise FeedError("not a feed: the response is empty")
    try:
        parsed = feedparser.parse(
            _valid_char_refs(content),
            response_headers={
                "content-location": base_url or source.url,
                "content-type": "application/xml",
            },
        )
    except Exception as exc:  # feedparser's loose parser crashed on hostile markup
        log.exception("feed %s: feedparser failed", source.url)
        raise FeedError(f"not a feed: the parser failed on it ({type(exc).__name__})") from None
    problem = _bozo_reason(parsed.get("bozo_exception")) if parsed.get("bozo") else None
    if not parsed.entries and (problem or not parsed.get("version")):
        raise FeedError(f"not a feed: {_not_a_feed(content, problem)}")
    if problem:
        log.warning(
            "feed %s is malformed (%s) but has %d item(s); using them",
            source.url,
            problem,
            len(parsed.entries),
        )
    meta = parsed.feed
    title = _one_line(_detail_text(meta, "title"))
    link = meta.get("link") or None
    name = source.source or title or (urlsplit(base_url or source.url).hostname or "")
    items = [
        _item(entry, title, name, _primary_lang(entry.get("language"))) for entry in parsed.entries
    ]
    feed_lang = source.lang or _primary_lang(meta.get("language"))
    if not feed_lang:  # one vote over the whole feed beats a guess on each short item
        feed_lang = guess_language(" ".join(f"{i.title}. {i.summary}" for i in items))
    items = [replace(i, lang=source.lang or i.lang or feed_lang) for i in items]
    return ParsedFeed(title=title, link=link, lang=feed_lang, items=items, warning=problem)


_CHAR_REF = re.compile(rb"&#(?:[xX]([0-9a-fA-F]+)|([0-9]+));")


def _valid_char_refs(content: bytes) -> bytes:
    """Character references to no character (`&#xD800;`, a lone surrogate, or past
    U+10FFFF) become `&#xFFFD;`: feedparser's fallback parser raises on them, losing the
    feed and the poll with it."""
    if b"&#" not in content:
        return content

    def valid(match: re.Match[bytes]) -> bytes:
        hexa, decimal = match.groups()
        digits = (hexa or decimal).lstrip(b"0") or b"0"
        code = int(digits, 16 if hexa else 10) if len(digits) <= 8 else -1
        if 0xD800 <= code <= 0xDFFF or not 0 <= code <= 0x10FFFF:
            return b"&#xFFFD;"
        return match.group()

    return _CHAR_REF.sub(valid, content)


def _bozo_reason(exc: Any) -> str:
    if exc is None:
        return "malformed"
    if hasattr(exc, "getMessage") and hasattr(exc, "getLineNumber"):
        return f"{exc.getMessage()} at line {exc.getLineNumber()}"
    return str(exc) or type(exc).__name__


def _not_a_feed(content: bytes, problem: str | None) -> str:
    head = content[:2048].lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html")) or b"<html" in head:
        return "an HTML page, not RSS or Atom"
    if problem:
        return f"malformed XML ({problem})"
    return "XML without RSS or Atom items"


def _item(entry: Any, feed_title: str, source: str, lang: str | None) -> FeedItem:
    summary, _ = _without_boilerplate(_detail_text(entry, "summary"))
    contents = [part.get("value", "") for part in entry.get("content", [])]
    contents.append(entry.get("yandex_full-text") or "")
    content, teaser = max(
        (_without_boilerplate(html_to_text(c)) for c in contents), key=lambda t: len(t[0])
    )
    full = content if len(content.split()) >= FULL_TEXT_MIN_WORDS and not teaser else None
    if full is None and len(content) > len(summary):
        summary = content
    guid = entry.get("id") or None
    return FeedItem(
        guid=guid,
        link=_http_link(entry.get("feedburner_origlink") or entry.get("link") or guid),
        title=_one_line(_detail_text(entry, "title")),
        summary=summary,
        content=full,
        date=entry_date(entry),
        author=(entry.get("author") or "").strip() or None,
        feed_title=feed_title,
        source=source,
        lang=lang,
    )


def _http_link(value: str | None) -> str | None:
    if not value or urlsplit(value).scheme.lower() not in ("http", "https"):
        return None
    return canonical_url(value)


def _detail_text(node: Any, key: str) -> str:
    """A feedparser text construct as plain text (HTML stripped unless it is text/plain)."""
    value = node.get(key) or ""
    kind = (node.get(f"{key}_detail") or {}).get("type", "text/html")
    return "\n\n".join(paragraphs_of(value)) if kind == "text/plain" else html_to_text(value)


def _primary_lang(code: str | None) -> str | None:
    match = re.match(r"\s*([A-Za-z]{2,3})(?:[-_][A-Za-z0-9]+)*\s*$", code or "")
    return match.group(1).lower() if match else None


def _one_line(text: str) -> str:
    return " ".join(text.split())


_MONTHS = {
    "jan": 1, "janv": 1, "ene": 1, "gen": 1, "feb": 2, "fev": 2, "fév": 2, "mar": 3,
    "mär": 3, "mrz": 3, "apr": 4, "avr": 4, "abr": 4, "may": 5, "mai": 5, "mag": 5,
    "jun": 6, "juin": 6, "giu": 6, "jul": 7, "juil": 7, "lug": 7, "aug": 8, "aoû": 8,
    "aou": 8, "ago": 8, "sep": 9, "set": 9, "oct": 10, "okt": 10, "ott": 10, "out": 10,
    "nov": 11, "dec": 12, "déc": 12, "dez": 12, "dic": 12,
}  # fmt: skip
_DAY_MONTH_YEAR = re.compile(
    r"\b(\d{1,2})\.?\s+(?:de\s+)?([^\W\d_]{3,})\.?,?\s+(?:de\s+)?(\d{4})\b"
)


def _plausible(date: str) -> bool:
    """A feed item is not published in the far past or more than two days ahead (a junk
    date such as "99999…" read as 9999-12-01 would pin it to the top of every list)."""
    latest = time.strftime("%Y-%m-%d", time.gmtime(time.time() + 2 * 86400))
    return "1900" <= date[:10] <= latest


def entry_date(entry: Any) -> str | None:
    """YYYY-MM-DD as the publisher wrote it (its own time zone); feedparser's UTC reading
    next; last, day-month-year with month names in a few languages ("Seg, 24 Set 2018")."""
    raw = [entry.get(key) for key in ("published", "updated", "created") if entry.get(key)]
    for value in raw:
        try:
            if (date := normalise_date(value)) and _plausible(date):
                return date
        except ArticleError:
            pass
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        if entry.get(key) and _plausible(date := time.strftime("%Y-%m-%d", entry[key])):
            return date
    for value in raw:
        match = _DAY_MONTH_YEAR.search(value)
        if match:
            word = match.group(2).lower()
            month = _MONTHS.get(word[:4]) or _MONTHS.get(word[:3])
            day = int(match.group(1))
            if month and 1 <= day <= 31:
                return f"{match.group(3)}-{month:02d}-{day:02d}"
    return None


_BLOCK_TAGS = {
    "p", "div", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "tr",
    "table", "section", "article", "header", "footer", "pre", "dd", "dt", "hr", "aside",
}  # fmt: skip
_SKIP_TAGS = {"script", "style", "figure", "noscript", "iframe", "svg", "template", "object"}
_READ_MORE = re.compile(
    r"^(continue reading|read more|read the full|lire la suite|weiterlesen|leia mais|"
    r"seguir leyendo|leggi tutto)\b",
    re.IGNORECASE,
)
_BOILERPLATE = re.compile(r"^(related|see also|lire aussi|mehr zum thema)\s*:", re.IGNORECASE)


class _TextCollector(HTMLParser):
    """Collects text, turning block elements into paragraph breaks and <br> into line breaks."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP_TAGS:
            self.skipping += 1
        elif tag == "br":
            self.parts.append("\n")
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS:
            self.skipping = max(0, self.skipping - 1)
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.parts.append(re.sub(r"\s+", " ", data))


def html_to_text(html: str) -> str:
    """HTML fragment -> plain text, paragraphs separated by blank lines."""
    if "<" not in html and "&" not in html:
        return "\n\n".join(paragraphs_of(html))
    collector = _TextCollector()
    collector.feed(html)
    collector.close()
    return "\n\n".join(paragraphs_of("".join(collector.parts)))


def _without_boilerplate(text: str) -> tuple[str, bool]:
    """Drop "Continue reading…" and "Related:" paragraphs; say whether the text is a teaser
    (a read-more link, or a last paragraph cut short with "…"), not the whole article."""
    kept: list[str] = []
    teaser = False
    for paragraph in paragraphs_of(text):
        short = len(paragraph.split()) <= 12
        if short and _READ_MORE.match(paragraph):
            teaser = True
        elif not (short and _BOILERPLATE.match(paragraph)):
            kept.append(paragraph)
    if kept and kept[-1].endswith(("…", "...", "[…]", "[...]")):
        teaser = True
    return "\n\n".join(kept), teaser


def extract_article(
    html: bytes | str, url: str, source: FeedSource | None = None
) -> Article | None:
    """The article on a web page (title, date, main text, language), or None when there is
    no article text (less than PAGE_MIN_CHARS: a menu or a cookie notice is not an article)."""
    doc = trafilatura.bare_extraction(
        html,
        url=url,
        with_metadata=True,
        include_comments=False,
        include_tables=False,
        favor_precision=True,
        date_extraction_params={"extensive_search": False, "original_date": True},
    )
    if not isinstance(doc, Document) or not doc.text:
        return None
    title = _one_line(doc.title or "")
    lines = [line.strip() for line in doc.text.splitlines() if line.strip()]
    if lines and title and lines[0] == title:
        lines.pop(0)
    text = "\n\n".join(lines)
    if len(text) < PAGE_MIN_CHARS:
        return None
    try:
        date = normalise_date(doc.date)
    except ArticleError:
        date = None
    name = (source.source if source else None) or doc.sitename or urlsplit(url).hostname or ""
    lang = (source.lang if source else None) or _page_lang(html)
    return with_language(
        Article(
            title=title or title_from_text(text),
            text=text,
            date=date,
            source=_one_line(name),
            url=canonical_url(url),
            lang=lang,
        )
    )


def _page_lang(html: bytes | str) -> str | None:
    head = html[:4096].decode("latin-1") if isinstance(html, bytes) else html[:4096]
    match = re.search(r"<html\b[^>]*?\blang\s*=\s*[\"']?([A-Za-z]{2,3})\b", head, re.IGNORECASE)
    return match.group(1).lower() if match else None


def item_to_article(item: FeedItem, page_article: Article | None = None) -> Article:
    """The Article for a feed item: the feed's full text, else the page's, else the summary
    (marked `summary_only`). Date, link and source come from the feed first."""
    page = page_article
    if item.content:
        text, summary_only = item.content, False
    elif page is not None and len(page.text) >= len(item.summary):
        text, summary_only = page.text, False
    else:
        text, summary_only = item.summary or item.title, True
    if not text:
        raise FeedError(f"item {item.link or item.guid or '?'} has neither title nor text")
    return with_language(
        Article(
            title=item.title or (page.title if page else "") or title_from_text(text),
            text=text,
            date=item.date or (page.date if page else None),
            source=item.source,
            url=item.link or (page.url if page else None),
            lang=item.lang or (page.lang if page else None),
            summary_only=summary_only,
        )
    )


@dataclass(frozen=True)
class FeedState:
    """What the caller keeps between polls of one feed, for conditional GET."""

    etag: str | None = None
    last_modified: str | None = None


@dataclass
class FeedPoll:
    """The outcome of one poll of one feed. `error` is set when the feed itself failed
    (nothing was read); `errors` lists items or pages that failed while the rest went in."""

    source: FeedSource
    state: FeedState
    articles: list[Article] = field(default_factory=list)
    not_modified: bool = False
    error: str | None = None
    warning: str | None = None
    errors: list[str] = field(default_factory=list)
    title: str | None = None
    skipped: int = 0
    pages_fetched: int = 0

    @property
    def ok(self) -> bool:
        return self.error is None


def collect_feed(
    source: FeedSource,
    state: FeedState | None = None,
    *,
    fetch_pages: bool = True,
    client: httpx.Client | None = None,
    allow_private: bool = False,
    known_ids: Collection[str] = frozenset(),
    max_pages: int = MAX_PAGES_PER_POLL,
    timeout: float = 10.0,
    published_since: str | None = None,
) -> FeedPoll:
    """Poll one feed: conditional fetch, parse, full text for each new item (from the feed,
    else its page). Never raises for a bad feed or item: they are reported in the FeedPoll.
    Items whose article id is in `known_ids`, or dated before `published_since` (ISO), are
    skipped before any page is fetched."""
    state = state or FeedState()
    http = client or make_client(allow_private=allow_private, timeout=timeout)
    try:
        try:
            result = fetch(
                source.url,
                etag=state.etag,
                last_modified=state.last_modified,
                timeout=timeout,
                allow_private=allow_private,
                client=http,
            )
            if result.not_modified:
                return FeedPoll(
                    source,
                    FeedState(
                        result.etag or state.etag, result.last_modified or state.last_modified
                    ),
                    not_modified=True,
                )
            feed = parse_feed(result.content, source, result.final_url)
        except FetchError as exc:
            log.warning("feed %s: %s", source.url, exc)
            return FeedPoll(source, state, error=str(exc))
        poll = FeedPoll(
            source,
            FeedState(result.etag, result.last_modified),
            title=feed.title,
            warning=feed.warning,
        )
        pages_left = max_pages if fetch_pages else 0
        page_deadline = time.monotonic() + PAGE_BUDGET_S
        for item in feed.items:
            if article_id(item.link, item.source, item.title, item.date) in known_ids or (
                published_since and item.date and item.date < published_since
            ):
                poll.skipped += 1
                continue
            try:
                page = None
                link = item.link if not item.content and pages_left > 0 else None
                if link and time.monotonic() < page_deadline:
                    pages_left -= 1
                    page = _page_article(link, source, http, allow_private, timeout, poll)
                article = item_to_article(item, page)
                if problem := article_problem(article):
                    poll.errors.append(f"{item.link or item.title}: {problem}")
                    continue
                poll.articles.append(article)
            except FeedError as exc:
                log.warning("feed %s: %s", source.url, exc)
                poll.errors.append(str(exc))
            except Exception as exc:  # one bad item must not cost the feed its other items
                log.exception("feed %s: item %s failed", source.url, item.link or item.title)
                poll.errors.append(f"{item.link or item.title}: {exc}")
        return poll
    finally:
        if client is None:
            http.close()


def _page_article(
    link: str,
    source: FeedSource,
    http: httpx.Client,
    allow_private: bool,
    timeout: float,
    poll: FeedPoll,
) -> Article | None:
    """Fetch and extract an item's page; on failure note it in the poll and return None."""
    try:
        result = fetch(
            link,
            timeout=timeout,
            max_bytes=PAGE_MAX_BYTES,
            allow_private=allow_private,
            client=http,
        )
        if result.content_type and "html" not in result.content_type:
            raise FetchError(f"not an HTML page ({result.content_type})")
        page = extract_article(_markup(result), result.final_url, source)
        if page is None:
            raise FetchError("no article text found on the page")
    except FetchError as exc:
        log.info("page %s: %s; using the feed's summary", link, exc)
        poll.errors.append(f"{link}: {exc}; indexed the summary")
        return None
    poll.pages_fetched += 1
    return page


def _markup(result: FetchResult) -> bytes | str:
    """The page as text when HTTP named a charset that decodes it, else the raw bytes
    (trafilatura then reads the <meta> charset)."""
    if result.encoding:
        try:
            return result.content.decode(result.encoding)
        except (LookupError, UnicodeDecodeError):
            pass
    return result.content
