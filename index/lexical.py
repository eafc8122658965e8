"""Lexical search: SQLite FTS5 with bm25() over passages, and the question's language.

BM25 finds exact names and numbers that a small embedding model blurs, but it only works
when question and passage share a language; `question_language` decides that, and the
retriever only uses lexical scores for passages in the question's language.
"""

from __future__ import annotations

import re
import sqlite3

from index.articles import guess_language

# The FTS table mirrors `passages` (title, heading and text) through triggers, so every
# insert or delete of a passage, by any code path, keeps it in step.
FTS_SCHEMA = """
CREATE VIRTUAL TABLE IF NOT EXISTS passages_fts USING fts5(
    body, tokenize = 'unicode61 remove_diacritics 2'
);
CREATE TRIGGER IF NOT EXISTS passages_fts_insert AFTER INSERT ON passages BEGIN
    INSERT INTO passages_fts(rowid, body) VALUES (
        new.id,
        coalesce((SELECT title FROM articles WHERE id = new.article_id), '')
            || ' ' || new.heading || ' ' || new.text
    );
END;
CREATE TRIGGER IF NOT EXISTS passages_fts_delete AFTER DELETE ON passages BEGIN
    DELETE FROM passages_fts WHERE rowid = old.id;
END;
"""

FILL_FTS = """
INSERT INTO passages_fts(rowid, body)
SELECT p.id, coalesce(a.title, '') || ' ' || p.heading || ' ' || p.text
FROM passages p LEFT JOIN articles a ON a.id = p.article_id
"""

# Function words of the languages the corpus meets; they carry no evidence for BM25.
_STOP_WORDS = frozenset(
    """
    le la les l d des du de un une et est que qu qui dans pour sur pas au aux ce cette cet ces
    il elle ils elles on ont été a à où en se sa son ses leur leurs par avec mais ou ne plus
    quel quelle quels quelles quoi comment combien pourquoi quand lequel laquelle y s n c j
    the of and to in is that for on was with as by at it its from are be this have has had
    which were an or who whom whose not their what when where why how did do does many much
    der die das und ist nicht mit den dem ein eine zu von auf für sich des im auch wurde
    werden bei was wer wie welche welcher welches wann wo warum wieviele viele
    el los las y que un una por con para es del al su no como más lo qué cuál cuáles cuándo
    dónde quién quiénes cómo cuántos cuántas fue se
    """.split()  # noqa: SIM905
)

# Words that say which language a question is in, beyond guess_language's stop-word vote.
_QUESTION_WORDS = {
    "fr": "quel quelle quels quelles qui que quoi combien pourquoi comment où quand lequel "
    "laquelle lesquels est-ce qu'est-ce",
    "en": "what who which how when where why whom whose did does many much",
    "de": "was wer wie welche welcher welches welchem welchen wann wo warum wieviel wie viele",
    "es": "qué cuál cuáles cuánto cuántos cuántas cuándo dónde quién quiénes cómo por qué",
}
_QUESTION_SETS = {lang: set(words.split()) for lang, words in _QUESTION_WORDS.items()}
_LETTERS = {"fr": "éèêàçùâîôœ", "de": "äöüß", "es": "ñ¿¡áíóú"}
_WORD = re.compile(r"\w+")


def question_language(text: str) -> str | None:
    """The language of a (short) question: question words and accented letters first, then
    the stop-word vote; None when nothing says it clearly."""
    words = re.findall(r"[^\W\d_]+(?:-[^\W\d_]+)?", text.lower())
    votes = {lang: 2 * sum(w in qs for w in words) for lang, qs in _QUESTION_SETS.items()}
    lowered = text.lower()
    for lang, letters in _LETTERS.items():
        votes[lang] += sum(ch in letters for ch in lowered)
    guessed = guess_language(text)
    if guessed in votes:
        votes[guessed] += 2
    best = max(votes, key=lambda lang: votes[lang])
    ranked = sorted(votes.values(), reverse=True)
    if ranked[0] == 0 or ranked[0] == ranked[1]:
        return guessed
    return best


def content_words(text: str) -> list[str]:
    """The distinct lower-cased words of a text that are not function words, in order."""
    terms: list[str] = []
    for word in _WORD.findall(text.lower()):
        if word in _STOP_WORDS or (len(word) < 2 and not word.isdigit()) or word in terms:
            continue
        terms.append(word)
    return terms


def match_expression(question: str) -> str | None:
    """An FTS5 query OR-ing the question's content words (each quoted), or None if none."""
    terms = content_words(question)
    return " OR ".join(f'"{t}"' for t in terms) if terms else None


def word_overlap(question_words: list[str], text: str) -> float:
    """The share of the question's content words that the text contains."""
    if not question_words:
        return 0.0
    words = set(_WORD.findall(text.lower()))
    return sum(w in words for w in question_words) / len(question_words)


def lexical_search(db: sqlite3.Connection, question: str, k: int) -> list[tuple[int, float]]:
    """Top-k (passage id, BM25 score, higher is better) for the question's content words."""
    expression = match_expression(question)
    if expression is None or k <= 0:
        return []
    rows = db.execute(
        "SELECT rowid, -bm25(passages_fts) AS score FROM passages_fts "
        "WHERE passages_fts MATCH ? ORDER BY score DESC LIMIT ?",
        (expression, k),
    ).fetchall()
    return [(int(r[0]), float(r[1])) for r in rows]
