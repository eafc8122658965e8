"""Articles and the loaders that read them from files (.txt seed shape, .md, .json, .jsonl)."""

from __future__ import annotations

import hashlib
import json
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, fields, replace
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

SUPPORTED_SUFFIXES = (".txt", ".md", ".json", ".jsonl")
MAX_ARTICLE_CHARS = 300_000  # a book or a dump, not an article: refused with a message
# A file (or JSONL line) of one article past this size cannot hold an article under the
# limit (UTF-8 takes at most 4 bytes a character; markup aside): refused without reading.
MAX_RECORD_BYTES = 4 * MAX_ARTICLE_CHARS + 65_536
MAX_JSON_BYTES = 256 * 1024 * 1024  # a .json file is parsed whole; .jsonl is streamed
MIN_ARTICLE_LETTERS = 10  # fewer letters than this is not readable text
MIN_DISTINCT_LETTERS = 5  # nor is a run of one or two letters repeated

_DATE_RE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?(?:[T ].*)?$")
_SEED_FIRST_LINE = re.compile(r"^\s*date\s+(\d{4}-\d{2}(?:-\d{2})?)\s*(.*)$", re.IGNORECASE)
_SOURCE_LINE = re.compile(r"^/\s*(\S.{0,60})$")
_FINAL_PUNCTUATION = ".!?:;…»\"'”)"
_SURROGATE = re.compile("[\ud800-\udfff]")
_LINE_BREAK = re.compile("\r\n?|[\x0b\x0c\x1c-\x1e\x85\u2028]")
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


class ArticleError(ValueError):
    """A file or record that cannot become an article; the message names where and why."""


@dataclass(frozen=True)
class Article:
    """One news article; `text` holds paragraphs separated by blank lines."""

    title: str
    text: str
    date: str | None = None
    source: str = ""
    url: str | None = None
    lang: str | None = None
    id: str = field(default="")
    summary_only: bool = False

    def __post_init__(self) -> None:
        for name in (f.name for f in fields(self)):
            value = getattr(self, name)
            if isinstance(value, str):
                object.__setattr__(self, name, clean_text(value))
        if not self.id:
            object.__setattr__(self, "id", article_id(self.url, self.source, self.title, self.date))

    @property
    def content_hash(self) -> str:
        """Hash of everything that changes what gets indexed or shown."""
        payload = json.dumps(
            [self.title, self.text, self.date, self.source, self.url, self.lang, self.summary_only]
        )
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def clean_text(s: str) -> str:
    """Text that can be stored, hashed and tokenized: lone surrogates (a JSON "\\ud800",
    undecodable bytes) become U+FFFD; CR, CRLF, NEL, U+2028 and the other line-breaking
    controls become "\\n", U+2029 a blank line; other control characters (NUL, C0, C1,
    DEL) are dropped. Tabs, newlines and everything else stay."""
    if _SURROGATE.search(s):  # pairs join into their character, lone halves are replaced
        s = s.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    s = _LINE_BREAK.sub("\n", s).replace("\u2029", "\n\n")
    return _CONTROL.sub("", s)


def article_problem(article: Article) -> str | None:
    """Why the article must not be indexed (no readable text, or too long), else None.
    Readable means at least MIN_ARTICLE_LETTERS letters (zero-width and other format
    characters, digits and symbols are not letters)."""
    length = len(article.text)
    if length > MAX_ARTICLE_CHARS:
        return f"the text is {length:,} characters long; the limit is {MAX_ARTICLE_CHARS:,}"
    letters = 0
    distinct: set[str] = set()
    for char in article.text:
        if char.isalpha():  # str.isalpha: Unicode categories L*
            letters += 1
            distinct.add(char.lower())
            if letters >= MIN_ARTICLE_LETTERS and len(distinct) >= MIN_DISTINCT_LETTERS:
                return None
    if letters >= MIN_ARTICLE_LETTERS:  # "aaaa…": an entity bomb, not words
        return f"the text is not words (fewer than {MIN_DISTINCT_LETTERS} different letters)"
    return f"the text has no readable words (fewer than {MIN_ARTICLE_LETTERS} letters)"


def article_id(url: str | None, source: str, title: str, date: str | None) -> str:
    """A stable id: the hash of the canonical URL, else of source, title and date."""
    if url:
        key = canonical_url(url)
    else:
        key = "\x1f".join(clean_text(part).strip() for part in (source, title, date or ""))
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


