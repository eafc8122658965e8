"""'Latest news' questions prefer recent articles, but never over more relevant ones."""

from __future__ import annotations

from pathlib import Path

from index.articles import Article
from index.search import Retriever, asks_for_latest
from index.store import Store

OLD = Article(
    title="Rhine floods",
    text="The Rhine burst its banks in Cologne after days of heavy rain, flooding the old "
    "town and forcing hundreds of residents to leave their homes.",
    source="Wire",
    date="2021-07-15",
    url="https://wire.test/rhine-2021",
)
NEW = Article(
    title="Rhine floods again",
    text="Hundreds of residents left their homes in Cologne on Sunday as the river rose "
    "again after days of rain and water reached the old town.",
    source="Wire",
    date="2024-06-02",
    url="https://wire.test/rhine-2024",
)
UNRELATED_NEWER = Article(
    title="Chess final",
    text="The world chess championship final ended in a draw after seven hours of play in "
    "Singapore on Sunday.",
    source="Wire",
    date="2025-01-10",
    url="https://wire.test/chess",
)


def test_latest_questions_are_recognised_in_several_languages() -> None:
    for q in (
        "What's the latest on the Rhine floods?",
        "Dernières nouvelles du Rhin ?",
        "neueste Meldungen zum Hochwasser",
        "últimas noticias",
    ):
        assert asks_for_latest(q), q
    assert not asks_for_latest("Where did the Rhine flood?")


def test_latest_prefers_the_newer_of_equally_relevant_articles(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    store = Store(tmp_path, embedder.model_id, embedder.dim)
    store.add_articles([OLD, NEW, UNRELATED_NEWER], embedder)
    retriever = Retriever(store, embedder, k=3)
    question = "latest news on the Rhine floods in Cologne"
    by_relevance = Retriever(store, embedder, k=3).search(question.replace("latest ", ""))
    assert by_relevance[0].passage.article.id == OLD.id  # the older one reads closer …
    latest = retriever.search(question)
    assert latest[0].passage.article.id == NEW.id  # … but the reader asked for the latest
    assert latest[-1].passage.article.id == UNRELATED_NEWER.id  # recency never beats relevance
    plain = retriever.search("When did the Rhine flood Cologne's old town?")
    assert {h.passage.article.id for h in plain[:2]} == {OLD.id, NEW.id}
    assert plain[-1].passage.article.id == UNRELATED_NEWER.id
