"""Chunking speed on hostile text shapes, with the bundled model's tokenizer.

    python -m bench.chunking [--sizes 10000 100000 1000000] [--before e584c22]

Builds each shape (real articles, their words without a full stop on one line, short
sentences, initials, a line of dots, blank lines, a run of spaces, one long word, only
headings) at each size and times split_into_passages on it. With --before REV it also times
index/chunking.py as it was at that git revision, each run in a child process stopped after
--limit seconds, up to --before-max characters. Prints a Markdown table: seconds, passages,
and the characters handed to the tokenizer per character of text. (Ingestion refuses
articles over 300,000 characters; the larger sizes measure the chunker alone.)
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import re
import string
import subprocess
import sys
import time
import types
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path

from index.articles import Article, load_articles
from index.chunking import Passage, split_into_passages
from index.embedding import default_cache_dir, get_embedder

REPO = Path(__file__).resolve().parents[1]
ARTICLES = REPO.parent / "shared" / "bench" / "articles"
Split = Callable[[Article, Callable[[str], int], int], list[Passage]]


def shapes(size: int, prose: str) -> dict[str, str]:
    """Each shape, about `size` characters long."""

    def repeat(unit: str) -> str:
        return (unit * (size // len(unit) + 1))[:size]

    blob = random.Random(0).choices(string.ascii_letters + string.digits + "+/", k=size)
    return {
        "real articles": repeat(prose + "\n\n"),
        "no full stop, one line": repeat(re.sub(r"[.!?…]", "", " ".join(prose.split())) + " "),
        "short sentences": repeat("Oui. "),
        "initials (a. b. c.)": repeat("a. b. c. "),
        "a line of dots, then a word": "Suite" + "." * size + "fin",
        "blank lines between sentences": repeat("Oui." + " \n" * 498 + " "),
        "one run of spaces": "Début." + " " * size + "Fin.",
        "one word (a base64 blob)": "".join(blob),
        "only headings": "\n\n".join(f"Titre numéro {i}" for i in range(size // 17)),
    }


def chunker_at(revision: str) -> Split:
    """split_into_passages as index/chunking.py had it at a git revision."""
    source = subprocess.run(
        ["git", "show", f"{revision}:index/chunking.py"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    module = types.ModuleType("chunking_before")
    sys.modules[module.__name__] = module  # dataclasses look their module up
    exec(compile(source, f"{revision}:index/chunking.py", "exec"), module.__dict__)
    return module.split_into_passages


def measure(
    split: Split, text: str, count_tokens: Callable[[str], int], max_tokens: int
) -> tuple[float, int, float]:
    """Seconds, passages, and characters tokenized per character of text."""
    tokenized = 0

    def counted(part: str) -> int:
        nonlocal tokenized
        tokenized += len(part)
        return count_tokens(part)

    article = Article(title="bench", text=text)
    started = time.perf_counter()
    passages = split(article, counted, max_tokens)
    return time.perf_counter() - started, len(passages), tokenized / max(len(article.text), 1)


def measure_in_child(
    split: Split, text: str, count_tokens: Callable[[str], int], max_tokens: int, limit: float
) -> tuple[float, int, float] | None:
    """measure() in a forked child (which has the tokenizer loaded); None past `limit` s."""
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(
        target=_measure_and_send, args=(split, text, count_tokens, max_tokens, sender)
    )
    child.start()
    result = receiver.recv() if receiver.poll(limit) else None
    if child.is_alive():
        child.kill()
    child.join()
    return result


def _measure_and_send(
    split: Split,
    text: str,
    count_tokens: Callable[[str], int],
    max_tokens: int,
    sender: Connection,
) -> None:
    sender.send(measure(split, text, count_tokens, max_tokens))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--before", metavar="REV", help="also time the chunker of this revision")
    parser.add_argument("--before-max", type=int, default=100_000, help="largest size timed so")
    parser.add_argument("--limit", type=float, default=60.0, help="seconds per 'before' run")
    args = parser.parse_args()

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # the 'before' runs fork
    embedder = get_embedder("bundled", default_cache_dir())
    prose = "\n\n".join(a.text for a in load_articles([ARTICLES]).articles)
    before = chunker_at(args.before) if args.before else None

    rows = []
    for size in args.sizes:
        for shape, text in shapes(size, prose).items():
            seconds, passages, tokenized = measure(
                split_into_passages, text, embedder.count_tokens, embedder.max_tokens
            )
            old = "not run"
            if before is not None and size <= args.before_max:
                result = measure_in_child(
                    before, text, embedder.count_tokens, embedder.max_tokens, args.limit
                )
                old = (
                    f"> {args.limit:.0f} s"
                    if result is None
                    else f"{result[0]:.2f} s, {result[1]} passages, {result[2]:.1f}×"
                )
            rows.append((shape, f"{len(text):,}", old, seconds, passages, tokenized))
            print(f"{shape} {len(text):,}: {seconds:.2f} s ({old})", file=sys.stderr, flush=True)

    print(
        "| shape | characters | before: time, passages, tokenized ÷ length "
        "| after: time | passages | tokenized ÷ length |"
    )
    print("|---|---:|---|---:|---:|---:|")
    for shape, length, old, seconds, passages, tokenized in rows:
        print(f"| {shape} | {length} | {old} | {seconds:.2f} s | {passages} | {tokenized:.1f}× |")


if __name__ == "__main__":
    main()
