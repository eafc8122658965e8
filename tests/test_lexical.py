"""BM25 within a row budget: a common word of the question is not scored on a large index."""

from __future__ import annotations

import sqlite3

import numpy as np

from index import lexical
from index.lexical import FTS_SCHEMA, ROW_BUDGET, TermCounts, lexical_search

QUESTION = "What did the Ministère say Kowalczyk announced about the harbour?"


def _fts(rows: int, rare_every: int) -> sqlite3.Connection:
    """An FTS5 table (the product's) where nine rows in ten name the "ministère" (twice in
    some) and one row in `rare_every` names Kowalczyk."""
    db = sqlite3.connect(":memory:")
    db.executescript(FTS_SCHEMA.split(";")[0] + ";")
    db.executemany(
        "INSERT INTO passages_fts(rowid, body) VALUES (?, ?)",
        (
            (
                i,
                ("The ministère spoke " * (1 + i % 3) if i % 10 else "A ferry sailed ")
                + ("Kowalczyk opened the harbour. " if i % rare_every == 0 else "")
                + f"Item {i} of the daily briefing on roads and schools.",
            )
            for i in range(1, rows + 1)
        ),
    )
    db.commit()  # FTS5 writes its row count and mean length (bm25's) at commit
    return db


def test_a_common_word_is_dropped_on_a_big_index_and_rare_hits_kept() -> None:
    rows = ROW_BUDGET + ROW_BUDGET // 2
    db = _fts(rows, rare_every=3_001)  # the ministère in 90% of rows; Kowalczyk in 10
    exact = lexical_search(db, QUESTION, 100)
    counts = TermCounts()
    bounded = lexical_search(db, QUESTION, 100, counts, generation=1)
    kowalczyk = {i for i in range(1, rows + 1) if i % 3_001 == 0}
    assert counts.count(db, "ministère", 1) == ROW_BUDGET + 1  # counting stopped early
    assert counts.searched_terms(db, ["ministère", "kowalczyk", "harbour"], 1) == [
        "kowalczyk",
        "harbour",
    ]
    assert {pid for pid, _ in bounded} == kowalczyk  # every rare hit, and only those
    assert len(exact) == 100 and {pid for pid, _ in exact[: len(kowalczyk)]} == kowalczyk
    # the word left out of the search is added back to the scores, as bm25() weighs it
    assert [pid for pid, _ in bounded] == [pid for pid, _ in exact[: len(kowalczyk)]]
    exact_scores = dict(exact)
    assert all(abs(score - exact_scores[pid]) < 1e-9 for pid, score in bounded)


def test_an_index_within_the_budget_is_searched_exactly() -> None:
    db = _fts(3_000, rare_every=301)
    counts = TermCounts()
    for question in (QUESTION, "ministere", "roads schools 17", "nothing matches zzz"):
        assert lexical_search(db, question, 100, counts, 1) == lexical_search(db, question, 100)


def test_counts_follow_the_generation() -> None:
    db = _fts(100, rare_every=1_000)
    counts = TermCounts(budget=50)
    assert counts.count(db, "kowalczyk", generation=1) == 0
    db.execute("INSERT INTO passages_fts(rowid, body) VALUES (1000, 'Kowalczyk resigned')")
    db.commit()
    assert counts.count(db, "kowalczyk", generation=1) == 0  # remembered within a generation
    assert counts.count(db, "kowalczyk", generation=2) == 1
    assert lexical_search(db, "Kowalczyk ministère", 10, counts, 2)[0][0] == 1000


def test_token_counts_find_every_spelling_of_a_left_out_word_as_fts5_tokenizes_it() -> None:
    from collections import Counter

    from index.lexical import fold, fts_tokens, token_counts

    texts = [
        "Les États-Unis et l'état de l'etat ÉTATS; etats_unis, 2019états",
        "e\u0301tats unis (decomposed), ETATS, Zürich, zurich, ZÜRICH, zürichs, zu_rich",
        "Президент Йемена и президент ЙЕМЕНА; İstanbul, istanbul",
        "עִברִית עברית, עִבְרִית",
    ]
    wanted = ("etats", "unis", "zurich", "президент", "иемена", "istanbul", "2019etats")
    wanted += (fold("עִברִית"),)
    for text in texts:
        expected = Counter(t for t in fts_tokens(text) if t in wanted)
        assert token_counts(text, wanted) == expected, text
    assert token_counts(texts[0], ("etats",))["etats"] == 3


def test_when_every_word_is_over_the_budget_the_other_signals_candidates_are_scored() -> None:
    db = _fts(600, rare_every=1_000)  # "ministère" in 90% of rows, "roads" in all
    counts = TermCounts(budget=50)
    question = "What did the ministère say about roads?"
    exact = dict(lexical_search(db, question, 600))
    among = [7, 20, 33, 40, 41, 599]  # 20 and 40 do not name the ministère
    scored = lexical_search(db, question, 100, counts, 1, among=among)
    # only those passages, each with its exact bm25() score, best first
    assert sorted(pid for pid, _ in scored) == sorted(among)
    assert all(abs(score - exact[pid]) < 1e-9 for pid, score in scored)
    assert [pid for pid, _ in scored] == sorted(among, key=lambda pid: -exact[pid])
    # without candidates the rarest word is searched, as before
    assert {pid for pid, _ in lexical_search(db, question, 100, counts, 1)} - set(among)


