"""A month or a day named in a question restricts the answer to articles of that date."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.config import Settings
from bot.engine import Engine
from bot.render import render_answer
from index.dates import Period, question_period
from index.search import SearchFilters


@pytest.mark.parametrize(
    ("question", "since", "until"),
    [
        ("What did Peskov say in September 2023?", "2023-09", "2023-09"),
        ("Qu'a dit Peskov le 1er mars 2024 ?", "2024-03-01", "2024-03-01"),
        ("Was geschah am 5. März 2024?", "2024-03-05", "2024-03-05"),
        ("¿Qué pasó el 5 de marzo de 2024?", "2024-03-05", "2024-03-05"),
        ("What happened on March 5th, 2024?", "2024-03-05", "2024-03-05"),
        ("news of sept. 2023 about the strike", "2023-09", "2023-09"),
        ("anything from 2024-03?", "2024-03", "2024-03"),
        ("between September 2023 and March 2024", "2023-09", "2024-03"),
        ("entre le 2 mai 2024 et le 30 juin 2024", "2024-05-02", "2024-06-30"),
    ],
)
def test_dates_named_in_questions(question: str, since: str, until: str) -> None:
    assert question_period(question) == Period(since, until)


@pytest.mark.parametrize(
    "question",
    [
        "Who won the 2018 World Cup?",  # a year alone names the subject, not the date
        "May I ask who signed the accord?",
        "What did the mayor say?",
        "Who scored 2024 points in 31 games?",
        "2024-13 is not a month",
    ],
)
def test_no_date_is_read_where_none_is_named(question: str) -> None:
    assert question_period(question) is None


def test_an_impossible_day_keeps_only_its_month() -> None:
    assert question_period("on 31 February 2024") == Period("2024-02", "2024-02")


def _record(date: str, text: str) -> dict[str, str]:
    return {
        "title": f"Port strike ({date})",
        "text": text,
        "source": "Wire",
        "date": date,
        "url": f"https://wire.test/strike-{date}",
        "lang": "en",
    }


SEPTEMBER = _record(
    "2023-09-14",
    "Dock workers in Antwerp went on strike on Thursday over pay, and the union leader "
    "Marc Peeters said the port would stay closed until the employers made a new offer.",
)
MARCH = _record(
    "2024-03-07",
    "Dock workers in Antwerp walked out again on Thursday, and the union leader Marc "
    "Peeters said the strike would last until the employers improved their pay offer.",
)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path, embedder) -> Engine:  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("dates")
    (root / "articles").mkdir()
    (root / "articles" / "strikes.jsonl").write_text(
        "\n".join(json.dumps(r) for r in (SEPTEMBER, MARCH)) + "\n", encoding="utf-8"
    )
    settings = Settings(_env_file=None, data_dir=root, cache_dir=cache_dir)  # type: ignore[call-arg]
    engine = Engine(settings, embedder=embedder)
    engine.ingest([root / "articles"])
    return engine


def test_a_named_month_cites_only_that_months_articles(engine: Engine) -> None:
    plain, september, march = engine.ask(
        [
            "What did the union leader say about the Antwerp port strike?",
            "What did the union leader say about the Antwerp port strike in September 2023?",
            "Qu'a dit le syndicaliste sur la grève du port d'Anvers en mars 2024 ?",
        ]
    )
    assert plain.answered and plain.period is None
    assert {c.date for c in plain.citations} == {"2023-09-14", "2024-03-07"}
    assert september.answered and september.period == Period("2023-09", "2023-09")
    assert [c.date for c in september.citations] == ["2023-09-14"]
    assert march.answered and [c.date for c in march.citations] == ["2024-03-07"]


def test_a_date_no_article_answers_falls_back_to_other_dates_and_says_so(
    engine: Engine,
) -> None:
    # The date may be the subject's, not the article's: answer from any date, and say so.
    question = "What did the union leader say about the Antwerp port strike in May 2025?"
    (answer,) = engine.ask([question])
    assert answer.answered and answer.period == Period("2025-05", "2025-05")
    assert not answer.dated and answer.citations
    assert answer.to_json()["period"] == {"since": "2025-05", "until": "2025-05", "found": False}
    english = render_answer(answer, "en")[0]
    assert english.startswith("Nothing dated 2025-05 answers this; from other dates:")
    assert "Rien de daté 2025-05" in render_answer(answer, "fr")[0]


def test_a_dated_question_nothing_answers_names_the_date(engine: Engine) -> None:
    (answer,) = engine.ask(["Who won the chess world championship in May 2025?"])
    assert not answer.answered and not answer.citations and not answer.dated
    assert "dated 2025-05" in render_answer(answer, "en")[0]
    assert "datés 2025-05" in render_answer(answer, "fr")[0]


def test_explicit_dates_win_over_the_questions(engine: Engine) -> None:
    filters = SearchFilters(since="2024-01")
    question = "What did the union leader say about the Antwerp port strike in September 2023?"
    (answer,) = engine.ask([question], filters)
    assert answer.period is None  # the caller's dates are used, the question's ignored
    assert [c.date for c in answer.citations] == ["2024-03-07"]
