"""The quality bench scores runs exactly as ../shared/bench/score.py does."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.quality import BENCH, same_chunks, score_run, set_names
from index.articles import Article
from index.store import Store

SCORE = BENCH.parent / "score.py"


@pytest.mark.skipif(not SCORE.exists(), reason="needs ../shared/bench")
def test_scores_match_the_shared_scorer(tmp_path: Path) -> None:
    bench_dir = BENCH / "dev" / "newstest2014_title-en_to_doc-fr"
    queries = [json.loads(line) for line in (bench_dir / "queries.jsonl").open()]
    corpus = [json.loads(line)["id"] for line in (bench_dir / "corpus.jsonl").open()]
    # A run that is right for some questions, late for others, and wrong for the rest.
    ranked = []
    for i, query in enumerate(queries):
        others = [c for c in corpus if c not in query["gold_ids"]][: 9 + i % 3]
        ranked.append(others[: i % 4] + list(query["gold_ids"][:1]) + others[i % 4 :][:9])
        if i % 5 == 0:
            ranked[-1] = others[:10]
    run = tmp_path / "run.jsonl"
    run.write_text(
        "".join(
            json.dumps({"qid": q["id"], "ranked_ids": r}) + "\n"
            for q, r in zip(queries, ranked, strict=True)
        )
    )
    shared = json.loads(
        subprocess.run(
            [sys.executable, str(SCORE), str(bench_dir), str(run)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    assert score_run(queries, ranked) == (shared["R@1"], shared["R@5"], shared["MRR@10"])


@pytest.mark.skipif(not SCORE.exists(), reason="needs ../shared/bench")
def test_every_public_set_is_in_the_table() -> None:
    assert "piaf_fr-fr" in set_names("dev", [])
    assert set_names("test", ["piaf_fr-fr", "nope"]) == ["piaf_fr-fr"]


def test_a_cached_index_from_another_chunker_is_noticed(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    """The bench reuses indexes across runs; one whose passages an older chunker cut must be
    rebuilt, because an ingest never re-chunks an unchanged article."""
    articles = [
        Article(
            title=f"Orage {i}",
            text=f"Un orage a frappé la Bretagne le jour {i}.Des milliers de foyers sont privés "
            "d'électricité.Les trains sont annulés.",
            source="Test",
            date=f"2024-01-{i + 1:02d}",
        )
        for i in range(3)
    ]
    store = Store(tmp_path / "store", embedder.model_id, embedder.dim)
    try:
        assert same_chunks(store, articles, embedder)  # empty: nothing to redo
        store.add_articles(articles, embedder)
        assert same_chunks(store, articles, embedder)
        with store.writer():
            store._db.execute('UPDATE passages SET "end" = "end" - 1 WHERE ordinal = 0')
            store._db.commit()
        assert not same_chunks(store, articles, embedder)
    finally:
        store.close()
