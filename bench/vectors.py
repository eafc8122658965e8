"""The effect of keeping e5 vectors as float16 in SQLite (schema 4), on a real store.

    python -m bench.vectors [--store .cache/bench/<model>/dev/<set>] [--set <set dir>]

Copies a store written with float32 vectors (schema 3; the copy is migrated, the original
left alone), and reports: bytes on disk per passage before and after (both VACUUMed, by
table), the largest change of a question-to-vector cosine over every stored vector, whether
the dense top-10 (FAISS, rebuilt from the float16 rows) is the float32 one, and whether the
quote a question would pick by cosine in each of its top-5 passages changes. Prints
Markdown tables.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import tempfile
from pathlib import Path

import numpy as np

from bot.config import Settings
from index.chunking import quote_spans
from index.embedding import embedder_for, model_slug
from index.store import DB_NAME, Store
from index.store_base import blob_vectors, text_hash

SET = "orangesum-test_title-fr_to_article-fr"
SETS = Path(__file__).resolve().parents[2] / "shared" / "bench" / "retrieval" / "dev"


def copy_store(source: Path, target: Path) -> None:
    """A consistent, VACUUMed copy of the SQLite file (no FAISS files: rebuilt on open)."""
    with sqlite3.connect(source / DB_NAME) as src, sqlite3.connect(target / DB_NAME) as dst:
        src.backup(dst)
    vacuum(target)


def vacuum(directory: Path) -> None:
    db = sqlite3.connect(directory / DB_NAME, isolation_level=None)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.execute("VACUUM")
    db.close()


def table_bytes(directory: Path) -> dict[str, int]:
    with sqlite3.connect(directory / DB_NAME) as db:
        rows = db.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name").fetchall()
    return {name: int(size) for name, size in rows}


def raw_vectors(directory: Path, width: int, dim: int) -> dict[str, np.ndarray]:
    """text hash -> vector of the `embeddings` rows, read at their stored width."""
    dtype = np.float32 if width == 4 else np.float16
    with sqlite3.connect(directory / DB_NAME) as db:
        rows = db.execute("SELECT text_hash, vector FROM embeddings").fetchall()
    return {
        h: np.frombuffer(b, dtype=dtype).astype(np.float32)
        for h, b in rows
        if len(b) == width * dim
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--store", type=Path, help="a schema-3 store (default: the set's bench one)"
    )
    parser.add_argument("--set", type=Path, default=SETS / SET, help="its retrieval set")
    parser.add_argument("--queries", type=int, default=300)
    args = parser.parse_args()
    settings = Settings()
    embedder = embedder_for(settings)
    if args.store is None:
        slug = model_slug(embedder.model_id)
        args.store = settings.cache_dir / "bench" / slug / "dev" / args.set.name

    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp)
        copy_store(args.store, copy)
        with sqlite3.connect(copy / DB_NAME) as db:
            meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
            passages = int(db.execute("SELECT count(*) FROM passages").fetchone()[0])
        if meta.get("schema_version") != "3":
            raise SystemExit(f"{args.store} is not a float32 (schema 3) store")
        dim = int(meta["dim"])
        before_bytes, before32 = table_bytes(copy), raw_vectors(copy, 4, dim)
        store = Store(copy, meta["model_id"], dim)  # migrates the copy to float16
        store.close()
        vacuum(copy)
        after_bytes = table_bytes(copy)
        after16 = raw_vectors(copy, 2, dim)
        assert after16.keys() == before32.keys()

        print(f"{args.store.name}: {passages} passages, {len(before32)} stored vectors\n")
        print("| table | float32 bytes/passage | float16 bytes/passage |")
        print("|---|---|---|")
        for name in sorted(before_bytes, key=lambda n: -before_bytes[n])[:8]:
            print(
                f"| {name} | {before_bytes[name] / passages:,.0f} | "
                f"{after_bytes.get(name, 0) / passages:,.0f} |"
            )
        print(
            f"| **whole file** | {sum(before_bytes.values()) / passages:,.0f} | "
            f"{sum(after_bytes.values()) / passages:,.0f} |"
        )

        lines = (args.set / "queries.jsonl").read_text(encoding="utf-8").splitlines()
        questions = [json.loads(line)["text"] for line in lines[: args.queries]]
        query = embedder.embed_queries(questions).astype(np.float32)
        hashes = list(before32)
        v32 = np.vstack([before32[h] for h in hashes])
        v16 = np.vstack([after16[h] for h in hashes])
        error = np.abs(query @ v32.T - query @ v16.T)

        store = Store(copy, meta["model_id"], dim)
        ids = store.passage_ids_matching(None, None, [])
        by_id = store.passages(ids)
        p32 = np.vstack([before32[row] for row in passage_hashes(copy, ids)])
        found = store.search_vectors(query, 10)
        p16 = np.vstack([after16[row] for row in passage_hashes(copy, ids)])
        same10 = same_set = numpy_same10 = same1 = quotes = flips = 0
        for q, hits in enumerate(found):
            exact = [ids[i] for i in np.argsort(-(p32 @ query[q]), kind="stable")[:10]]
            half = [ids[i] for i in np.argsort(-(p16 @ query[q]), kind="stable")[:10]]
            same10 += [pid for pid, _ in hits] == exact
            same_set += {pid for pid, _ in hits} == set(exact)
            numpy_same10 += half == exact
            same1 += hits[0][0] == exact[0]
            for pid in exact[:5]:
                passage = by_id[pid]
                text = passage.article.text
                spans = quote_spans(text, passage.start, passage.end)
                digests = [text_hash(text[a:b]) for a, b in spans]
                if not digests or any(d not in before32 for d in digests):
                    continue
                s32 = np.vstack([before32[d] for d in digests]) @ query[q]
                s16 = (
                    blob_vectors(
                        b"".join(after16[d].astype(np.float16).tobytes() for d in digests), dim
                    )
                    @ query[q]
                )
                quotes += 1
                flips += int(np.argmax(s32) != np.argmax(s16))
        store.close()
    print(f"\n{len(questions)} questions of {args.set.name} ({embedder.model_id})\n")
    print("| measure | value |")
    print("|---|---|")
    print(f"| max abs cosine change, every stored vector | {error.max():.2e} |")
    print(f"| mean abs cosine change | {error.mean():.2e} |")
    print(f"| dense top-10 identical (FAISS on float16 vs float32) | {same10}/{len(questions)} |")
    print(f"| dense top-10 same set (FAISS on float16 vs float32) | {same_set}/{len(questions)} |")
    print(f"| dense top-10 identical, both exact in numpy | {numpy_same10}/{len(questions)} |")
    print(f"| dense top-1 identical | {same1}/{len(questions)} |")
    print(f"| best quote by cosine changed (top-5 passages) | {flips}/{quotes} |")


def passage_hashes(directory: Path, ids: list[int]) -> list[str]:
    with sqlite3.connect(directory / DB_NAME) as db:
        by_id = dict(db.execute("SELECT id, text_hash FROM passages").fetchall())
    return [by_id[i] for i in ids]


if __name__ == "__main__":
    main()
