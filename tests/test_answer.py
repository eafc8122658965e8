"""Answers: evidence is measured against the question's background similarity."""

from __future__ import annotations

import dataclasses

import pytest

from bot.answer import (
    BACKGROUND_WEIGHT,
    SECOND_QUOTE_MARGIN,
    QuoteCandidate,
    best_evidence,
    compose_answer,
    runners_up,
    score_quotes,
)
from index.articles import Article
from index.search import (
    BACKGROUND_FROM,
    BACKGROUND_PRIOR,
    BACKGROUND_PRIOR_WEIGHT,
    POOL,
    Hit,
    Retrieval,
    Retriever,
    StoredPassage,
    background,
)
from index.store import Store

TOPICS = [
    "The city council of Lyon voted a new budget for schools and public transport.",
    "A storm knocked trees down across Brittany and closed several coastal roads.",
    "The national football team won its qualifying match three goals to one.",
    "Researchers described a new species of frog found in the Andes mountains.",
    "The central bank kept its interest rates unchanged for a third month.",
    "A new exhibition of impressionist paintings opened at the city museum.",
    "Train drivers went on strike over pay, cancelling half of the regional trains.",
    "The health ministry launched a vaccination campaign against seasonal flu.",
    "Wine growers expect a small harvest after a spring frost damaged the vines.",
    "A start-up raised ten million euros to build electric delivery bikes.",
    "The parliament adopted a law limiting plastic packaging in supermarkets.",
    "Firefighters contained a forest fire that burned two hundred hectares.",
    "The tennis champion withdrew from the tournament with a knee injury.",
    "Astronomers observed a comet passing close to the Earth this week.",
    "Farmers blocked a motorway to protest against falling milk prices.",
    "A cyber attack disrupted the computer systems of a regional hospital.",
]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, embedder) -> Store:  # type: ignore[no-untyped-def]
    store = Store(
        tmp_path_factory.mktemp("answer"), embedder.model_id, embedder.dim, embed_quotes=False
    )
    store.add_articles(
        [
            Article(title=f"Story {n}", text=text, source="Test", date="2024-05-01", lang="en")
            for n, text in enumerate(TOPICS)
        ],
        embedder,
    )
    return store


def test_background_is_the_tail_of_the_ranking_shrunk_to_the_prior() -> None:
    assert background([]) == pytest.approx(BACKGROUND_PRIOR)  # nothing known: the prior
    head = [(i, 0.95) for i in range(BACKGROUND_FROM)]  # the best ranks never count
    assert background(head) == pytest.approx(BACKGROUND_PRIOR)
    tail = [(100 + i, 0.60) for i in range(POOL)]  # only ranks BACKGROUND_FROM..POOL count
    n = POOL - BACKGROUND_FROM
    expected = (0.60 * n + BACKGROUND_PRIOR * BACKGROUND_PRIOR_WEIGHT) / (
        n + BACKGROUND_PRIOR_WEIGHT
    )
    assert background(head + tail) == pytest.approx(expected)


def test_retrieval_carries_the_questions_background(store: Store, embedder) -> None:  # type: ignore[no-untyped-def]
    question = "Which storm closed roads in Brittany?"
    retrieval = Retriever(store, embedder).retrieve_many([question], k=3)[0]
    dense = store.search_vectors(embedder.embed_queries([question]), POOL)[0]
    assert len(dense) == len(TOPICS) > BACKGROUND_FROM
    assert retrieval.background == pytest.approx(background(dense))
    assert retrieval.background < BACKGROUND_PRIOR  # unrelated stories: a low background


def test_evidence_is_measured_against_the_background(store: Store, embedder) -> None:  # type: ignore[no-untyped-def]
    retrieval = Retriever(store, embedder).retrieve_many(["Which storm closed roads?"], k=3)[0]
    low = dataclasses.replace(retrieval, background=0.70)
    high = dataclasses.replace(retrieval, background=0.80)
    low_best = best_evidence(score_quotes(low, store, embedder))
    high_best = best_evidence(score_quotes(high, store, embedder))
    assert low_best - high_best == pytest.approx(BACKGROUND_WEIGHT * 0.10)
    floor = (low_best + high_best) / 2
    # The same quote answers a question that finds little else similar, and is refused
    # for one that finds everything about as similar.
    answered = compose_answer(low, store, embedder, floor=floor)
    refused = compose_answer(high, store, embedder, floor=floor)
    assert answered.answered and "storm" in answered.answer
    assert not refused.answered and not refused.citations


VENICE = (
    "Un paquebot heurte un quai à Venise\n\n"
    "Le MSC Opera, un bateau de croisière long de 275 mètres, a percuté dimanche matin un "
    "quai du canal de la Giudecca à Venise. Quatre personnes ont été blessées. Des images "
    "montrent des touristes qui fuient le long du quai au moment du choc.\n\n"
    "Le maire de la ville réclame depuis des années que les grands navires soient éloignés "
    "du centre historique."
)


@pytest.fixture(scope="module")
def venice(tmp_path_factory: pytest.TempPathFactory, embedder) -> Store:  # type: ignore[no-untyped-def]
    store = Store(tmp_path_factory.mktemp("venice"), embedder.model_id, embedder.dim)
    articles = [
        Article(title=f"Story {n}", text=text, source="Test", date="2019-06-02", lang="en")
        for n, text in enumerate(TOPICS)
    ]
    articles.append(
        Article(title="Venise", text=VENICE, source="ATS", date="2019-06-02", lang="fr")
    )
    store.add_articles(articles, embedder)
    return store


