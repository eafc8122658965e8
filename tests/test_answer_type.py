"""What a question asks for, and which sentences hold it (bot/answer_type.py)."""

from __future__ import annotations

import sys

import pytest

from bot.answer_type import (
    CAUSE,
    DATE,
    MONEY,
    OTHER,
    PERSON,
    PLACE,
    QUANTITY,
    expected_answer_type,
    fold,
    sentence_facts,
    sentence_types,
    specifics,
)


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("How many people were hurt when a cruise liner struck a quay in Venice?", QUANTITY),
        ("Combien de décès la cigarette provoque-t-elle par an en France ?", QUANTITY),
        ("What fee did Cardiff City pay to sign Emiliano Sala?", MONEY),
        ("Quel est le montant du chèque remis aux lauréats du Nobel ?", MONEY),
        ("Which NASA researcher commented on the study?", PERSON),
        ("Qui a nié la signature d'un accord ?", PERSON),
        ("In which Israeli town was Eliezer Sherbatov born?", PLACE),
        ("Dans quel pays d'Asie centrale a-t-il joué ?", PLACE),
        ("Since what year had the reliquary been held at the museum?", DATE),
        ("À quelle date les sites ont-ils rouvert ?", DATE),
        ("Why did the sonar come through the fire undamaged?", CAUSE),
        ("Pourquoi est-il impossible de surveiller la réserve ?", CAUSE),
        ("What biological samples will Pesquet carry into orbit?", OTHER),
    ],
)
def test_expected_answer_type(question: str, kind: str) -> None:
    assert expected_answer_type(question) == kind


def test_sentence_types_find_what_a_sentence_can_answer() -> None:
    assert QUANTITY in sentence_types("Quatre personnes ont été blessées.")
    assert MONEY in sentence_types("Le club a payé 17 millions d'euros pour le joueur.")
    assert MONEY not in sentence_types("Quatre personnes ont été blessées.")
    assert DATE in sentence_types("Le site a rouvert le 1er septembre.")
    assert PERSON in sentence_types("Mike Warren, le maire de Pitcairn, estime que c'est bien.")
    assert CAUSE in sentence_types("Le sonar a été épargné en raison de la rénovation.")
    restating = "Le bateau de croisière a percuté un quai dimanche matin."
    assert not {QUANTITY, MONEY, PERSON, CAUSE} & sentence_types(restating)


def test_novel_facts_are_what_the_question_did_not_already_say() -> None:
    asked = specifics("How many people did Emiliano Sala's plane carry over Guernsey?")
    restates = sentence_facts("L'avion d'Emiliano Sala a disparu près de Guernesey.", asked)
    answers = sentence_facts("Le Piper PA-46 Malibu transportait deux personnes, dont Sala.", asked)
    assert answers.novel > restates.novel
    assert restates.covered > 0


def test_a_texts_numbers_are_its_words_with_a_digit() -> None:
    """specifics folds and looks through only the words that are not all letters: no
    letter of Unicode folds to a digit, so none is missed."""
    letters = (chr(c) for c in range(sys.maxunicode + 1) if chr(c).isalpha())
    assert not [c for c in letters if any(x.isdigit() for x in fold(c))]
    found = specifics("Le 2e tour a réuni 1,5 million d'électeurs, dit Élodie Durand, ²3.")
    assert found == {"2e", "1", "5", "23", "elodie", "durand"}
