"""Article -> passages: windows of whole sentences within the embedding model's token budget."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from index.articles import Article, is_heading

TARGET_WORDS = 150
MIN_WORDS = 80
MAX_WORDS = 200
MIN_QUOTE_WORDS = 6

# Abbreviations after which a full stop does not end a sentence (French and English news).
_ABBREVIATIONS = {
    "m",
    "mm",
    "mme",
    "mmes",
    "mlle",
    "dr",
    "pr",
    "me",
    "st",
    "ste",
    "mr",
    "mrs",
    "ms",
    "prof",
    "gen",
    "gén",
    "col",
    "lt",
    "sgt",
    "capt",
    "gov",
    "sen",
    "rep",
    "jr",
    "sr",
    "inc",
    "ltd",
    "co",
    "corp",
    "vs",
    "etc",
    "av",
    "apr",
    "env",
    "cf",
    "p",
    "pp",
    "no",
    "nº",
    "vol",
    "fig",
    "jan",
    "feb",
    "fév",
    "mar",
    "aug",
    "sept",
    "oct",
    "nov",
    "dec",
    "déc",
    "u.s",
    "e.g",
    "i.e",
}
# A sentence ends at . ! ? … (and any closing quotes or brackets) before white space or the
# end, or -- where text lost its paragraph breaks, as scraped news often has
# ("l'incendie.Un homme", "surveillance?\".Le gouvernement", "rien\".Après", "rebondir ?Parmi")
# -- right before a capitalised word, when the mark follows a word (not "3.5", "lemonde.fr"
# or "node.JS").
_SENTENCE_END = re.compile(
    r"[.!?…]+[\"'»”’)\]]*(?=\s+|$)"
    r"|(?:(?<=[^\W_])|(?<=[^\W_][ \u00a0\u202f]))"
    r"(?:[.!?…]+[\"'»”’)\]]*|[\"'»”’)\]]+[.!?…]+)\.?(?=[A-ZÀ-ÖØ-Þ][a-zà-öø-ÿ'’])"
)


@dataclass(frozen=True)
class Sentence:
    """A sentence as a span of its article's text."""

    start: int
    end: int


@dataclass(frozen=True)
class Passage:
    """A window of whole sentences of one article, with its section heading and offsets."""

    article_id: str
    ordinal: int
    heading: str
    text: str
    start: int
    end: int


def sentence_spans(text: str, start: int = 0, end: int | None = None) -> list[Sentence]:
    """Split text[start:end] into sentence spans; abbreviations and initials don't end one."""
    end = len(text) if end is None else end
    spans: list[Sentence] = []
    cursor = start
    for match in _SENTENCE_END.finditer(text, start, end):
        if match.group().startswith(".") and _is_abbreviation(text, cursor, match.start()):
            continue
        following = text[match.end() : match.end() + 3].lstrip()
        if following and following[0].islower():
            continue
        spans.append(_trimmed(text, cursor, match.end()))
        cursor = match.end()
    if text[cursor:end].strip():
        spans.append(_trimmed(text, cursor, end))
    return [s for s in spans if s.end > s.start]


def _is_abbreviation(text: str, sentence_start: int, dot: int) -> bool:
    word = re.search(r"([\w.]+)$", text[sentence_start:dot])
    if not word:
        return False
    token = word.group(1).lower()
    return token in _ABBREVIATIONS or (len(token) == 1 and token.isalpha())


def _trimmed(text: str, start: int, end: int) -> Sentence:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return Sentence(start, end)


_PARAGRAPH = re.compile(r"\S(?:.|\n(?!\s*\n))*")


