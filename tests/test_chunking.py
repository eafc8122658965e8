"""Chunking invariants: whole sentences, sizes, overlap, headings, offsets, token budget."""

from __future__ import annotations

import itertools

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
