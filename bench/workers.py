"""Embedding workers: how much faster two `newsbot worker` processes index than one.

    python -m bench.workers [--articles N] [--workers 1 2]

Ingests N articles of a public set into a fresh PostgreSQL database without embedding
(`newsbot ingest --defer-embedding`), then for each worker count: forgets every vector
(passages, sentences and the embedding cache, so each run embeds everything), starts that
many `newsbot worker --once` processes, each pinned to a CPU of its own (taskset: as if on
machines of their own), and times them until the last one exits (model loading included).
Uses NEWSBOT_DATABASE_URL's server, or starts the tests' throwaway one.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg

from bench.retrieval import load_corpus
from bot.config import Settings
from index.embedding import embedder_for
from index.pg_store import PgStore
from index.pg_worker import pending_passages

CORPUS = Path(__file__).resolve().parents[2] / "shared/bench/retrieval/dev/xquad_en-en/corpus.jsonl"
DATABASE = "bench_workers"


def fresh_database(server_url: str) -> str:
    """An empty database on the server; its URL."""
    with psycopg.connect(server_url, autocommit=True) as db:
        db.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
        db.execute(f"CREATE DATABASE {DATABASE}")
    return server_url.rsplit("/", 1)[0] + "/" + DATABASE


def forget_vectors(url: str) -> None:
    with psycopg.connect(url) as db:
        db.execute("UPDATE passages SET embedding = NULL")
        db.execute("DELETE FROM sentence_vectors")
        db.execute("DELETE FROM embeddings")


def run_workers(url: str, count: int) -> tuple[float, list[tuple[int, float]]]:
    """Seconds until `count` pinned worker processes have embedded every waiting passage,
    and each one's (passages embedded, CPU seconds)."""
    env = {**os.environ, "NEWSBOT_DATABASE_URL": url}
    cpus = sorted(os.sched_getaffinity(0))
    command = [sys.executable, "-m", "bot.cli", "worker", "--once"]
    started = time.monotonic()
    procs = [
        subprocess.Popen(
            ["taskset", "-c", str(cpus[i % len(cpus)]), *command],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(count)
    ]
    shares = []
    for proc in procs:
        assert proc.stdout is not None
        output = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        if status != 0:
            raise RuntimeError(f"a worker failed ({status})")
        shares.append((int(output.split()[0]), usage.ru_utime + usage.ru_stime))
    return time.monotonic() - started, shares


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--articles", type=int, default=120)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    server = None
    server_url = os.environ.get("NEWSBOT_DATABASE_URL")
    if not server_url:
        from tests.postgres import start_postgres

        server = start_postgres()
        server_url = server.url()
    try:
        url = fresh_database(server_url)
        settings = Settings(_env_file=None)
        embedder = embedder_for(settings)
        store = PgStore(url, embedder.model_id, embedder.dim)
        articles = load_corpus(CORPUS)[: args.articles]
        report = store.add_articles(articles, embedder, defer=True)
        passages = pending_passages(store)
        store.close()
        print(f"{len(articles)} articles, {report.passages} passages; {os.cpu_count()} CPUs\n")
        print(
            "| workers | seconds | passages/s | speed-up | each worker: passages, CPU s |\n"
            "|---|---|---|---|---|"
        )
        first = None
        for count in args.workers:
            forget_vectors(url)
            seconds, shares = run_workers(url, count)
            first = first or seconds
            each = "; ".join(f"{n}, {cpu:.1f}" for n, cpu in shares)
            print(
                f"| {count} | {seconds:.1f} | {passages / seconds:.2f} | {first / seconds:.2f} "
                f"| {each} |",
                flush=True,
            )
        print(f"\nload average: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    finally:
        if server is not None:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
