"""Scale benchmark: how `ask`, a poll, a cold start and the disk grow with the index.

    python -m bench.scale --sizes 10000 100000 1000000 [--questions 40]

Each size is a synthetic store in $NEWSBOT_CACHE_DIR/bench/scale/<size> (built once, then
reused), written through the product's own `Store.add_articles`. Articles are made of real
sentences (the retrieval corpora of ../shared/bench and ../shared/bench/articles) sampled at
random, each given a random figure so no two sentences are the same text (the embedding
cache dedupes by text), with dates over four years and 40 sources. Vectors are fake but
realistic: each text's e5 vector is a random mix of three real e5 passage vectors (of a pool
of real sentences embedded once with the configured embedder) plus Gaussian noise,
renormalised; the second model (USE, 512-d) gets the same treatment from real USE vectors.
Chunking uses the real tokenizer. So ANN recall is measured on vectors shaped like the
model's, and questions are real questions with their real e5 and USE vectors.

Each size is then measured in a fresh process: `ask` (the product's retriever and
compose_answer, question vectors precomputed, so only non-model time), a poll of 32 new
articles (add_articles + the USE update the engine runs after it, minus the time in the
fake encoders), a cold start (open the store, first answer), the child's peak RSS (with the
embedding model loaded, as in the bot), bytes on disk per passage, and recall@10 of the
e5 index against an exact search. Prints a Markdown table.

    python -m bench.scale --sizes 100000 --before-after 4

measures `ask` as shipped and with two changes of 2026-12-03 undone (BM25 scored by FTS5's
bm25() on every row, float32 exact FAISS), alternating in one process (`before_after`).

    python -m bench.scale --sizes 1000000 --qa [DIR]

answers a question set (default newsqa-dev) over its own articles, then with them added
to the synthetic store (see `qa_at_scale`). Measured 2026-12-03 it shows the limit of the
synthetic vectors rather than of the product: a mix of three real vectors plus noise lies
near the model's centroid, so for a real question the best of 1M synthetic passages has
e5 cosine ~0.81 (median of 30 newsqa-dev questions), nearly the 0.82 of the gold passage
and far above the ~0.77 of unrelated real news; the gold article is then cited first for
42/85 questions instead of 79/85, whether the IVF index probes 1/8 of its lists or all.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from bot.answer import compose_answer
from bot.config import Settings
from bot.engine import build_retriever
from index.articles import Article, load_articles
from index.embedding import Embedder, default_cache_dir, embedder_for
from index.store import Store
from index.usem import USE_DIM, UseEncoder

SHARED = Path(__file__).resolve().parents[2] / "shared" / "bench"
POOL_SENTENCES = 3000
QUESTIONS = 40
NOISE = 0.35  # norm of the noise added to a mix of real vectors (cosine to it ~0.94)
SOURCES = [f"source{n:02d}" for n in range(40)]
BUILD_CHUNK = 640  # articles per add_articles call while building


def scale_dir() -> Path:
    return default_cache_dir() / "bench" / "scale"


# --- the pool of real sentences and their real vectors --------------------------------------


def _sentences_and_questions() -> tuple[list[str], list[str]]:
    from index.chunking import sentence_spans

    sentences: list[str] = []
    questions: list[str] = []
    for corpus in sorted((SHARED / "retrieval").glob("*/*/corpus.jsonl")):
        for line in corpus.read_text().splitlines():
            text = json.loads(line)["text"]
            sentences += [text[s.start : s.end] for s in sentence_spans(text)]
        queries = corpus.with_name("queries.jsonl")
        questions += [json.loads(q)["text"] for q in queries.read_text().splitlines()[:20]]
    for article in load_articles([SHARED / "articles"]).articles:
        sentences += [article.text[s.start : s.end] for s in sentence_spans(article.text)]
    words = [s for s in dict.fromkeys(sentences) if 8 <= len(s.split()) <= 45]
    rng = random.Random(13)
    rng.shuffle(words)
    rng.shuffle(questions)
    return words, questions


class Pool:
    """Real sentences, their real e5 and USE vectors, and real questions with theirs."""

    def __init__(self, path: Path) -> None:
        data = np.load(path, allow_pickle=False)
        self.sentences = [str(s) for s in data["sentences"]]
        self.e5 = data["e5"]
        self.use = data["use"]
        self.questions = [str(s) for s in data["questions"]]
        self.question_e5 = data["question_e5"]
        self.question_use = data["question_use"]


def pool(embedder: Embedder) -> Pool:
    """Embed the pool once with the real models; cached beside the stores."""
    path = scale_dir() / f"pool-{hashlib.sha1(embedder.model_id.encode()).hexdigest()[:8]}.npz"
    if not path.exists():
        sentences, questions = _sentences_and_questions()
        sentences, questions = sentences[:POOL_SENTENCES], questions[:QUESTIONS]
        use = UseEncoder()
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(
            path,
            sentences=np.array(sentences),
            e5=embedder.embed_passages(sentences),
            use=use.embed_texts(sentences),
            questions=np.array(questions),
            question_e5=embedder.embed_queries(questions),
            question_use=use.embed_queries(questions),
        )
    return Pool(path)


# --- fake encoders: real vectors mixed, plus noise -------------------------------------------


def _mixed(texts: Sequence[str], basis: np.ndarray) -> np.ndarray:
    """Per text: a mix of three rows of `basis` (chosen and weighed by the text's hash),
    plus Gaussian noise of norm NOISE, renormalised."""
    digests = np.frombuffer(
        b"".join(hashlib.blake2b(t.encode(), digest_size=12).digest() for t in texts),
        dtype=np.uint32,
    ).reshape(len(texts), 3)
    rows = digests % len(basis)
    weights = (digests >> 16).astype(np.float32) + 1.0
    weights /= weights.sum(axis=1, keepdims=True)
    out = np.einsum("nk,nkd->nd", weights, basis[rows])
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    noise = _NOISE.standard_normal(out.shape).astype(np.float32)
    out += noise * (NOISE / np.linalg.norm(noise, axis=1, keepdims=True))
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out.astype(np.float32)


_NOISE = np.random.default_rng(7)


class FakeE5:
    """The store's passage encoder: the real tokenizer, fake (realistic) vectors."""

    def __init__(self, real: Embedder, basis: np.ndarray) -> None:
        self.real = real
        self.basis = basis
        self.model_id = real.model_id
        self.dim = real.dim
        self.max_tokens = real.max_tokens
        self.seconds = 0.0  # spent making vectors (the model's share, excluded)
        self.approximate = False

    def count_tokens(self, text: str) -> int:
        if self.approximate:  # building: the real tokenizer is half the build's time
            return 8 + int(1.6 * len(text.split()))
        return self.real.count_tokens(text)

    def embed_passages(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        started = time.perf_counter()
        vectors = _mixed(texts, self.basis)
        self.seconds += time.perf_counter() - started
        return vectors

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self.embed_passages(texts)


class FakeUse:
    """The second model: fake USE vectors for passages, the real ones for the questions."""

    dim = USE_DIM

    def __init__(self, basis: np.ndarray, questions: dict[str, np.ndarray]) -> None:
        self.model_id = UseEncoder().model_id
        self.basis = basis
        self.questions = questions
        self.seconds = 0.0

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        started = time.perf_counter()
        vectors = _mixed(texts, self.basis)
        self.seconds += time.perf_counter() - started
        return vectors

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return np.vstack([self.questions[t] for t in texts])


# --- synthetic articles ----------------------------------------------------------------------


def synthetic_article(n: int, sentences: Sequence[str], tag: str = "") -> Article:
    """Article number `n`: 3-7 paragraphs of 2-4 real sentences, each made unique."""
    rng = random.Random(f"{tag}{n}")
    paragraphs = []
    for _ in range(rng.randint(3, 7)):
        picked = [rng.choice(sentences) for _ in range(rng.randint(2, 4))]
        paragraphs.append(
            " ".join(f"{s.rstrip('.')} ({rng.randint(1000, 999_999)})." for s in picked)
        )
    date = f"{2021 + n % 4}-{1 + rng.randrange(12):02d}-{1 + rng.randrange(28):02d}"
    source = SOURCES[rng.randrange(len(SOURCES))]
    return Article(
        title=f"{tag}{rng.choice(sentences)[:70]} #{n}",
        text="\n\n".join(paragraphs),
        date=date,
        source=source,
        url=f"https://{source}.example/{tag}{n}",
        lang="fr" if n % 3 else "en",
    )


def build(size: int, real: Embedder, data: Pool) -> Path:
    """The store of `size` passages (at least), built once through Store.add_articles."""
    folder = scale_dir() / str(size)
    done = folder / "built.json"
    if done.exists():
        return folder
    encoder = FakeE5(real, data.e5)
    encoder.approximate = True
    faiss.omp_set_num_threads(1)  # a search per article: threads only wait on each other
    store = Store(folder, real.model_id, real.dim)
    passages, n, started = store.stats().passages, store.stats().articles, time.perf_counter()
    while passages < size:
        batch = [synthetic_article(i, data.sentences) for i in range(n, n + BUILD_CHUNK)]
        passages += store.add_articles(batch, encoder).passages
        n += BUILD_CHUNK
        rate = passages / (time.perf_counter() - started)
        print(f"  {size}: {passages} passages, {rate:.0f}/s", file=sys.stderr, flush=True)
    store.secondary_vectors(FakeUse(data.use, {}))
    store.close()
    done.write_text(json.dumps({"passages": passages, "articles": n}))
    return folder


# --- measuring one size, in its own process --------------------------------------------------


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _p95(ordered: list[float]) -> float:
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def settle(size: int) -> dict[str, float]:
    """Bring a built store to today's index settings before it is measured: one article
    written and removed, so an index `faiss_cache.resized` wants retrained (more IVF lists)
    is retrained here, in a process of its own (its peak RSS is not the table's)."""
    real = embedder_for(Settings())
    data = pool(real)
    encoder = FakeE5(real, data.e5)
    use = FakeUse(data.use, {})
    store = Store(scale_dir() / str(size), real.model_id, real.dim)
    lists = getattr(store.index, "nlist", 0)
    extra = synthetic_article(0, data.sentences, tag="settle")
    started = time.perf_counter()
    store.add_articles([extra], encoder)
    store.secondary_vectors(use)
    store.remove_articles([extra.id])
    store.secondary_vectors(use)
    seconds = time.perf_counter() - started
    now = getattr(store.index, "nlist", 0)
    store.close()
    return {
        "lists_before": lists,
        "lists_after": now,
        "seconds": seconds,
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def measure(size: int) -> dict[str, float]:
    settings = Settings()
    real = embedder_for(settings)
    real.embed_queries(["warm-up"])  # the model is loaded, as in the bot, but not timed
    data = pool(real)
    folder = scale_dir() / str(size)
    encoder = FakeE5(real, data.e5)
    use = FakeUse(data.use, dict(zip(data.questions, data.question_use, strict=True)))

    def ask(store: Store, question: int) -> None:
        retriever = build_retriever(settings, store, encoder)  # type: ignore[arg-type]
        retriever.secondary = use
        retrieval = retriever.retrieve_many(
            [data.questions[question]], vectors=data.question_e5[question : question + 1]
        )[0]
        compose_answer(retrieval, store, encoder, floor=settings.score_floor)

    # Opened once untimed, so an upgrade's migration is not counted as a cold start (here,
    # in the measuring process: opened by the parent, the child would report the parent's
    # peak RSS, which Linux keeps across exec).
    Store(folder, real.model_id, real.dim).close()
    started = time.perf_counter()
    store = Store(folder, real.model_id, real.dim)
    ask(store, 0)
    cold = time.perf_counter() - started - use.seconds
    times, cpu = [], []
    for q in range(1, len(data.questions)):
        started, used = time.perf_counter(), time.process_time()
        ask(store, q)
        times.append(time.perf_counter() - started)
        cpu.append(time.process_time() - used)
    times.sort()
    cpu.sort()
    flat = store.search_vectors(data.question_e5, 10, exact=True)
    found = store.search_vectors(data.question_e5, 10)
    recall = statistics.mean(
        len({p for p, _ in a} & {p for p, _ in b}) / max(1, len(b))
        for a, b in zip(found, flat, strict=True)
    )
    passages = store.stats().passages
    disk = _folder_bytes(folder)
    news = [synthetic_article(i, data.sentences, tag="poll") for i in range(32)]
    encoder.seconds = use.seconds = 0.0
    started = time.perf_counter()
    store.add_articles(news, encoder)
    store.secondary_vectors(use)  # what Engine.prepare does after a poll
    poll = time.perf_counter() - started - encoder.seconds - use.seconds
    store.remove_articles([a.id for a in news])  # the store stays as built
    store.secondary_vectors(use)
    store.close()
    return {
        "passages": passages,
        "ask_p50_ms": 1000 * times[len(times) // 2],
        "ask_p95_ms": 1000 * _p95(times),
        "ask_cpu_p50_ms": 1000 * cpu[len(cpu) // 2],
        "ask_cpu_p95_ms": 1000 * _p95(cpu),
        "poll_s": poll,
        "cold_s": cold,
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "bytes_per_passage": disk / passages,
        "recall": recall,
    }


# --- a real question set among the synthetic passages ---------------------------------------

QA_SET = SHARED / "newsqa-dev"


def qa_at_scale(size: int, directory: Path) -> str:
    """A question set's answers (newsqa-dev: 31 real articles, none of whose sentences are
    in the synthetic stores) through the product's answer path (`answer_questions`, as
    `Engine.ask`), first over the set's own articles alone, then with them added to the
    synthetic store of `size` passages: as shipped (IVF probing 1/8 of its lists, BM25
    within its row budget), with every IVF list probed, and with a quarter of the BM25 row
    budget. The articles are removed from the big store afterwards."""
    from bench.qa import articles_by_file, load_questions, score_answers
    from bench.quality import bench_cache
    from bot.engine import answer_questions
    from index import faiss_index
    from index.corpus import open_store
    from index.usem import get_use_encoder

    settings = Settings()
    real = embedder_for(settings)
    articles, file_of_article = articles_by_file(directory)
    questions = load_questions(directory)
    texts = [str(q["question"]) for q in questions]

    def answered(store: Store) -> str:
        retriever = build_retriever(settings, store, real)
        answers = [a for _, a in answer_questions(retriever, store, real, settings, texts)]
        score = score_answers(questions, answers, file_of_article)
        return (
            f"{score.gold_first}/{score.answerable} · {score.with_key}/{score.answerable} "
            f"· {score.refused}/{score.unanswerable}"
        )

    alone = open_store(bench_cache(settings, real.model_id) / "qa" / directory.name, real)
    alone.add_articles(articles, real)  # the bench qa store: built once, cached
    alone.secondary_vectors(get_use_encoder())
    cells = [answered(alone)]
    store = Store(scale_dir() / str(size), real.model_id, real.dim)
    store.copy_embeddings_from(alone)  # nothing embedded twice
    alone.close()
    passages = store.stats().passages
    shipped_params, shipped_budget = faiss_index.search_params, store._term_counts.budget

    def every_list(
        index: faiss.Index, selector: faiss.IDSelector | None, exact: bool
    ) -> faiss.SearchParameters | None:
        return shipped_params(index, selector, True)

    try:
        store.add_articles(articles, real)
        store.secondary_vectors(get_use_encoder())
        for exact, budget in (
            (False, shipped_budget),
            (True, shipped_budget),
            (False, shipped_budget // 4),
        ):
            faiss_index.search_params = every_list if exact else shipped_params
            store._term_counts = type(store._term_counts)(budget=budget)
            cells.append(answered(store))
    finally:
        faiss_index.search_params = shipped_params
        store._term_counts = type(store._term_counts)(budget=shipped_budget)
        store.remove_articles([a.id for a in articles])
        store.close()
    return (
        f"{directory.name}: first citation from the gold article · a key in the quotes · "
        "unanswerable refused\n\n"
        f"| alone | in {passages:,} passages, as shipped | every IVF list probed "
        "| BM25 row budget / 4 |\n|---|---|---|---|\n| " + " | ".join(cells) + " |"
    )


def before_after(size: int, rounds: int) -> str:
    """`ask` at one size as shipped and as before two changes (BM25 scored by FTS5's bm25()
    on every row, a float32 exact FAISS index), alternating in one process so both meet
    the same machine; the median of the rounds' p50 and p95 (CPU)."""
    from unittest import mock

    from index import faiss_cache, lexical

    def float32(index: Any, dim: int) -> faiss.Index:
        if faiss_cache.is_approximate(index):
            return index
        ids, vectors = faiss_cache.stored_vectors(index, dim)
        flat = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        flat.add_with_ids(vectors, ids)
        return flat

    runs: dict[str, list[dict[str, float]]] = {"before": [], "as shipped": []}
    for _ in range(rounds):
        with (
            mock.patch.object(lexical, "_bm25_of_instances", lambda *_: None),
            mock.patch.object(faiss_cache, "half_precision", float32),
            mock.patch.object(
                faiss_cache, "new_index", lambda dim: faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
            ),
        ):
            runs["before"].append(measure(size))
        runs["as shipped"].append(measure(size))
    lines = [
        f"| {size:,} passages, {rounds} rounds | ask CPU p50 (median) | ask CPU p95 (median) |",
        "|---|---|---|",
    ]
    for label, measured in runs.items():
        p50 = statistics.median(m["ask_cpu_p50_ms"] for m in measured)
        p95 = statistics.median(m["ask_cpu_p95_ms"] for m in measured)
        lines.append(f"| {label} | {p50:.1f} ms | {p95:.1f} ms |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--build-only", action="store_true")
    parser.add_argument("--measure", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--settle", type=int, help=argparse.SUPPRESS)
    parser.add_argument(
        "--qa",
        nargs="?",
        const=QA_SET,
        type=Path,
        metavar="DIR",
        help="answer a question set (default newsqa-dev) alone, then among the synthetic "
        "passages of the largest size",
    )
    parser.add_argument(
        "--before-after",
        type=int,
        metavar="ROUNDS",
        help="measure `ask` with and without the changes of 2026-12-03 evening (BM25 from the "
        "words' places, half-float exact FAISS), alternating, ROUNDS times each",
    )
    args = parser.parse_args()
    if args.before_after:
        for size in args.sizes:
            print(before_after(size, args.before_after))
        return
    if args.measure:
        print(json.dumps(measure(args.measure)))
        return
    if args.settle:
        print(json.dumps(settle(args.settle)))
        return
    if args.qa is not None:
        print(qa_at_scale(max(args.sizes), args.qa.resolve()))
        return
    real = embedder_for(Settings())
    data = pool(real)
    for size in args.sizes:
        build(size, real, data)
    if args.build_only:
        return
    rows: list[dict[str, float]] = []
    settled: list[dict[str, float]] = []
    for size in args.sizes:
        for step, found in (("--settle", settled), ("--measure", rows)):
            child = subprocess.run(
                [sys.executable, "-m", "bench.scale", step, str(size)],
                check=True,
                capture_output=True,
                text=True,
                env=os.environ,
            )
            found.append(json.loads(child.stdout.strip().splitlines()[-1]))
    print(
        "| passages | ask p50 | ask p95 | ask CPU p50 / p95 | poll 32 articles | cold start "
        "| peak RSS | disk per passage | e5 recall@10 vs exact |\n"
        "|---|---|---|---|---|---|---|---|---|"
    )
    for row in rows:
        print(
            f"| {row['passages']:,.0f} | {row['ask_p50_ms']:.0f} ms | {row['ask_p95_ms']:.0f} ms "
            f"| {row['ask_cpu_p50_ms']:.0f} / {row['ask_cpu_p95_ms']:.0f} ms "
            f"| {row['poll_s']:.2f} s | {row['cold_s']:.2f} s | {row['rss_mb']:,.0f} MB "
            f"| {row['bytes_per_passage'] / 1024:.1f} KB | {row['recall']:.3f} |"
        )
    for size, done in zip(args.sizes, settled, strict=True):
        if done["lists_before"] != done["lists_after"]:
            print(
                f"\n{size:,}: the IVF index was retrained first ({done['lists_before']:.0f} -> "
                f"{done['lists_after']:.0f} lists, with the second model's): "
                f"{done['seconds']:.0f} s, peak RSS {done['rss_mb']:,.0f} MB."
            )
    print(
        "\nSynthetic stores written through Store.add_articles: real sentences, fake vectors "
        "(mixes of real e5/USE vectors plus noise); question vectors precomputed, so times "
        "exclude the models. Wall times count the waits of a shared machine; CPU times are "
        "this process's own (they leave out waiting for the disk)."
    )


if __name__ == "__main__":
    main()
