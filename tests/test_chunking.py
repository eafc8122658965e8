"""Chunking invariants: whole sentences, sizes, overlap, headings, offsets, token budget."""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Callable

import pytest

from index.articles import Article, is_heading, parse_seed_text
from index.chunking import paragraph_spans, sentence_spans, split_into_passages
from tests.conftest import SEED


def _seed() -> Article:
    return parse_seed_text(SEED.read_text(encoding="utf-8"))


def test_passages_are_exact_slices_of_the_article() -> None:
    article = _seed()
    passages = split_into_passages(article)
    assert passages
    for p in passages:
        assert article.text[p.start : p.end] == p.text
        assert p.article_id == article.id
    assert [p.ordinal for p in passages] == list(range(len(passages)))


def test_every_sentence_is_in_some_passage_and_never_cut() -> None:
    article = _seed()
    passages = split_into_passages(article)
    sentences = [
        s
        for start, end in paragraph_spans(article.text)
        if not is_heading(article.text[start:end])
        for s in sentence_spans(article.text, start, end)
    ]
    assert len(sentences) > 20
    for s in sentences:
        assert any(p.start <= s.start and s.end <= p.end for p in passages), s
    boundaries = {s.start for s in sentences} | {s.end for s in sentences}
    for p in passages:
        assert p.start in boundaries and p.end in boundaries


def test_headings_stay_with_their_passage_and_are_not_quoted_as_text() -> None:
    passages = split_into_passages(_seed())
    headings = [p.heading for p in passages]
    assert headings[0] == ""
    assert "Echange de fusils" in headings and "Violation directe" in headings
    for p in passages:
        assert not p.text.startswith(("Echange de fusils", "Importants stocks"))


def test_long_text_gives_windows_of_80_to_200_words_with_one_sentence_overlap() -> None:
    sentence = "The minister said on Monday that the talks would resume next week in Geneva. "
    article = Article(title="t", text=sentence * 60)
    passages = split_into_passages(article)
    assert len(passages) > 3
    for p in passages:
        assert len(p.text.split()) <= 200
    for p in passages[:-1]:
        assert len(p.text.split()) >= 80
    for a, b in itertools.pairwise(passages):
        assert b.start < a.end  # one sentence shared
        assert a.text.endswith(b.text[: b.text.index(".") + 1])


def test_token_budget_is_never_exceeded_even_for_a_monster_sentence() -> None:
    words = " ".join(f"mot{i}" for i in range(900)) + "."
    article = Article(title="t", text=f"Une phrase normale. {words} Une autre phrase.")

    def count(text: str) -> int:
        return len(text.split()) * 2 + 2

    passages = split_into_passages(article, count_tokens=count, max_tokens=128)
    assert len(passages) > 5
    for p in passages:
        assert count(p.text) <= 128
    covered = "".join(p.text for p in passages)
    assert "mot0" in covered and "mot899." in covered


def test_abbreviations_and_initials_do_not_end_sentences() -> None:
    text = "M. Poutine a parlé. Le Dr. Smith est venu. J. K. Rowling écrit. U.S. forces left."
    spans = [text[s.start : s.end] for s in sentence_spans(text)]
    assert spans == [
        "M. Poutine a parlé.",
        "Le Dr. Smith est venu.",
        "J. K. Rowling écrit.",
        "U.S. forces left.",
    ]


def test_sentences_glued_by_lost_paragraph_breaks_are_split() -> None:
    """Scraped news often loses the break between paragraphs ("incendie.Un homme"): each
    sentence must still be quotable on its own, while decimals, domains, initials and
    abbreviations stay whole."""
    text = (
        "Le feu serait parti d'une chambre.D'après le site Actu17, une cigarette serait en "
        'cause.Un homme est mort. "Que dire de ceux qui sont intervenus?".Le gouvernement a '
        'promis une enquête en 2021.C\'est la troisième.Il a dit "rien".Après tout, pourquoi '
        "pas ?Parmi eux, Then English...This matters."
    )
    assert [text[s.start : s.end] for s in sentence_spans(text)] == [
        "Le feu serait parti d'une chambre.",
        "D'après le site Actu17, une cigarette serait en cause.",
        "Un homme est mort.",
        '"Que dire de ceux qui sont intervenus?".',
        "Le gouvernement a promis une enquête en 2021.",
        "C'est la troisième.",
        'Il a dit "rien".',
        "Après tout, pourquoi pas ?",
        "Parmi eux, Then English...",
        "This matters.",
    ]
    whole = "M.Macron told the U.S.Army 3.5 times on lemonde.fr and node.JS, vs.Chelsea too."
    assert [whole[s.start : s.end] for s in sentence_spans(whole)] == [whole]