def canonical_url(url: str) -> str:
    """Lower-case scheme and host, drop fragments, tracking parameters and trailing slashes."""
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    parts = urlsplit(clean_text(url).strip())
    query = [
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if not k.lower().startswith(("utm_", "fbclid", "gclid", "xtor"))
    ]
    path = parts.path.rstrip("/") or "/"
    return urlunsplit(
        (parts.scheme.lower(), parts.netloc.lower(), path, urlencode(sorted(query)), "")
    )


def normalise_date(value: Any) -> str | None:
    """Accept YYYY, YYYY-MM, YYYY-MM-DD, an ISO date-time or an RFC 2822 date (feeds), or a
    year as a number; return the date part as written (YYYY[-MM[-DD]]), or None when there
    is none."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ArticleError(f"date must be a string like YYYY-MM-DD, not {_json_kind(value)}")
    if isinstance(value, int):
        if not 1000 <= value <= 9999:
            shown = str(value) if value.bit_length() <= 64 else "(a number of thousands of digits)"
            raise ArticleError(f"date {shown} is out of range (a year has four digits)")
        return str(value)
    text = value.strip()
    if not text:
        return None
    match = _DATE_RE.match(text)
    if not match:
        try:
            return parsedate_to_datetime(text).strftime("%Y-%m-%d")
        except (TypeError, ValueError, IndexError, OverflowError):
            raise ArticleError(
                f"date {_shorten(text)!r} is not YYYY-MM, YYYY-MM-DD or an ISO date-time"
            ) from None
    year, month, day = match.groups()
    if (month is not None and not 1 <= int(month) <= 12) or (
        day is not None and not 1 <= int(day) <= 31
    ):
        raise ArticleError(f"date {_shorten(text)!r} is out of range")
    return year + (f"-{month}" if month else "") + (f"-{day}" if day else "")


def _shorten(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def _json_kind(value: Any) -> str:
    """What a JSON value is, for messages: "a list", "true", "the number nan"."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"the number {value!r}"
    if isinstance(value, dict):
        return "an object"
    return "a list" if isinstance(value, list) else type(value).__name__


def is_heading(paragraph: str) -> bool:
    """A sub-heading: one short line without final punctuation."""
    line = paragraph.strip()
    if not line or "\n" in line or len(line) > 80 or len(line.split()) > 10:
        return False
    return line[-1] not in _FINAL_PUNCTUATION or (line[0] in "'\"«“" and len(line.split()) <= 4)


def is_title_line(paragraph: str) -> bool:
    """A headline heading a file: one line without final punctuation, of any length a
    headline has (a sub-heading inside the text must be shorter, see `is_heading`)."""
    line = paragraph.strip()
    return (
        bool(line) and "\n" not in line and len(line) <= 300 and line[-1] not in _FINAL_PUNCTUATION
    )


def title_from_text(text: str, limit: int = 100) -> str:
    """A title for articles that carry none: the first sentence of the lead, shortened."""
    lead = text.strip().split("\n", 1)[0]
    match = re.search(r"(?<=[.!?])\s", lead)
    first = lead[: match.start()] if match else lead
    if len(first) > limit:
        first = first[:limit].rsplit(" ", 1)[0] + "…"
    return first.strip()


def paragraphs_of(raw: str) -> list[str]:
    """Split text on blank lines, joining wrapped lines and trimming each paragraph."""
    blocks = re.split(r"\n\s*\n", raw.replace("\r\n", "\n").replace("\r", "\n"))
    return [" ".join(line.strip() for line in b.strip().splitlines()) for b in blocks if b.strip()]


def parse_seed_text(raw: str, name: str = "") -> Article:
    """Parse the seed's shape: `date YYYY-MM[-DD] lead…`, blank-line paragraphs, `/SOURCE` last."""
    paragraphs = paragraphs_of(raw)
    if not paragraphs:
        raise ArticleError("the file is empty")
    date = None
    first = _SEED_FIRST_LINE.match(paragraphs[0])
    if first:
        date = normalise_date(first.group(1))
        paragraphs[0] = first.group(2).strip()
        if not paragraphs[0]:
            paragraphs.pop(0)
    source = ""
    if paragraphs and (last := _SOURCE_LINE.match(paragraphs[-1])):
        source = last.group(1).strip()
        paragraphs.pop()
    if not paragraphs:
        raise ArticleError("the file has no text besides its date and source lines")
    title = ""
    if len(paragraphs) > 1 and is_title_line(paragraphs[0]):
        title = paragraphs.pop(0)  # a headline on the date line, not part of the body
    text = "\n\n".join(paragraphs)
    return Article(
        title=title or title_from_text(text), text=text, date=date, source=source or name
    )