def _ask(store: Store, embedder, question: str):  # type: ignore[no-untyped-def]
    retrieval = Retriever(store, embedder).retrieve_many([question], k=3)[0]
    return compose_answer(retrieval, store, embedder, floor=0.0)


def test_the_quote_answers_rather_than_restates(venice: Store, embedder) -> None:  # type: ignore[no-untyped-def]
    question = "How many people were hurt when a cruise liner struck a quay in Venice?"
    retrieval = Retriever(venice, embedder).retrieve_many([question], k=3)[0]
    scored = score_quotes(retrieval, venice, embedder)
    by_similarity = max(scored, key=lambda c: c.evidence)
    assert by_similarity.quote.startswith("Le MSC Opera")  # the restating sentence
    answer = compose_answer(retrieval, venice, embedder, floor=0.0)
    assert answer.answered
    assert "Quatre personnes ont été blessées." in answer.citations[0].quote
    assert "\n" not in answer.citations[0].quote


def test_a_near_miss_gets_no_source(venice: Store, embedder) -> None:  # type: ignore[no-untyped-def]
    # The article is on the topic, but gives no sum and nothing of 2012.
    assert not _ask(
        venice, embedder, "How much did the repairs to the quay in Venice cost?"
    ).answered
    assert not _ask(venice, embedder, "How many people were hurt in Venice in 2012?").answered
    assert _ask(venice, embedder, "How many people were hurt in Venice in 2019?").answered


def _candidates(text: str, scores: list[float]) -> tuple[Retrieval, list[QuoteCandidate]]:
    """One article's sentences as scored quote candidates (the quote model's log-odds given)."""
    import numpy as np

    from index.chunking import sentence_spans

    article = Article(title="Port", text=text, source="Test", date="2024-05-01", lang="en")
    passage = StoredPassage(1, article, 0, "", text, 0, len(text), story_id="s1")
    hit = Hit(passage, 0.9)
    spans = sentence_spans(text, 0, len(text))
    assert len(spans) == len(scores)
    scored = [
        QuoteCandidate(hit, span.start, span.end, 0.5, score, frozenset())
        for span, score in zip(spans, scores, strict=True)
    ]
    return Retrieval("What happened at the port?", np.zeros(4, np.float32), [hit]), scored


PORT = (
    "A cargo ship ran aground at the port on Monday.\n\n"
    "The harbour master closed two quays for the day.\n\n"
    "Three tugs freed the ship at high tide."
)


def test_a_close_runner_up_of_the_same_article_is_quoted_next() -> None:
    retrieval, scored = _candidates(PORT, [0.2, 2.0, 1.7])
    answer = compose_answer(retrieval, None, None, floor=0.0, scored=scored)  # type: ignore[arg-type]
    assert [c.quote for c in answer.citations] == [
        "The harbour master closed two quays for the day.",
        "Three tugs freed the ship at high tide.",
    ]
    assert {c.article_id for c in answer.citations} == {answer.citations[0].article_id}
    # A clear best sentence is quoted alone.
    retrieval, scored = _candidates(PORT, [0.2, 2.0, 2.0 - SECOND_QUOTE_MARGIN - 0.1])
    answer = compose_answer(retrieval, None, None, floor=0.0, scored=scored)  # type: ignore[arg-type]
    assert [c.quote for c in answer.citations] == [
        "The harbour master closed two quays for the day."
    ]


def test_the_runner_up_is_neither_the_quote_nor_a_sentence_it_already_holds() -> None:
    _, scored = _candidates(PORT, [1.9, 2.0, 0.0])
    best = max(scored, key=lambda c: c.score)
    ranked = sorted(scored, key=lambda c: -c.score)
    runners = runners_up(best, ranked, SECOND_QUOTE_MARGIN, 2)
    assert [c.quote for c in runners] == ["A cargo ship ran aground at the port on Monday."]
    joined = dataclasses.replace(best, start=scored[0].start)  # the quote holds both
    assert runners_up(joined, ranked, SECOND_QUOTE_MARGIN, 2) == []


def test_two_close_runners_up_are_quoted_best_first_and_no_more() -> None:
    text = PORT + "\n\nNobody was hurt."
    retrieval, scored = _candidates(text, [2.0 - SECOND_QUOTE_MARGIN + 0.1, 2.0, 1.8, 1.9])
    answer = compose_answer(retrieval, None, None, floor=0.0, scored=scored)  # type: ignore[arg-type]
    assert [c.quote for c in answer.citations] == [
        "The harbour master closed two quays for the day.",
        "Nobody was hurt.",
        "Three tugs freed the ship at high tide.",
    ]


def test_runners_up_that_are_adjacent_sentences_are_one_quote() -> None:
    text = (
        "A cargo ship ran aground at the port on Monday.\n\n"
        "The harbour master closed two quays. Three tugs freed the ship at high tide. "
        "Nobody was hurt."
    )
    retrieval, scored = _candidates(text, [2.0, 0.0, 1.8, 1.7])
    answer = compose_answer(retrieval, None, None, floor=0.0, scored=scored)  # type: ignore[arg-type]
    assert [c.quote for c in answer.citations] == [
        "A cargo ship ran aground at the port on Monday.",
        "Three tugs freed the ship at high tide. Nobody was hurt.",
    ]