def paragraph_spans(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Offsets of the blank-line-separated paragraphs of text[start:end] (an article's)."""
    end = len(text) if end is None else end
    return [(m.start(), m.end()) for m in _PARAGRAPH.finditer(text, start, end)]


def approximate_tokens(text: str) -> int:
    """A safe over-estimate of subword tokens when no tokenizer is at hand."""
    return int(len(text.split()) * 2.2) + len(text) // 40 + 4


def split_into_passages(
    article: Article,
    count_tokens: Callable[[str], int] = approximate_tokens,
    max_tokens: int = 512,
    target_words: int = TARGET_WORDS,
    max_words: int = MAX_WORDS,
) -> list[Passage]:
    """Cut an article into passages of whole sentences (~80–200 words), one sentence of
    overlap inside a section; a heading starts a new passage and stays with it. A single
    sentence over the token budget is the only thing ever cut, at word boundaries."""
    text = article.text
    spans = paragraph_spans(text)
    # An article made only of short lines (a feed item with just a headline) is all text.
    all_headings = all(is_heading(text[start:end]) for start, end in spans)
    sections: list[tuple[str, list[Sentence]]] = [("", [])]
    for start, end in spans:
        if is_heading(text[start:end]) and not all_headings:
            sections.append((text[start:end].strip().strip("'\"«»“” "), []))
        else:
            sections[-1][1].extend(sentence_spans(text, start, end))
    passages: list[Passage] = []
    for heading, sentences in sections:
        budget = max_tokens - count_tokens(heading) - 8 if heading else max_tokens - 4
        pieces = _fit_sentences(text, sentences, count_tokens, budget)
        for first, last in _windows(text, pieces, count_tokens, budget, target_words, max_words):
            passages.append(
                Passage(
                    article_id=article.id,
                    ordinal=len(passages),
                    heading=heading,
                    text=text[first.start : last.end],
                    start=first.start,
                    end=last.end,
                )
            )
    return passages


def _fit_sentences(
    text: str, sentences: list[Sentence], count_tokens: Callable[[str], int], budget: int
) -> list[Sentence]:
    """Split any sentence that alone exceeds the token budget into word-boundary pieces."""
    fitted: list[Sentence] = []
    for sentence in sentences:
        if count_tokens(text[sentence.start : sentence.end]) <= budget:
            fitted.append(sentence)
            continue
        words = [
            (sentence.start + m.start(), sentence.start + m.end())
            for m in re.finditer(r"\S+", text[sentence.start : sentence.end])
        ]
        first = 0
        for i in range(1, len(words)):
            if count_tokens(text[words[first][0] : words[i][1]]) > budget:
                fitted.append(Sentence(words[first][0], words[i - 1][1]))
                first = i
        fitted.append(Sentence(words[first][0], words[-1][1]))
    return fitted


def _windows(
    text: str,
    sentences: list[Sentence],
    count_tokens: Callable[[str], int],
    budget: int,
    target_words: int,
    max_words: int,
) -> list[tuple[Sentence, Sentence]]:
    """Greedy windows: grow to the target size, never past max words or the token budget;
    the next window starts with the last sentence of the previous one."""
    windows: list[tuple[Sentence, Sentence]] = []
    i = 0
    while i < len(sentences):
        j = i
        words = _words(text, sentences[i])
        while j + 1 < len(sentences) and words < target_words:
            extra = _words(text, sentences[j + 1])
            span = text[sentences[i].start : sentences[j + 1].end]
            if words + extra > max_words or count_tokens(span) > budget:
                break
            words += extra
            j += 1
        windows.append((sentences[i], sentences[j]))
        if j + 1 >= len(sentences):
            break
        remaining = sum(_words(text, s) for s in sentences[j + 1 :])
        if remaining < MIN_WORDS // 2 and windows:
            tail_span = text[sentences[i].start : sentences[-1].end]
            if words + remaining <= max_words and count_tokens(tail_span) <= budget:
                windows[-1] = (sentences[i], sentences[-1])
                break
        overlap_fits = (
            j > i
            and _words(text, sentences[j]) + _words(text, sentences[j + 1]) <= max_words
            and count_tokens(text[sentences[j].start : sentences[j + 1].end]) <= budget
        )
        i = j if overlap_fits else j + 1
    return windows


def _words(text: str, sentence: Sentence) -> int:
    return len(text[sentence.start : sentence.end].split())


def quote_spans(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """The sentences of text[start:end] that can be quoted on their own. A paragraph break
    always ends one (a headline is never glued to the lead), a sub-heading is not quoted
    (unless the range holds nothing else), and a very short sentence (under
    MIN_QUOTE_WORDS words) is joined to the next one of its paragraph."""
    paragraphs = paragraph_spans(text, start, end)
    prose = [(a, b) for a, b in paragraphs if not is_heading(text[a:b])] or paragraphs
    out = []
    for first, last in prose:
        spans = sentence_spans(text, first, last)
        for i, span in enumerate(spans):
            stop = span.end
            if len(text[span.start : span.end].split()) < MIN_QUOTE_WORDS and i + 1 < len(spans):
                stop = spans[i + 1].end
            out.append((span.start, stop))
    return out


def passage_embedding_text(heading: str, text: str) -> str:
    """What a model reads for a passage: its heading adds context."""
    return "\n".join(part for part in (heading.strip(), text) if part)