def parse_markdown(raw: str, name: str = "") -> Article:
    """Markdown: the first `# ` heading is the title; front-matter-like `key: value` lines
    before it (date, source, url, lang) are read; other headings become sub-headings."""
    meta: dict[str, str] = {}
    title = ""
    body: list[str] = []
    for block in paragraphs_of(raw):
        if not title and not body and re.match(r"^(date|source|url|lang)\s*:", block, re.I):
            for part in re.split(r"\s+(?=(?:date|source|url|lang)\s*:)", block, flags=re.I):
                key, _, value = part.partition(":")
                meta[key.strip().lower()] = value.strip()
            continue
        heading = re.match(r"^#{1,6}\s+(.*)$", block)
        if heading and not title and not body:
            title = heading.group(1).strip()
        elif heading:
            body.append(heading.group(1).strip().rstrip(".:"))
        elif block.strip() not in {"---", "***"}:
            body.append(re.sub(r"[*_`]{1,3}([^*_`]+)[*_`]{1,3}", r"\1", block))
    text = "\n\n".join(body)
    if not text:
        raise ArticleError("the markdown file has no body text")
    return Article(
        title=title or title_from_text(text),
        text=text,
        date=normalise_date(meta.get("date")),
        source=meta.get("source", name),
        url=meta.get("url") or None,
        lang=meta.get("lang") or None,
    )


def article_from_record(record: Any) -> Article:
    """A JSON object with title, text, date, source, url, lang (text is required)."""
    if not isinstance(record, dict):
        raise ArticleError(f"expected a JSON object, got {_json_kind(record)}")
    text = record.get("text")
    if not isinstance(text, str) or not text.strip():
        raise ArticleError("the record has no 'text'")
    for key in ("title", "source", "url", "lang", "id"):
        if record.get(key) is not None and not isinstance(record[key], str):
            raise ArticleError(f"'{key}' must be a string")

    def string(key: str) -> str:
        return clean_text(record.get(key) or "").strip()

    body = "\n\n".join(paragraphs_of(clean_text(text)))
    return Article(
        title=string("title") or title_from_text(body),
        text=body,
        date=normalise_date(record.get("date")),
        source=string("source"),
        url=string("url") or None,
        lang=string("lang") or None,
        id=string("id"),
        summary_only=bool(record.get("summary_only", False)),
    )


@dataclass
class LoadResult:
    """What a batch load produced: the articles, and one error line per file that failed."""

    articles: list[Article] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def load_file(path: Path) -> Iterator[Article]:
    """Yield the articles of one file; raise ArticleError naming the file (and the line or
    record) on the first bad content."""
    for item in _read_file(path):
        if isinstance(item, ArticleError):
            raise item
        yield item


def _read_file(path: Path) -> Iterator[Article | ArticleError]:
    """Each article of a file in turn, or in its place the error naming where and why: a
    bad JSONL line or JSON list record costs only itself."""
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        yield ArticleError(f"{path}: unsupported file type {suffix!r}")
        return
    if suffix == ".jsonl":
        yield from _read_jsonl(path)
        return
    limit = MAX_JSON_BYTES if suffix == ".json" else MAX_RECORD_BYTES
    try:
        size = path.stat().st_size
    except OSError as exc:
        yield ArticleError(f"{path}: {exc.strerror or exc}")
        return
    if size > limit:  # refused unread: memory stays bounded whatever the file
        hint = " (use .jsonl, one article per line, for a large collection)" * (suffix == ".json")
        yield ArticleError(f"{path}: the file is {size:,} bytes; the limit is {limit:,}{hint}")
        return
    try:
        raw = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        yield ArticleError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})")
        return
    if suffix != ".json":
        parse = parse_seed_text if suffix == ".txt" else parse_markdown
        yield _checked(str(path), parse, clean_text(raw))
        return
    try:
        data = _parse_json(raw, whole_file=True)
    except ArticleError as exc:
        yield ArticleError(f"{path}: {exc}")
        return
    if not isinstance(data, list):
        yield _checked(str(path), article_from_record, data)
        return
    for number, record in enumerate(data, start=1):
        yield _checked(f"{path}: record {number}", article_from_record, record)