def test_a_word_over_the_budget_is_not_counted_again_while_the_index_only_grows() -> None:
    db = _fts(200, rare_every=1_000)  # the ministère in 180 rows
    counts = TermCounts(budget=50)
    assert counts.count(db, "ministère", generation=1) == 51
    assert counts.count(db, "harbour", generation=1) == 0
    counted: list[str] = []
    db.set_trace_callback(lambda sql: counted.append(sql) if "count(*) FROM (" in sql else None)
    db.execute(
        "INSERT INTO passages_fts(rowid, body) VALUES (1000, 'Kowalczyk opened the harbour')"
    )
    db.commit()
    assert counts.count(db, "ministère", generation=2) == 51  # still over: not read again
    assert counts.count(db, "harbour", generation=2) == 1  # under it: counted again
    assert len(counted) == 1, counted
    assert lexical_search(db, "Kowalczyk harbour ministère", 10, counts, 2)[0][0] == 1000
    # A write that shrinks the index forgets every count: a word can fall under the budget.
    db.execute("DELETE FROM passages_fts WHERE rowid <= 150")
    db.commit()
    counted.clear()
    assert counts.count(db, "ministère", generation=3) == 45
    assert len(counted) == 1


def test_bm25_is_computed_from_the_words_places_as_fts5s_bm25_computes_it() -> None:
    """Within the budget, the scores come from the words' places (fts5vocab) and the rows'
    remembered lengths, not from bm25(): the same rows, order and scores."""
    from index import lexical

    db = _fts(3_000, rare_every=301)
    db.execute(
        "INSERT INTO passages_fts(rowid, body) VALUES (5000, 'Ministere MINISTÈRE ministère')"
    )
    db.commit()
    counts = TermCounts()
    for question in (
        QUESTION,
        "ministere ministère",  # two words, one token: counted twice, as bm25() does
        "Kowalczyk harbour harbour item 17",
        "roads schools 17",
    ):
        terms = counts.searched_terms(db, lexical.content_words(question), 1)
        computed = lexical._bm25_of_instances(db, terms, 100, counts, 1)
        assert computed is not None and computed  # not FTS5's bm25() (that would be None)
        assert computed == lexical_search(db, question, 100)
        assert lexical_search(db, question, 100, counts, 1) == computed
    # A word FTS5 cuts in two ("x_ray": a phrase) is left to bm25().
    assert lexical._bm25_of_instances(db, ["x_ray"], 10, counts, 1) is None
    assert lexical_search(db, "x_ray harbour", 10, counts, 1) == lexical_search(
        db, "x_ray harbour", 10
    )


def test_inside_a_write_transaction_fts5_scores_what_it_has_not_yet_counted() -> None:
    """FTS5 writes the row count and mean length BM25 needs at commit: a search on the
    connection of an uncommitted write is left to bm25(), which sees the pending rows."""
    from index import lexical

    db = _fts(3_000, rare_every=301)
    counts = TermCounts()
    db.executemany(
        "INSERT INTO passages_fts(rowid, body) VALUES (?, ?)",
        ((9_000 + i, "Kowalczyk Kowalczyk harbour " + "word " * i) for i in range(50)),
    )
    assert db.in_transaction
    assert lexical._bm25_of_instances(db, ["kowalczyk"], 100, counts, 2) is None
    assert lexical_search(db, QUESTION, 100, counts, 2) == lexical_search(db, QUESTION, 100)
    db.commit()
    assert lexical_search(db, QUESTION, 100, counts, 3) == lexical_search(db, QUESTION, 100)


def test_every_rows_length_is_read_in_one_scan_as_fts5_records_it() -> None:
    """The lengths BM25 divides by: one-, two- and three-byte varints of the docsize table,
    read in one scan at the first search, and a row added later read when first met."""
    from index import lexical

    db = sqlite3.connect(":memory:")
    db.executescript(FTS_SCHEMA.split(";")[0] + ";")
    sizes = {1: 5, 2: 127, 3: 128, 4: 300, 5: 16_383, 6: 16_384, 7: 20_000}
    db.executemany(
        "INSERT INTO passages_fts(rowid, body) VALUES (?, ?)",
        ((rowid, " ".join(["harbour"] * n)) for rowid, n in sizes.items()),
    )
    db.commit()
    ids, lengths = lexical._all_lengths(db)
    assert dict(zip(ids.tolist(), lengths.tolist(), strict=True)) == sizes
    counts = TermCounts()
    assert counts.lengths(db, ids).tolist() == list(sizes.values())
    db.execute("INSERT INTO passages_fts(rowid, body) VALUES (9, 'harbour walls')")
    db.commit()
    assert counts.lengths(db, np.array([9, 7])).tolist() == [2, 20_000]


def test_a_combining_mark_is_found_in_any_script() -> None:
    """has_mark looks only past U+02FF: true of every mark fold() drops, and it finds one
    wherever it is (Latin, Hebrew, Devanagari), and none in text without."""
    assert min(lexical._diacritics()) > 0x2FF
    marked = ["cafe\u0301 noir", "שָׁלוֹם", "हिंदी समाचार", "x" * 500 + "a\u0308"]
    plain = ["café noir", "съешь же ещё этих булок", "plain ascii", "日本語のニュース", ""]
    assert all(lexical.has_mark(text) for text in marked)
    assert not any(lexical.has_mark(text) for text in plain)
