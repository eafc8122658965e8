"""Corroboration: a cited article's story, its sources, languages and days, wire copies
counted once; on a real index (SQLite, FAISS, the bundled model) and rendered."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.answer import Answer, Citation
from bot.corroboration import Corroboration, Dispatch, are_copies, corroboration, shingles
from bot.digest import compose_digest
from bot.engine import Engine
from bot.render import date_span, message_units, render_answer, render_citation, render_story
from bot.state import Subscription
from tests.story_news import FERRY, FERRY_COPY, FERRY_FR, FERRY_TEXT, STORIES, TRAIN
from tests.telegram.bot_harness import engine_for, engine_on_backend, make_data_dir


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def engine(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    cache_dir: Path,
    embedder: Any,
) -> Iterator[Engine]:
    """The stories indexed in each backend: SQLite + FAISS files, or PostgreSQL."""
    root = tmp_path_factory.mktemp("corroboration")
    with engine_on_backend(request, root, cache_dir, embedder, STORIES) as engine:
        yield engine


def article_id(engine: Engine, record: dict[str, str]) -> str:
    found = engine.store.find_article(record["url"])
    assert found is not None
    return found.id


def test_a_story_counts_one_dispatch_once_and_another_language_apart(engine: Engine) -> None:
    ferry, copy, french = (article_id(engine, r) for r in (FERRY, FERRY_COPY, FERRY_FR))
    story = corroboration(engine.store, ferry)
    assert story is not None
    assert story.article_ids[0] == ferry and set(story.article_ids) == {ferry, copy, french}
    assert story.sources == ("Coast Wire", "Le Courrier du Port")  # Harbour Daily: a copy
    assert set(story.languages) == {"en", "fr"}
    assert (story.first_date, story.last_date) == ("2024-07-10", "2024-07-11")
    assert story.copies == (Dispatch((ferry, copy), ("Coast Wire", "Harbour Daily")),)
    # From the French article, the same story: its own source first.
    from_french = corroboration(engine.store, french)
    assert from_french is not None and from_french.sources[0] == "Le Courrier du Port"
    assert set(from_french.article_ids) == set(story.article_ids)


def test_another_story_of_the_same_day_is_not_counted(engine: Engine) -> None:
    train = article_id(engine, TRAIN)
    story = corroboration(engine.store, train)
    assert story is not None
    assert story.article_ids == (train,) and story.sources == ("Rail News",)
    assert story.copies == () and story.languages == ("en",)
    assert corroboration(engine.store, "no-such-article") is None


def test_every_citation_of_an_answer_carries_its_story(engine: Engine) -> None:
    (answer,) = engine.ask(["Why did the ferry crash into the quay in Marseille?"])
    assert answer.answered
    for citation in answer.citations:
        assert citation.story is not None
        assert citation.story.article_ids[0] == citation.article_id
        assert len(citation.story.sources) == 2
    assert answer.to_json()["citations"][0]["story"]["sources"]  # type: ignore[index]


def test_copies_are_near_identical_texts_not_the_same_news_retold() -> None:
    retold = (
        "A ferry from Corsica hit a quay in Marseille on Wednesday after its engines failed, "
        "injuring four passengers, port officials said."
    )
    assert are_copies(shingles(FERRY_TEXT), shingles(FERRY_COPY["text"]))
    assert not are_copies(shingles(FERRY_TEXT), shingles(FERRY_FR["text"]))
    assert not are_copies(shingles(FERRY_TEXT), shingles(retold))
    assert not are_copies(shingles(""), shingles(FERRY_TEXT))


@pytest.mark.parametrize(
    ("first", "last", "english", "french"),
    [
        ("2023-09-12", "2023-09-14", "12–14 Sept 2023", "12–14 sept. 2023"),
        ("2023-08-30", "2023-09-02", "30 Aug – 2 Sept 2023", "30 août – 2 sept. 2023"),
        ("2023-12-31", "2024-01-01", "31 Dec 2023 – 1 Jan 2024", "31 déc. 2023 – 1 janv. 2024"),
        ("2024-07-10", "2024-07-10", "10 July 2024", "10 juil. 2024"),
        ("2013-10", "2013-10", "Oct 2013", "oct. 2013"),
        ("2013-10", "2013-11-01", "Oct 2013 – 1 Nov 2013", "oct. 2013 – 1 nov. 2013"),
        # A month-only date and a day within that month: the month (not "July – 11 July").
        ("2024-07", "2024-07-11", "July 2024", "juil. 2024"),
        ("2024", "2024-03-02", "2024", "2024"),
        (None, None, "", ""),
    ],
)
def test_dates_are_written_as_a_reader_says_them(
    first: str | None, last: str | None, english: str, french: str
) -> None:
    assert date_span(first, last, "en") == english
    assert date_span(first, last, "fr") == french


def test_the_story_line_names_copies_and_escapes_sources() -> None:
    story = Corroboration(
        article_ids=("a", "b", "c", "d", "e"),
        sources=("ATS", "Le <b>Monde</b>"),
        languages=("fr", "en", "de"),
        first_date="2023-09-12",
        last_date="2023-09-14",
        dispatches=(
            Dispatch(("a", "b", "c"), ("ATS", "Le Temps", "24 heures")),
            Dispatch(("d",), ("Le <b>Monde</b>",)),
            Dispatch(("e", "f"), ("Le <b>Monde</b>",)),
        ),
    )
    line = render_story(story, "en")
    assert line.startswith("Story: 2 sources, 3 languages, 12–14 Sept 2023")
    assert "ATS, Le Temps, 24 heures: copies of one dispatch, counted once" in line
    assert "Le &lt;b&gt;Monde&lt;/b&gt; ×2: copies of one dispatch" in line
    assert "<b>" not in line
    lone = Corroboration(("a",), ("ATS",), (), "2023-09", "2023-09", (Dispatch(("a",), ("ATS",)),))
    assert render_story(lone, "fr") == "Sujet : 1 source, 1 langue, sept. 2023"


def test_a_long_quote_is_shortened_so_the_story_line_still_fits() -> None:
    story = Corroboration(
        ("a", "b"), ("ATS",), ("fr",), "2023-09-12", "2023-09-13",
        (Dispatch(("a", "b"), ("ATS", "Le Temps")),),
    )  # fmt: skip
    citation = Citation(1, "a", "Title", "ATS", "2023-09-12", None, "Mot " * 3000, 0.5, story)
    rendered = render_citation(citation, limit=1000)
    assert message_units(rendered) <= 1000
    assert rendered.endswith(
        "…</blockquote>\n<i>Story: 1 source, 1 language, 12–13 Sept 2023 · ATS, Le Temps: "
        "copies of one dispatch, counted once</i>"
    )


def test_a_story_told_by_two_citations_is_described_once() -> None:
    ferry = Corroboration(
        ("a", "b"), ("Coast Wire", "Le Courrier"), ("en", "fr"), "2024-07-10", "2024-07-11",
        (Dispatch(("a",), ("Coast Wire",)), Dispatch(("b",), ("Le Courrier",))),
    )  # fmt: skip
    from_b = dataclasses.replace(
        ferry, article_ids=("b", "a"), sources=("Le Courrier", "Coast Wire")
    )
    train = Corroboration(("c",), ("Rail",), ("en",), "2024-07-10", "2024-07-10", ())
    citations = [
        Citation(1, "a", "Ferry", "Coast Wire", "2024-07-10", None, "A ferry hit.", 0.5, ferry),
        Citation(2, "c", "Train", "Rail", "2024-07-10", None, "A train left.", 0.5, train),
        Citation(3, "b", "Ferry", "Le Courrier", "2024-07-11", None, "Un ferry.", 0.5, from_b),
    ]
    answer = Answer("q?", True, "A ferry hit.", citations)
    (english,) = render_answer(answer, "en")
    assert english.count("Story: 2 sources, 2 languages") == 1
    assert "<i>Story: 1 source, 1 language, 10 July 2024</i>" in english
    assert english.endswith("<i>Story: the same as 1.</i>")
    (french,) = render_answer(answer, "fr")
    assert french.endswith("<i>Sujet : le même qu'en 1.</i>")


def test_one_outlet_written_two_ways_is_one_source(
    tmp_path: Path, cache_dir: Path, embedder: Any
) -> None:
    # Feeds and files name one outlet as they like ("Coast Wire", "COAST WIRE", "coast
    # wire "): it is one source, not three, and its copies are its own (×2).
    records = [
        FERRY,
        {**FERRY_COPY, "source": "COAST WIRE"},
        {**FERRY_FR, "source": " coast  wire "},
    ]
    engine = engine_for(make_data_dir(tmp_path, records, seed=False), cache_dir, embedder)
    try:
        story = corroboration(engine.store, article_id(engine, FERRY))
        assert story is not None and len(story.article_ids) == 3
        assert story.sources == ("Coast Wire",)
        assert story.copies[0].sources == ("Coast Wire",)
        assert render_story(story, "en").startswith(
            "Story: 1 source, 2 languages, 10–11 July 2024 · Coast Wire ×2: copies"
        )
    finally:
        engine.close()


def test_a_digest_tells_a_story_and_its_translation_once(engine: Engine) -> None:
    # The ferry crash in English (and a copy) and in French is one story: a digest quotes
    # it once, not once per language.
    ferry = Subscription(1, 1, "private", "ferry accident in Marseille", False)
    items, matched = compose_digest(
        engine.store, engine.embedder, engine.settings, [ferry], 0.0, time.time()
    )
    assert [item.citation.url for item in items] == [FERRY["url"]]
    assert matched == 1
