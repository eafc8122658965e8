"""The question-answering bench scores quotes by their keys and refusals by "no source"."""

from __future__ import annotations

from bench.qa import question_category, score_answers
from bot.answer import NO_SOURCE, Answer, Citation


def _answer(question: str, *quotes: str, article: str = "a1") -> Answer:
    citations = [
        Citation(n, article, "T", "S", "2020-01", None, quote, 0.5)
        for n, quote in enumerate(quotes, start=1)
    ]
    if not citations:
        return Answer(question, False, NO_SOURCE)
    return Answer(question, True, quotes[0], citations)


QUESTIONS = [
    {
        "id": "en-fr-01",
        "question": "q1",
        "answerable": True,
        "gold_file": "f1.txt",
        "answer_keys": ["Quatre personnes", "4 blessés"],
    },
    {
        "id": "fr-01",
        "question": "q2",
        "answerable": True,
        "gold_file": "f1.txt",
        "answer_keys": ["17 millions"],
    },
    {
        "id": "hard-01",
        "question": "q3",
        "answerable": True,
        "gold_file": "f2.txt",
        "answer_keys": ["Rehovot"],
    },
    {
        "id": "neg-01",
        "question": "q4",
        "answerable": False,
        "gold_file": None,
        "answer_keys": [],
        "notes": "near-miss: f1.txt - not said",
    },
    {
        "id": "neg-02",
        "question": "q5",
        "answerable": False,
        "gold_file": None,
        "answer_keys": [],
        "notes": "off-topic: nothing",
    },
]


def test_keys_count_in_the_first_three_quotes_and_refusals_only_without_quotes() -> None:
    answers = [
        _answer("q1", "Quatre personnes ont été blessées.", "Autre chose."),  # first quote
        _answer("q2", "Le club a signé.", "Un autre.", "Pour 17 millions d'euros.", "x"),  # 3rd
        _answer("q3", "a", "b", "c", "Né à Rehovot."),  # only in the 4th: not counted
        _answer("q4"),  # refused
        _answer("q5", "Une phrase quelconque."),  # answered an unanswerable question
    ]
    score = score_answers(QUESTIONS, answers, {"a1": "f1.txt"})
    assert (score.answerable, score.with_key, score.key_first, score.gold_first) == (3, 2, 1, 2)
    assert (score.unanswerable, score.refused) == (2, 1)
    assert score.by_category["near-miss"] == [1, 1]
    assert score.by_category["off-topic"] == [0, 1]
    assert score.by_category["hard"] == [0, 1]
    # Quoted characters: per answered question, over its first three quotes.
    assert score.quoted_chars[0] == len("Quatre personnes ont été blessées.Autre chose.")
    assert len(score.quoted_chars) == 4


def test_categories_come_from_the_id_and_the_notes() -> None:
    assert [question_category(q) for q in QUESTIONS] == [
        "en-fr",
        "fr",
        "hard",
        "near-miss",
        "off-topic",
    ]
