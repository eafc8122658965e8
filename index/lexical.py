"""Lexical search: SQLite FTS5 with bm25() over passages, and the question's language.

BM25 finds exact names and numbers that a small embedding model blurs, but it only works
when question and passage share a language; `question_language` decides that, and the
retriever only uses lexical scores for passages in the question's language.
"""

from __future__ import annotations

import re
import sqlite3
import threading

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


# FTS5's bm25() scores every row that holds any of the question's words before keeping the
# top k, so one common word ("president", "2019") makes a search cost a share of the whole
# index. A search scores words, rarest first, while the rows they match stay within this
# budget (the rarest word is always kept). An index smaller than the budget is searched
# exactly; on a large one a common word is dropped when rarer words of the question exist.
ROW_BUDGET = 20_000
# Words counted per generation at most (a long-running bot meets many).
_MAX_COUNTED = 50_000


class TermCounts:
    """How many passages hold each word, counted up to the budget plus one (past it the
    exact figure does not matter, and counting stops early), remembered until the index
    changes generation."""

    def __init__(self, budget: int = ROW_BUDGET) -> None:
        self.budget = budget
        self._generation: int | None = None
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def count(self, db: sqlite3.Connection, term: str, generation: int) -> int:
        """Passages holding the word (at most budget + 1) in the index at this generation."""
        with self._lock:
            if generation != self._generation or len(self._counts) > _MAX_COUNTED:
                self._counts = {}
                self._generation = generation
            cached = self._counts.get(term)
        if cached is not None:
            return cached
        row = db.execute(
            "SELECT count(*) FROM (SELECT rowid FROM passages_fts WHERE passages_fts MATCH ? "
            "LIMIT ?)",
            (f'"{term}"', self.budget + 1),
        ).fetchone()
        with self._lock:
            if generation == self._generation:
                self._counts[term] = int(row[0])
        return int(row[0])

    def searched_terms(
        self, db: sqlite3.Connection, terms: list[str], generation: int
    ) -> list[str]:
        """The words worth scoring, in question order: rarest first while the rows they
        match fit the budget; a word no passage holds adds nothing to BM25 and is left out."""
        counts = {t: self.count(db, t, generation) for t in terms}
        kept: set[str] = set()
        rows = 0
        for term in sorted((t for t in terms if counts[t] > 0), key=lambda t: counts[t]):
            if kept and rows + counts[term] > self.budget:
                break
            kept.add(term)
            rows += counts[term]
        return [t for t in terms if t in kept]


def lexical_search(
    db: sqlite3.Connection,
    question: str,
    k: int,
    counts: TermCounts | None = None,
    generation: int = 0,
) -> list[tuple[int, float]]:
    """Top-k (passage id, BM25 score, higher is better) for the question's content words;
    with `counts`, only the words the row budget allows are scored (see ROW_BUDGET)."""
    terms = content_words(question)
    if counts is not None:
        terms = counts.searched_terms(db, terms, generation)
    if not terms or k <= 0:
        return []
    expression = " OR ".join(f'"{t}"' for t in terms)
    rows = db.execute(
        "SELECT rowid, -bm25(passages_fts) AS score FROM passages_fts "
        "WHERE passages_fts MATCH ? ORDER BY score DESC LIMIT ?",
        (expression, k),
    ).fetchall()
    return [(int(r[0]), float(r[1])) for r in rows]