def _read_jsonl(path: Path) -> Iterator[Article | ArticleError]:
    """JSONL, read in binary and split on "\\n" only: U+2028 or NEL inside a string is
    valid JSON, and a line that is not UTF-8 is reported by its number."""
    with path.open("rb") as lines:
        number = 0
        while line := lines.readline(MAX_RECORD_BYTES + 1):
            number += 1
            where = f"{path}:{number}"
            if len(line) > MAX_RECORD_BYTES and not line.endswith(b"\n"):
                while (rest := lines.readline(1 << 20)) and not rest.endswith(b"\n"):
                    pass  # skip the rest of the line without holding it
                yield ArticleError(f"{where}: the line is over {MAX_RECORD_BYTES:,} bytes")
                continue
            try:
                text = line.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                yield ArticleError(f"{where}: not UTF-8 text ({exc.reason} at byte {exc.start})")
                continue
            if text.strip():
                yield _checked(where, _article_from_json, text)


def _parse_json(raw: str, whole_file: bool = False) -> Any:
    """json.loads, with every way JSON can fail as one ArticleError: bad syntax, nesting
    deeper than Python recurses. Raw control characters in strings are let in (and then
    dropped by clean_text), as scraped text often holds a stray one."""
    try:
        return json.loads(raw, strict=False, parse_int=_json_int)
    except json.JSONDecodeError as exc:
        where = f" at line {exc.lineno}" if whole_file else ""
        raise ArticleError(f"invalid JSON{where}: {exc.msg}") from None
    except RecursionError:
        raise ArticleError("invalid JSON: nested too deeply") from None


def _json_int(digits: str) -> int:
    """A JSON integer. One too long for int() (over sys.get_int_max_str_digits() digits)
    stands in as another number too long to show, so the field holding it is refused by
    its own check ("date … is out of range") rather than the whole file."""
    limit = sys.get_int_max_str_digits()
    if not limit or len(digits.lstrip("-")) <= limit:
        return int(digits)
    return (-1 if digits.startswith("-") else 1) * 10 ** (limit + 1)


def _article_from_json(line: str) -> Article:
    return article_from_record(_parse_json(line))


def _checked(where: str, make: Callable[[Any], Article], raw: Any) -> Article | ArticleError:
    """The article `make` builds from `raw`, with its language filled in, or the error
    naming `where` when it cannot be built or has no readable text."""
    try:
        article = with_language(make(raw))
    except ArticleError as exc:
        return ArticleError(f"{where}: {exc}")
    problem = article_problem(article)
    return ArticleError(f"{where}: {problem}") if problem else article


def iter_article_files(paths: Iterable[Path]) -> Iterator[Path]:
    """Expand directories (recursively, sorted) into the supported files they hold."""
    for path in paths:
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                if child.is_file() and child.suffix.lower() in SUPPORTED_SUFFIXES:
                    yield child
        else:
            yield path


def load_articles(paths: Iterable[Path]) -> LoadResult:
    """Load every file; a bad file, JSONL line or JSON record is reported and the rest
    still load."""
    result = LoadResult()
    for path in iter_article_files(paths):
        if not path.exists():
            result.errors.append(f"{path}: no such file")
            continue
        try:
            for item in _read_file(path):
                if isinstance(item, ArticleError):
                    result.errors.append(str(item))
                else:
                    result.articles.append(item)
        except OSError as exc:
            result.errors.append(f"{path}: {exc.strerror or exc}")
    return result


_STOP_WORDS = {
    "fr": "le la les des du un une et est que qui dans pour sur pas au aux ce cette il elle "
    "ont été avec par son ses mais ne plus a à où",
    "en": "the of and to in is that for on was with as by at it from are be this have has "
    "which were an or who not their",
    "de": "der die das und ist nicht mit den dem ein eine zu von auf für sich des im auch "
    "wurde werden bei",
    "es": "el la los las de y en que un una por con para es del al se su no como más lo",
    "it": "il di che e la per un una non sono del della con gli le si nel è anche",
    "pt": "o a os as de e que em um uma para com não do da dos das no na se por é",
}
_STOP_SETS = {lang: set(words.split()) for lang, words in _STOP_WORDS.items()}


def guess_language(text: str) -> str | None:
    """A cheap stop-word vote among fr/en/de/es/it/pt; None when too little evidence."""
    words = re.findall(r"[^\W\d_]+", text.lower()[:4000])
    if len(words) < 3:
        return None
    counts = {lang: sum(w in stops for w in words) for lang, stops in _STOP_SETS.items()}
    best = max(counts, key=lambda lang: counts[lang])
    return best if counts[best] >= max(2, len(words) // 25) else None


def with_language(article: Article) -> Article:
    """Fill `lang` from the text when the source did not say."""
    if article.lang:
        return article
    return replace(article, lang=guess_language(article.title + " " + article.text))
