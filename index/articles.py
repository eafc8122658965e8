"""Articles and the loaders that read them from files (.txt seed shape, .md, .json, .jsonl)."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

SUPPORTED_SUFFIXES = (".txt", ".md", ".json", ".jsonl")

_DATE_RE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?(?:[T ].*)?$")
_SEED_FIRST_LINE = re.compile(r"^\s*date\s+(\d{4}-\d{2}(?:-\d{2})?)\s*(.*)$", re.IGNORECASE)
_SOURCE_LINE = re.compile(r"^/\s*(\S.{0,60})$")
_FINAL_PUNCTUATION = ".!?:;…»\"'”)"


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
        if not self.id:
            object.__setattr__(self, "id", article_id(self.url, self.source, self.title, self.date))

    @property
    def content_hash(self) -> str:
        """Hash of everything that changes what gets indexed or shown."""
        payload = json.dumps(
            [self.title, self.text, self.date, self.source, self.url, self.lang, self.summary_only]
        )
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def article_id(url: str | None, source: str, title: str, date: str | None) -> str:
    """A stable id: the hash of the canonical URL, else of source, title and date."""
    key = canonical_url(url) if url else "\x1f".join([source.strip(), title.strip(), date or ""])
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


def canonical_url(url: str) -> str:
    """Lower-case scheme and host, drop fragments, tracking parameters and trailing slashes."""
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    parts = urlsplit(url.strip())
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
    """Accept YYYY, YYYY-MM, YYYY-MM-DD, an ISO date-time or an RFC 2822 date (feeds);
    return the date part as written (YYYY[-MM[-DD]]), or None when there is none."""
    if value is None or value == "":
        return None
    text = str(value).strip()
    match = _DATE_RE.match(text)
    if not match:
        try:
            return parsedate_to_datetime(text).strftime("%Y-%m-%d")
        except (TypeError, ValueError, IndexError):
            raise ArticleError(
                f"date {text!r} is not YYYY-MM, YYYY-MM-DD or an ISO date-time"
            ) from None
    year, month, day = match.groups()
    if (month is not None and not 1 <= int(month) <= 12) or (
        day is not None and not 1 <= int(day) <= 31
    ):
        raise ArticleError(f"date {text!r} is out of range")
    return year + (f"-{month}" if month else "") + (f"-{day}" if day else "")


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
        raise ArticleError(f"expected a JSON object, got {type(record).__name__}")
    text = record.get("text")
    if not isinstance(text, str) or not text.strip():
        raise ArticleError("the record has no 'text'")
    for key in ("title", "source", "url", "lang", "id"):
        if record.get(key) is not None and not isinstance(record[key], str):
            raise ArticleError(f"'{key}' must be a string")
    body = "\n\n".join(paragraphs_of(text))
    return Article(
        title=(record.get("title") or "").strip() or title_from_text(body),
        text=body,
        date=normalise_date(record.get("date")),
        source=(record.get("source") or "").strip(),
        url=(record.get("url") or "").strip() or None,
        lang=(record.get("lang") or "").strip() or None,
        id=(record.get("id") or "").strip(),
        summary_only=bool(record.get("summary_only", False)),
    )


@dataclass
class LoadResult:
    """What a batch load produced: the articles, and one error line per file that failed."""

    articles: list[Article] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def load_file(path: Path) -> Iterator[Article]:
    """Yield the articles of one file; raise ArticleError naming the file on bad content."""
    try:
        raw = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ArticleError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    suffix = path.suffix.lower()
    try:
        if suffix == ".txt":
            yield with_language(parse_seed_text(raw, name=""))
        elif suffix == ".md":
            yield with_language(parse_markdown(raw, name=""))
        elif suffix == ".json":
            data = json.loads(raw)
            for record in data if isinstance(data, list) else [data]:
                yield with_language(article_from_record(record))
        elif suffix == ".jsonl":
            yield from _load_jsonl(raw, path)
        else:
            raise ArticleError(f"unsupported file type {suffix!r}")
    except json.JSONDecodeError as exc:
        raise ArticleError(f"{path}: invalid JSON at line {exc.lineno}: {exc.msg}") from None
    except ArticleError as exc:
        if str(exc).startswith(str(path)):
            raise
        raise ArticleError(f"{path}: {exc}") from None


def _load_jsonl(raw: str, path: Path) -> Iterator[Article]:
    for number, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield with_language(article_from_record(json.loads(line)))
        except json.JSONDecodeError as exc:
            raise ArticleError(f"{path}:{number}: invalid JSON: {exc.msg}") from None
        except ArticleError as exc:
            raise ArticleError(f"{path}:{number}: {exc}") from None


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
    """Load every file; a bad file (or JSONL line) is reported and the rest still load."""
    result = LoadResult()
    for path in iter_article_files(paths):
        if not path.exists():
            result.errors.append(f"{path}: no such file")
            continue
        if path.suffix.lower() == ".jsonl":
            _load_jsonl_lenient(path, result)
            continue
        try:
            result.articles.extend(load_file(path))
        except ArticleError as exc:
            result.errors.append(str(exc))
        except OSError as exc:
            result.errors.append(f"{path}: {exc.strerror or exc}")
    return result


def _load_jsonl_lenient(path: Path, result: LoadResult) -> None:
    """JSONL: keep every good line, report each bad one."""
    try:
        raw = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        result.errors.append(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})")
        return
    except OSError as exc:
        result.errors.append(f"{path}: {exc.strerror or exc}")
        return
    for number, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            result.articles.append(with_language(article_from_record(json.loads(line))))
        except json.JSONDecodeError as exc:
            result.errors.append(f"{path}:{number}: invalid JSON: {exc.msg}")
        except ArticleError as exc:
            result.errors.append(f"{path}:{number}: {exc}")


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
