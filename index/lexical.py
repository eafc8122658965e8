"""Lexical search: SQLite FTS5 with bm25() over passages, and the question's language.

BM25 finds exact names and numbers that a small embedding model blurs, but it only works
when question and passage share a language; `question_language` decides that, and the
retriever only uses lexical scores for passages in the question's language.
"""

from __future__ import annotations

import functools
import json
import math
import re
import sqlite3
import sys
import threading
import unicodedata
from collections import Counter
from collections.abc import Sequence

import numpy as np

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
# exactly; on a large one a common word is left out of the search when rarer words of the
# question exist, and only added back to the scores of the best RESCORED * k rows found.
ROW_BUDGET = 20_000
RESCORED = 2
K1, B = 1.2, 0.75  # FTS5's bm25() parameters
# A word's exact passage count (its BM25 weight) is counted again once the index has grown
# or shrunk by this share, not at every write: counting a common word reads all its rows.
DRIFT = 0.01
# Words counted per generation at most (a long-running bot meets many).
_MAX_COUNTED = 50_000


class TermCounts:
    """How many passages hold each word, counted up to the budget plus one (past it the
    exact figure does not matter, and counting stops early), remembered until the index
    changes generation; a word over the budget is remembered across writes that only add
    passages (see `_new_generation`)."""

    def __init__(self, budget: int = ROW_BUDGET) -> None:
        self.budget = budget
        self._generation: int | None = None
        self._counts: dict[str, int] = {}
        self._documents: dict[str, int] = {}  # exact counts, of the words left out only
        self._documents_rows = 0  # the index's rows when they were counted
        self._averages: tuple[int, float] | None = None  # rows, mean tokens per row
        # Tokens per row: sorted rowids and their lengths (see `lengths`); None: not read.
        self._length_ids: np.ndarray | None = None
        self._length_values = np.zeros(0, dtype=np.uint32)
        self._lock = threading.Lock()

    def _new_generation(self, db: sqlite3.Connection, generation: int) -> None:
        """After a write: the index's size is read again and the counts are forgotten,
        except those over the budget when the index has not shrunk. A word over the budget
        stays over it while passages are only added, and counting one again (reading
        budget + 1 of its rows) was most of what the first question after a write cost.
        (A write that replaces an article's passages with as many or more can leave such a
        word a few rows under the budget: it is then left out of the search and added back
        when the best rows are rescored, as a word over the budget is.)"""
        averages = _read_averages(db)
        with self._lock:
            if generation == self._generation and len(self._counts) <= _MAX_COUNTED:
                return
            grown = (
                self._averages is not None  # the previous generation's
                and averages[0] >= self._averages[0]
                and len(self._counts) <= _MAX_COUNTED
            )
            self._counts = (
                {t: c for t, c in self._counts.items() if c > self.budget} if grown else {}
            )
            self._generation, self._averages = generation, averages

    def count(self, db: sqlite3.Connection, term: str, generation: int) -> int:
        """Passages holding the word (at most budget + 1) in the index at this generation."""
        with self._lock:
            current = generation == self._generation and len(self._counts) <= _MAX_COUNTED
        if not current:
            self._new_generation(db, generation)
        with self._lock:
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

    def documents(self, db: sqlite3.Connection, term: str, generation: int) -> int:
        """How many passages hold the word (its BM25 weight): counted exactly, and
        remembered while the index stays within DRIFT of its size then."""
        rows, _ = self.averages(db, generation)
        with self._lock:
            drifted = abs(rows - self._documents_rows) > DRIFT * rows
            if drifted or len(self._documents) > _MAX_COUNTED:
                self._documents, self._documents_rows = {}, rows
            cached = self._documents.get(term)
        if cached is None:
            cached = int(
                db.execute(
                    "SELECT count(*) FROM passages_fts WHERE passages_fts MATCH ?", (f'"{term}"',)
                ).fetchone()[0]
            )
            with self._lock:
                self._documents[term] = cached
        return cached

    def averages(self, db: sqlite3.Connection, generation: int) -> tuple[int, float]:
        """The rows of the index and their mean length in tokens, as bm25() reads them (the
        FTS5 "averages" record)."""
        with self._lock:
            if generation == self._generation and self._averages is not None:
                return self._averages
        self._new_generation(db, generation)
        with self._lock:
            if generation == self._generation and self._averages is not None:
                return self._averages
        return _read_averages(db)

    def lengths(self, db: sqlite3.Connection, ids: np.ndarray) -> np.ndarray:
        """The length in tokens of each of these rows, as bm25() reads it (FTS5's docsize
        record), remembered by rowid. A row's length never changes while its id lives, and
        the store never gives a passage an id another one had (index/sqlite_schema.py,
        PASSAGE_ID_HIGH), so a remembered length is valid at every generation.

        Every row's is read in one scan at the first search; a row added since, when first
        met. They are kept as sorted (id, length) arrays, 12 bytes a row, not an array
        indexed by id: ids only grow (each update of an article numbers its passages anew),
        so that one would grow with every passage ever written. Read again in one scan once
        the rows remembered are more than twice those the index holds."""
        if not ids.size:
            return np.zeros(0, dtype=np.uint32)
        if db.in_transaction:  # rows of a write that may yet roll back (and its ids be reused)
            found, sizes = _read_lengths(db, ids)
            return _looked_up(*_sorted(found, sizes), ids)[0]
        with self._lock:
            rows = self._averages[0] if self._averages is not None else 0
            if self._length_ids is None or len(self._length_ids) > 2 * rows + 10_000:
                self._length_ids, self._length_values = _all_lengths(db)
            lengths, known = _looked_up(self._length_ids, self._length_values, ids)
        missing = ids[~known]
        if missing.size:
            found, sizes = _read_lengths(db, missing)
            with self._lock:
                assert self._length_ids is not None
                self._length_ids, self._length_values = _sorted(
                    np.concatenate([self._length_ids, found]),
                    np.concatenate([self._length_values, sizes]),
                )
                lengths, _ = _looked_up(self._length_ids, self._length_values, ids)
        return lengths