def test_real_token_budget_with_the_model_tokenizer(embedder) -> None:  # type: ignore[no-untyped-def]
    article = Article(title="t", text=("Mot " * 30 + "fin. ") * 40)
    for p in split_into_passages(article, embedder.count_tokens, 64):
        assert embedder.count_tokens(p.text) <= 64


def test_a_headline_only_article_still_gives_a_passage() -> None:
    article = Article(title="Detecting unusual oscillations", text="Detecting unusual oscillations")
    passages = split_into_passages(article)
    assert [p.text for p in passages] == ["Detecting unusual oscillations"]


def test_a_paragraph_break_always_ends_a_quote() -> None:
    from index.chunking import quote_spans

    text = (
        "Un bateau de croisière percute un quai à Venise\n\n"
        "Le bateau, long de 275 m, a percuté un quai dimanche matin. Quatre personnes ont "
        "été blessées.\n\nDes images montrent la panique sur le quai au moment du choc."
    )
    quotes = [text[a:b] for a, b in quote_spans(text, 0, len(text))]
    assert all("\n\n" not in q for q in quotes), quotes
    # The headline (a short line without final punctuation) is never a quote of its own.
    assert not any(q.startswith("Un bateau de croisière") for q in quotes)
    # A short sentence joins the next one of its own paragraph only.
    assert "Quatre personnes ont été blessées." in quotes
    assert quotes[-1] == "Des images montrent la panique sur le quai au moment du choc."


def test_a_headline_on_the_date_line_is_the_title_not_the_text() -> None:
    raw = (
        "date 2019-11-03 Yvette Lundy, figure de la Résistance française, est décédée à 103 ans"
        "\n\nRevenue du camp de Ravensbrück, elle a témoigné toute sa vie.\n\n/AFP\n"
    )
    article = parse_seed_text(raw)
    assert article.title.startswith("Yvette Lundy, figure de la Résistance")
    assert article.text.startswith("Revenue du camp")
    # A lead sentence on the date line (the seed's shape) stays in the text.
    lead = parse_seed_text("date 2023-09 Le Kremlin a démenti.\n\nAucun accord.\n\n/ATS\n")
    assert lead.text.startswith("Le Kremlin a démenti.")


