"""Article -> passages: windows of whole sentences within the embedding model's token budget.

All the work is linear in the text's length whatever its shape (100,000 characters without a
full stop, thousands of initials, a line of dots, one 300,000-character word): each sentence
is counted once, and later counts are of spans the budget bounds, searched from an estimate.
"""

from __future__ import annotations

import bisect
import itertools
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
_LONGEST_ABBREVIATION = max(map(len, _ABBREVIATIONS))
_TRAILING_WORD = re.compile(r"([\w.]+)$")
_WORD = re.compile(r"\S+")
# A sentence ends at . ! ? … (and any closing quotes or brackets) before white space or the
# end, or -- where text lost its paragraph breaks, as scraped news often has
# ("l'incendie.Un homme", "surveillance?\".Le gouvernement", "rien\".Après", "rebondir ?Parmi")
# -- right before a capitalised word, when the mark follows a word (not "3.5", "lemonde.fr"
# or "node.JS").
# A match is tried from the first mark of a run only: tried from each mark of a long run of
# dots not followed by white space, the regex would rescan the rest of the run every time.
_SENTENCE_END = re.compile(
    r"(?<![.!?…])[.!?…]+[\"'»”’)\]]*(?=\s|$)"
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
    """Whether the word before this dot is an abbreviation or an initial. Only a few
    characters are read back (never the whole sentence so far): a longer word is none."""
    lookback = max(sentence_start, dot - _LONGEST_ABBREVIATION - 2)
    word = _TRAILING_WORD.search(text[lookback:dot])
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
    sentence over the token budget is the only thing ever cut, at word boundaries (and a
    word over the budget on its own, between characters)."""
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
    counter = _Counter(count_tokens)
    passages: list[Passage] = []
    for heading, sentences in sections:
        budget = max_tokens - count_tokens(heading) - 8 if heading else max_tokens - 4
        pieces = _fit_sentences(text, sentences, counter, budget)
        for first, last in _windows(text, pieces, counter, budget, target_words, max_words):
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


@dataclass(frozen=True)
class _Piece:
    """A sentence, or a piece of one over the budget, with its words and (estimated) tokens."""

    start: int
    end: int
    words: int
    tokens: int


class _Counter:
    """count_tokens with its fixed cost (prompt, special tokens) known, so that the tokens of
    a span can be estimated from those of its parts before one call checks the estimate.
    Counts are assumed to grow as a span grows by whole words, as a subword tokenizer's do."""

    def __init__(self, count_tokens: Callable[[str], int]) -> None:
        self.count = count_tokens
        self.overhead = count_tokens("")

    def fits(self, text: str, start: int, end: int, budget: int) -> bool:
        """Whether text[start:end] is within the budget."""
        return self.count(text[start:end]) <= budget

    def fits_to(self, text: str, start: int, ends: list[int], budget: int) -> Callable[[int], bool]:
        """Whether text[start:ends[k]] is within the budget, as a function of k."""
        return lambda k: self.count(text[start : ends[k]]) <= budget

    def own_tokens(self, tokens: int) -> int:
        """A span's tokens less the fixed cost every count includes."""
        return max(tokens - self.overhead, 0)


def _fit_sentences(
    text: str, sentences: list[Sentence], counter: _Counter, budget: int
) -> list[_Piece]:
    """Split any sentence that alone exceeds the token budget into word-boundary pieces;
    each sentence is counted once, and its count kept for the windows' estimates."""
    fitted: list[_Piece] = []
    for sentence in sentences:
        tokens = counter.count(text[sentence.start : sentence.end])
        if tokens <= budget:
            words = len(text[sentence.start : sentence.end].split())
            fitted.append(_Piece(sentence.start, sentence.end, words, tokens))
        else:
            fitted.extend(_cut_sentence(text, sentence, tokens, counter, budget))
    return fitted


def _cut_sentence(
    text: str, sentence: Sentence, tokens: int, counter: _Counter, budget: int
) -> list[_Piece]:
    """The longest runs of words that fit, one after the other (as a word-by-word loop would
    cut them); each word is counted once, so that one or two calls find where a run ends.
    A word over the budget on its own is cut between characters."""
    words = [(m.start(), m.end()) for m in _WORD.finditer(text, sentence.start, sentence.end)]
    counts = [tokens] if len(words) == 1 else [counter.count(text[a:b]) for a, b in words]
    own = [counter.own_tokens(count) for count in counts]
    ends = [end for _, end in words]
    sums = list(itertools.accumulate(own, initial=0))
    room = budget - counter.overhead
    pieces: list[_Piece] = []
    first, start = 0, words[0][0]
    while first < len(words):
        word_start, word_end = words[first]
        if start == word_start and counts[first] > budget:
            start = _cut_word(text, start, word_end, counts[first], counter, budget, pieces)
            if start == word_end:
                first += 1
                start = words[first][0] if first < len(words) else start
            continue
        # The first word may be what a character cut left of it: estimate its share.
        head = own[first] * (word_end - start) // (word_end - word_start)
        guess = bisect.bisect_right(sums, room - head + sums[first + 1]) - 2
        fits = counter.fits_to(text, start, ends, budget)
        last = _longest_fit(fits, first, len(words) - 1, guess)
        estimate = counter.overhead + head + sums[last + 1] - sums[first + 1]
        pieces.append(_Piece(start, words[last][1], last - first + 1, estimate))
        first = last + 1
        if first < len(words):
            start = words[first][0]
    return pieces


def _cut_word(
    text: str,
    start: int,
    end: int,
    word_tokens: int,
    counter: _Counter,
    budget: int,
    out: list[_Piece],
) -> int:
    """Cut text[start:end], one word of `word_tokens` tokens, into runs of characters that fill
    the budget (sized from the characters per token measured so far, checked by a count).
    The last run, once it fits, is left to start the next piece: where it starts is
    returned (`end` when nothing is left)."""
    room = max(budget - counter.overhead, 1)
    per_token = (end - start) / max(counter.own_tokens(word_tokens), 1)
    while start < end:
        size = min(max(int(room * per_token), 1), end - start)
        tokens = counter.count(text[start : start + size])
        if tokens <= budget * 0.9 and size < end - start:  # too cautious: grow once
            per_token = size / max(counter.own_tokens(tokens), 1)
            size = min(max(int(room * per_token), size), end - start)
            tokens = counter.count(text[start : start + size])
        while tokens > budget and size > 1:  # a character over the budget alone still goes
            per_token = size / max(counter.own_tokens(tokens), 1)
            size = max(min(int(room * per_token * 0.98), size - 1), 1)
            tokens = counter.count(text[start : start + size])
        if start + size == end and tokens <= budget:
            break
        out.append(_Piece(start, start + size, 1, tokens))
        per_token = size / max(counter.own_tokens(tokens), 1)
        start += size
    return start


def _longest_fit(fits: Callable[[int], bool], low: int, high: int, guess: int) -> int:
    """The largest k in [low, high] with fits(k) (low counts as fitting, unchecked), for a
    fits that is true then false: two calls when the guess is right, a gallop from it and a
    bisection when it is not, so that no call spans much more than the answer."""
    guess = min(max(guess, low), high)
    if guess > low and not fits(guess):
        hi, step = guess - 1, 1
        while guess - step > low and not fits(guess - step):
            hi, step = guess - step - 1, step * 2
        lo = max(guess - step, low)
    else:
        lo, hi, step = guess, high, 1
        while guess + step <= high:
            if not fits(guess + step):
                hi = guess + step - 1
                break
            lo, step = guess + step, step * 2
    while lo < hi:
        middle = (lo + hi + 1) // 2
        if fits(middle):
            lo = middle
        else:
            hi = middle - 1
    return lo


def _windows(
    text: str,
    pieces: list[_Piece],
    counter: _Counter,
    budget: int,
    target_words: int,
    max_words: int,
) -> list[tuple[_Piece, _Piece]]:
    """Greedy windows: grow to the target size, never past max words or the token budget;
    the next window starts with the last sentence of the previous one."""
    words = list(itertools.accumulate((p.words for p in pieces), initial=0))
    tokens = list(itertools.accumulate((counter.own_tokens(p.tokens) for p in pieces), initial=0))
    ends = [p.end for p in pieces]
    room = budget - counter.overhead
    windows: list[tuple[_Piece, _Piece]] = []
    i = 0
    while i < len(pieces):
        # Where the word limits stop the window: the target reached, or max words next.
        reach = max(
            min(
                bisect.bisect_left(words, words[i] + target_words) - 1,
                bisect.bisect_right(words, words[i] + max_words) - 2,
                len(pieces) - 1,
            ),
            i,
        )
        guess = bisect.bisect_right(tokens, tokens[i] + room) - 2
        j = _longest_fit(counter.fits_to(text, pieces[i].start, ends, budget), i, reach, guess)
        windows.append((pieces[i], pieces[j]))
        if j + 1 >= len(pieces):
            break
        remaining = words[-1] - words[j + 1]
        # Stopped short of `reach`, the window with the next sentence was over the budget,
        # and so is any window that holds it.
        if (
            remaining < MIN_WORDS // 2
            and j == reach
            and words[-1] - words[i] <= max_words
            and counter.fits(text, pieces[i].start, pieces[-1].end, budget)
        ):
            windows[-1] = (pieces[i], pieces[-1])
            break
        overlap_fits = (
            j > i
            and pieces[j].words + pieces[j + 1].words <= max_words
            and counter.fits(text, pieces[j].start, pieces[j + 1].end, budget)
        )
        i = j if overlap_fits else j + 1
    return windows


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