def _read_lengths(db: sqlite3.Connection, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ids of these rows the docsize table holds, and their lengths in tokens."""
    read = db.execute(
        "SELECT id, sz FROM passages_fts_docsize WHERE id IN (SELECT value FROM json_each(?))",
        (json.dumps(ids.tolist()),),
    ).fetchall()
    found = np.array([r[0] for r in read], dtype=np.int64)
    return found, np.array([_first_varint(r[1]) for r in read], dtype=np.uint32)


def _sorted(ids: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(ids, kind="stable")
    return ids[order], values[order]


def _looked_up(
    keys: np.ndarray, values: np.ndarray, ids: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The values of these ids in sorted (keys, values), 0 for an id not there, and a mask
    of those found."""
    if not len(keys):
        return np.zeros(len(ids), dtype=np.uint32), np.zeros(len(ids), dtype=bool)
    at = np.minimum(np.searchsorted(keys, ids), len(keys) - 1)
    known = keys[at] == ids
    return np.where(known, values[at], 0).astype(np.uint32), known


def _all_lengths(db: sqlite3.Connection) -> tuple[np.ndarray, np.ndarray]:
    """Every row's id and length in tokens, read in one scan of the docsize table: the ids
    as one string, the lengths as one run of varints (1M rows: ~0.4 s; a row at a time
    through Python, 0.8 s)."""
    listed, sizes = db.execute(
        "SELECT group_concat(id, ' '), group_concat(hex(sz), '') FROM passages_fts_docsize"
    ).fetchone()
    ids = np.fromstring(listed or "", dtype=np.int64, sep=" ")
    stream = np.frombuffer(bytes.fromhex(sizes or ""), dtype=np.uint8).astype(np.uint32)
    ends = np.flatnonzero(stream < 0x80)  # a varint's last byte has the high bit clear
    starts = np.concatenate(([0], ends[:-1] + 1)).astype(np.int64)
    lengths = stream[ends].copy()
    for back in (1, 2):  # earlier bytes: 7 bits each (a row under 2M tokens: 3 bytes at most)
        held = ends - back >= starts
        lengths[held] |= (stream[ends[held] - back] & 0x7F) << (7 * back)
    if len(ends) != len(ids) or (ends - starts > 2).any():  # not one short varint a row
        rows = db.execute("SELECT id, sz FROM passages_fts_docsize").fetchall()
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        lengths = np.array([_first_varint(r[1]) for r in rows], dtype=np.uint32)
    if (np.diff(ids) < 0).any():  # a rowid table scans in order; not relied on
        ids, lengths = _sorted(ids, lengths)
    return ids, lengths


def _first_varint(blob: bytes) -> int:
    """The first SQLite varint of a blob (a one-column docsize record is just that)."""
    if blob and blob[0] < 0x80:
        return blob[0]
    values = _varints(blob)
    return values[0] if values else 0


def _read_averages(db: sqlite3.Connection) -> tuple[int, float]:
    """The index's rows and mean tokens per row, from FTS5's "averages" record."""
    row = db.execute("SELECT block FROM passages_fts_data WHERE id = 1").fetchone()
    rows, tokens = [*_varints(row[0]), 0, 0][:2] if row else (0, 0)
    return rows, tokens / rows if rows else 1.0


def _varints(blob: bytes) -> list[int]:
    """SQLite varints, as FTS5 writes its sizes: 7 bits a byte while the high bit is set,
    the ninth byte all 8."""
    values: list[int] = []
    value = length = 0
    for byte in blob:
        if length == 8:
            values.append((value << 8) | byte)
            value = length = 0
            continue
        value, length = (value << 7) | (byte & 0x7F), length + 1
        if byte < 0x80:
            values.append(value)
            value = length = 0
    return values


@functools.cache
def _diacritics() -> dict[int, None]:
    """The combining marks that unicode61 (remove_diacritics 2) drops from letters, as a
    str.translate table deleting them."""
    return dict.fromkeys(
        c for c in range(sys.maxunicode + 1) if unicodedata.category(chr(c)) == "Mn"
    )


def fold(text: str) -> str:
    """A text as FTS5's unicode61 tokenizer compares it: lower case, without diacritics."""
    lowered = text.lower()
    if lowered.isascii():
        return lowered
    return unicodedata.normalize("NFD", lowered).translate(_diacritics())


def fts_tokens(text: str) -> list[str]:
    """The tokens FTS5's unicode61 tokenizer (remove_diacritics 2) makes of a text."""
    return _TOKEN.findall(fold(text))


_TOKEN = re.compile(r"[^\W_]+")


@functools.cache
def _variants() -> dict[str, str]:
    """Each letter with the lower-case characters that fold to it ("e": "éèêë…"): the
    characters whose canonical decomposition is that letter and combining marks."""
    found: dict[str, list[str]] = {}
    for code in range(0x80, sys.maxunicode + 1):
        decomposition = unicodedata.decomposition(chr(code))
        if not decomposition or decomposition.startswith("<"):
            continue
        char = chr(code)
        folded = fold(char)
        if len(folded) == 1 and folded != char and char.lower() == char:
            found.setdefault(folded, []).append(char)
    return {letter: "".join(chars) for letter, chars in found.items()}


@functools.lru_cache(maxsize=4096)
def _words_pattern(tokens: tuple[str, ...], marks: bool = True) -> re.Pattern[str]:
    """Matches, in a lower-cased text, every whole word that folds to one of `tokens`: each
    letter written precomposed ("é") or, with `marks`, followed by combining marks ("e" +
    U+0301). The class of every combining mark makes the pattern ~8x slower to compile (~7
    ms for a question's words), so a text without any is searched without it."""
    variants, after = _variants(), f"{_marks()}*" if marks else ""

    def letter(char: str) -> str:
        more = variants.get(char, "")
        return (f"[{re.escape(char + more)}]" if more else re.escape(char)) + after

    words = "|".join("".join(letter(c) for c in token) for token in tokens)
    return re.compile(rf"(?<![^\W_])(?:{words})(?![^\W_])")


def token_counts(text: str, tokens: tuple[str, ...]) -> Counter[str]:
    """How often each of these (folded) tokens is among fts_tokens(text): one regex pass
    over the text for words that fold to them, instead of folding the whole text. (A word
    right after a lone combining mark counts as a word of its own here.)"""
    lowered = text.lower()
    marked = not lowered.isascii() and has_mark(lowered)
    return Counter(map(fold, _words_pattern(tokens, marked).findall(lowered)))


def has_mark(text: str) -> bool:
    """Whether a text holds a combining mark fold() drops. Every such mark is past U+02FF,
    so only the characters past it are looked up (a French text: a few accented letters;
    200 news texts, 2.3 KB each: 0.4 ms, where a search with the marks' class took 16)."""
    return not _mark_set().isdisjoint(_PAST_SPACING_MODIFIERS.findall(text))


_PAST_SPACING_MODIFIERS = re.compile("[^\x00-\u02ff]")


@functools.cache
def _mark_set() -> frozenset[str]:
    return frozenset(map(chr, _diacritics()))


@functools.cache
def _marks() -> str:
    """A regex class of the combining marks fold() drops."""
    ranges: list[list[int]] = []
    for code in sorted(_diacritics()):
        if ranges and code == ranges[-1][1] + 1:
            ranges[-1][1] = code
        else:
            ranges.append([code, code])
    return "[" + "".join(f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in ranges) + "]"


def _with_words(
    db: sqlite3.Connection,
    rows: list[tuple[int, float]],
    words: list[str],
    counts: TermCounts,
    generation: int,
) -> list[tuple[int, float]]:
    """The rows rescored with words left out of the search added to their BM25 scores (the
    formula of FTS5's bm25(), with its row count, mean length and each row's length), best
    first."""
    if not rows:
        return rows
    total, mean_length = counts.averages(db, generation)
    weights: list[tuple[str, float]] = []
    for word in words:
        tokens = fts_tokens(word)
        if len(tokens) == 1:
            held = counts.documents(db, word, generation)
            idf = math.log((max(total, held) - held + 0.5) / (held + 0.5))
            weights.append((tokens[0], idf if idf > 0 else 1e-6))
    ids = [pid for pid, _ in rows]
    marks = ",".join("?" * len(ids))
    bodies = dict(db.execute(f"SELECT rowid, body FROM passages_fts WHERE rowid IN ({marks})", ids))
    lengths = counts.lengths(db, np.array(ids, dtype=np.int64)).tolist()
    rescored = []
    wanted = tuple(token for token, _ in weights)
    for (pid, score), length in zip(rows, lengths, strict=True):
        held_tokens = token_counts(bodies.get(pid, ""), wanted) if wanted else Counter()
        norm = K1 * (1 - B + B * length / mean_length)
        for token, idf in weights:
            tf = held_tokens[token]
            if tf:
                score += idf * tf * (K1 + 1) / (tf + norm)
        rescored.append((pid, score))
    return sorted(rescored, key=lambda row: -row[1])


def lexical_search(
    db: sqlite3.Connection,
    question: str,
    k: int,
    counts: TermCounts | None = None,
    generation: int = 0,
    among: Sequence[int] = (),
) -> list[tuple[int, float]]:
    """Top-k (passage id, BM25 score, higher is better) for the question's content words;
    with `counts`, only the words the row budget allows are searched (see ROW_BUDGET).
    When even the rarest word the index holds is over the budget, no search would be
    bounded: the passages `among` (the other signals' candidates) are scored instead, with
    bm25()'s formula, so BM25 still orders what the others found."""
    terms = content_words(question)
    left_out: list[str] = []
    if counts is not None:
        searched = counts.searched_terms(db, terms, generation)
        left_out = [t for t in terms if t not in searched and counts.count(db, t, generation)]
        terms = searched
        if among and terms and counts.count(db, terms[0], generation) > counts.budget:
            scored = _with_words(
                db, [(pid, 0.0) for pid in among], terms + left_out, counts, generation
            )
            return [(pid, score) for pid, score in scored[:k] if score > 0]
    if not terms or k <= 0:
        return []
    limit = k * RESCORED if left_out else k
    found = None if counts is None else _bm25_of_instances(db, terms, limit, counts, generation)
    if found is None:
        expression = " OR ".join(f'"{t}"' for t in terms)
        rows = db.execute(
            "SELECT rowid, -bm25(passages_fts) AS score FROM passages_fts "
            "WHERE passages_fts MATCH ? ORDER BY score DESC LIMIT ?",
            (expression, limit),
        ).fetchall()
        found = [(int(r[0]), float(r[1])) for r in rows]
    if left_out and counts is not None:
        found = _with_words(db, found, left_out, counts, generation)[:k]
    return found


# FTS5's own index of every word's places (term, row, column, offset), read one word at a
# time: a connection's temporary table, made once per connection.
INSTANCES = "temp.passages_fts_instances"


def _bm25_of_instances(
    db: sqlite3.Connection, terms: list[str], limit: int, counts: TermCounts, generation: int
) -> list[tuple[int, float]] | None:
    """The top `limit` rows by FTS5's bm25() for these words, computed here with its formula
    from each word's places in the index (fts5vocab) and the rows' remembered lengths.
    bm25() reads each matching row's length from the docsize table and its places from
    the doclist, once per row through the SQL engine: at 1M passages ~20 ms for the ~12k
    rows a question's words match within the budget, where reading the places and scoring
    them with numpy costs a quarter of that. The same scores, bit for bit (bench/lexical.py
    checks it on every question of every size). None, for FTS5 to score, when a word is
    several tokens (a phrase), the words' rows exceed the budget (the rarest word alone
    can), or inside a write transaction: FTS5 writes the row count and mean length it
    reads (its averages record) at commit."""
    if db.in_transaction:
        return None
    tokens = []
    for term in terms:
        parts = fts_tokens(term)
        if len(parts) != 1:
            return None
        tokens.append(parts[0])
    if sum(counts.count(db, t, generation) for t in terms) > counts.budget:
        return None
    try:
        db.execute(
            f"CREATE VIRTUAL TABLE IF NOT EXISTS {INSTANCES} "
            "USING fts5vocab(main, passages_fts, instance)"
        )
    except sqlite3.Error:  # no room for the temporary schema (a full disk): bm25() scores
        return None
    total, mean_length = counts.averages(db, generation)
    places: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for token in tokens:
        if token not in places:
            places[token] = _rows_holding(db, token)
    if not any(len(ids) for ids, _ in places.values()):
        return []
    every = np.sort(np.concatenate([ids for ids, _ in places.values()]))
    all_ids = every[np.concatenate(([True], every[1:] != every[:-1]))]  # np.unique, sooner
    lengths = counts.lengths(db, all_ids).astype(np.float64)
    scores = np.zeros(len(all_ids))
    # Each phrase of the query counts, as in bm25(): two words folding to one token, twice.
    for token in tokens:
        ids, tf = places[token]
        if not len(ids):
            continue
        idf = math.log((max(total, len(ids)) - len(ids) + 0.5) / (len(ids) + 0.5))
        at = np.searchsorted(all_ids, ids)
        # In bm25()'s order of operations, so the sums come out the same.
        norm = K1 * (1 - B + B * lengths[at] / mean_length)
        scores[at] += (idf if idf > 0 else 1e-6) * ((tf * (K1 + 1)) / (tf + norm))
    best = np.lexsort((all_ids, -scores))[:limit]
    return [(int(all_ids[i]), float(scores[i])) for i in best]


def _rows_holding(db: sqlite3.Connection, token: str) -> tuple[np.ndarray, np.ndarray]:
    """The rows holding a token (ascending) and how often each holds it: its places, in
    rowid order, come back as one string (a row per place through Python costs 3x more)."""
    (listed,) = db.execute(
        f"SELECT group_concat(doc, ' ') FROM {INSTANCES} WHERE term = ?", (token,)
    ).fetchone()
    docs = np.fromstring(listed or "", dtype=np.int64, sep=" ")
    if not docs.size:
        return docs, docs
    if (np.diff(docs) < 0).any():  # fts5vocab lists them by row; not relied on
        docs.sort()
    starts = np.flatnonzero(np.diff(docs, prepend=docs[0] - 1))
    return docs[starts], np.diff(starts, append=len(docs))