class _Meter:
    """A subword-like token counter (a token per 4 characters of each word, plus 2) that
    adds up the characters it is given: the work chunking costs, whatever the clock says."""

    def __init__(self) -> None:
        self.characters = 0

    def __call__(self, text: str) -> int:
        self.characters += len(text)
        return sum((len(word) + 3) // 4 for word in text.split()) + 2


class _MeteredText(str):
    """A text that adds up the characters sliced out of it."""

    sliced = 0

    def __getitem__(self, key):  # type: ignore[no-untyped-def]
        part = str.__getitem__(self, key)
        type(self).sliced += len(part)
        return part


# Texts the old chunker took minutes to hours on (~200,000 characters each).
HOSTILE = {
    "no full stop": " ".join(f"mot{i}" for i in range(25_000)),
    "short sentences": "Oui. " * 40_000,
    "long runs of spaces and newlines": ("Oui." + " \n" * 498 + " ") * 200,
    "a line of dots": "." * 200_000,
    "a line of dots then a word": "Suite" + "." * 200_000 + "fin",
    "initials": "a. b. c. " * 22_000,
    "one 300,000-character word": "x" * 300_000,
    "only headings": "\n\n".join(f"Titre numéro {i}" for i in range(10_000)),
}


def _assert_budget_and_coverage(
    article: Article, passages: list, count: Callable[[str], int], max_tokens: int
) -> None:
    """Every passage within its budget; every character of the text's words in a passage,
    passages in order. A heading-only text is all text."""
    text = article.text
    for p in passages:
        budget = max_tokens - count(p.heading) - 8 if p.heading else max_tokens - 4
        assert count(p.text) <= budget, (p.start, p.end, count(p.text), budget)
    assert [p.start for p in passages] == sorted(p.start for p in passages)
    covered = [False] * len(text)
    for p in passages:
        covered[p.start : p.end] = [True] * (p.end - p.start)
    spans = paragraph_spans(text)
    all_headings = all(is_heading(text[start:end]) for start, end in spans)
    for start, end in spans:
        if is_heading(text[start:end]) and not all_headings:
            continue
        missing = [i for i in range(start, end) if not covered[i] and not text[i].isspace()]
        assert not missing, (missing[:5], len(missing))


@pytest.mark.parametrize("shape", HOSTILE)
def test_chunking_work_is_linear_in_the_text_length_whatever_its_shape(shape: str) -> None:
    article = Article(title="t", text=HOSTILE[shape])
    meter = _Meter()
    passages = split_into_passages(article, meter, 512)
    assert passages
    assert meter.characters <= 6 * len(article.text), meter.characters / len(article.text)
    _assert_budget_and_coverage(article, passages, _Meter(), 512)


def test_abbreviations_are_checked_without_rereading_the_sentence() -> None:
    """Thousands of initials and abbreviations, none ending the sentence: deciding on each
    dot reads a few characters back, never the whole sentence so far."""
    text = _MeteredText("a. b. c. M. Dr. " * 2_000)
    _MeteredText.sliced = 0
    spans = sentence_spans(text)
    assert len(spans) == 1
    assert _MeteredText.sliced <= 4 * len(text)


def test_a_word_over_the_budget_is_cut_between_characters() -> None:
    word = "anticonstitutionnellement" * 400
    article = Article(title="t", text=f"Une phrase normale. Le mot {word} et la fin.")
    meter = _Meter()
    passages = split_into_passages(article, meter, 64)
    _assert_budget_and_coverage(article, passages, meter, 64)
    start = article.text.index(word)
    cuts = [p.start for p in passages if start < p.start < start + len(word)]
    assert len(cuts) > 10


@pytest.mark.parametrize("shape", HOSTILE)
def test_hostile_texts_fit_the_real_tokenizer(embedder, shape: str) -> None:  # type: ignore[no-untyped-def]
    article = Article(title="t", text=HOSTILE[shape][:20_000])
    passages = split_into_passages(article, embedder.count_tokens, embedder.max_tokens)
    _assert_budget_and_coverage(article, passages, embedder.count_tokens, embedder.max_tokens)


def _greedy_reference(
    text: str, count: Callable[[str], int], budget: int, target: int, most: int
) -> list[tuple[int, int]]:
    """The cut as specified, one count per word or sentence added (slow, obviously right):
    a sentence over the budget becomes the longest runs of words that fit; a window grows
    by whole sentences to the target, never past `most` words or the budget; a short tail
    joins the last window; the next window repeats the last sentence when the pair fits."""
    pieces: list[tuple[int, int]] = []
    for start, end in paragraph_spans(text):
        for s in sentence_spans(text, start, end):
            words = [(m.start(), m.end()) for m in re.finditer(r"\S+", text[: s.end])]
            words = [(a, b) for a, b in words if a >= s.start]
            first = 0
            for i in range(1, len(words)):
                if count(text[words[first][0] : words[i][1]]) > budget:
                    pieces.append((words[first][0], words[i - 1][1]))
                    first = i
            pieces.append((words[first][0], words[-1][1]))
    size = [len(text[a:b].split()) for a, b in pieces]
    windows: list[tuple[int, int]] = []
    i = 0
    while i < len(pieces):
        j = i
        while (
            j + 1 < len(pieces)
            and sum(size[i : j + 1]) < target
            and sum(size[i : j + 2]) <= most
            and count(text[pieces[i][0] : pieces[j + 1][1]]) <= budget
        ):
            j += 1
        windows.append((pieces[i][0], pieces[j][1]))
        if j + 1 == len(pieces):
            break
        if (
            sum(size[j + 1 :]) < 40
            and sum(size[i:]) <= most
            and count(text[pieces[i][0] : pieces[-1][1]]) <= budget
        ):
            windows[-1] = (pieces[i][0], pieces[-1][1])
            break
        pair_fits = (
            size[j] + size[j + 1] <= most and count(text[pieces[j][0] : pieces[j + 1][1]]) <= budget
        )
        i = j if j > i and pair_fits else j + 1
    return windows


@pytest.mark.parametrize("seed", range(40))
def test_passages_are_the_greedy_windows_of_the_specification(seed: int) -> None:
    """The fast cut gives exactly the windows of the word-by-word one it replaced."""
    rng = random.Random(seed)
    vocabulary = ["le", "gouvernement", "a", "dit", "M.", "Paris", "3,5", "«", "»", "x" * 12]
    sentences = [  # none a heading: a heading would start a section of its own
        " ".join(["Le", *rng.choices(vocabulary, k=rng.choice([1, 3, 8, 20, 60, 200]))]) + "."
        for _ in range(rng.randint(1, 60))
    ]
    text = "".join(s + rng.choice([" ", " ", "\n\n"]) for s in sentences).strip()
    max_tokens, target, most = rng.choice([(512, 150, 200), (128, 150, 200), (64, 20, 40)])
    got = split_into_passages(Article(title="t", text=text), _Meter(), max_tokens, target, most)
    want = _greedy_reference(text, _Meter(), max_tokens - 4, target, most)
    assert [(p.start, p.end) for p in got] == want
