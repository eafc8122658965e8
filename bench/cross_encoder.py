"""An experiment, not the product: would a cross-encoder fine-tuned here choose the quote better?

    python -m bench.cross_encoder [--frozen 8] [--questions 3000] [--epochs 2]

The bundled e5 model (its sentence-transformers folder, index/bundled_model.py) reads the
question and one candidate sentence as one input ("query: …" and "passage: …", the pair
encoding of XLM-R); the last layer, mean-pooled, goes through a linear head to a score.
The bottom `--frozen` layers stay as they are (their output is computed once per pair and
kept), the layers above and the head are trained with a listwise loss: for each question,
its answer sentence against the quote model's best three wrong ones. Training questions
are drawn from the dev sets xquad_* and piaf_fr-fr only, from the candidates
`python -m bench.train_quotes` cached (run it first); newsqa-dev is never trained on and
is what is printed: how often the top sentence holds a key, by the cross-encoder alone,
by the quote model alone and by their sum at several weights. Needs torch and
transformers (installed with the ONNX export). Measured 2026-12-03 (README, "A fine-tuned
reader, tried"): 0.524 alone against 0.732 for the quote model; not shipped.
"""

from __future__ import annotations

import argparse
import pickle
import random
import sys
import time

import numpy as np

from bench.quality import bench_cache
from bench.train_quotes import Asked, group_of
from bot.answer import quote_weights
from bot.config import Settings
from index.bundled_model import materialise_bundled_model
from index.embedding import bundled_model_dir, embedder_for

NEGATIVES = 3
MAX_TOKENS = 96
BATCH = 8  # questions per step


def main(argv: list[str] | None = None) -> int:
    import torch
    from transformers import AutoModel, AutoTokenizer

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frozen", type=int, default=8, help="bottom layers left as they are")
    parser.add_argument("--questions", type=int, default=3000, help="training questions")
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    rng = random.Random(0)
    settings = Settings()
    cache = bench_cache(settings, embedder_for(settings).model_id) / "quote_candidates.pkl"
    if not cache.exists():
        print(
            "run `python -m bench.train_quotes` first (it caches the candidates)", file=sys.stderr
        )
        return 1
    folder = materialise_bundled_model(bundled_model_dir(settings.cache_dir))
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder, attn_implementation="eager")
    weights = quote_weights()

    Item = tuple[str, list[str], np.ndarray, np.ndarray]
    train: list[Item] = []
    held: list[Item] = []
    for name, rows in pickle.loads(cache.read_bytes()).items():
        for asked in (Asked(*row) for row in rows):
            group = group_of(asked)
            if group is None:
                continue
            item = (asked.question, [c.text for c in asked.candidates], group.y, group.x @ weights)
            (held if name == "newsqa-dev" else train).append(item)
    rng.shuffle(train)
    train = train[: args.questions]
    print(f"training questions {len(train)}, newsqa-dev questions {len(held)}", flush=True)

    def encode(pairs: list[tuple[str, str]]) -> tuple[torch.Tensor, torch.Tensor]:
        batch = tokenizer(
            ["query: " + q for q, _ in pairs],
            ["passage: " + s for _, s in pairs],
            truncation="only_second",
            max_length=MAX_TOKENS,
            padding=True,
            return_tensors="pt",
        )
        return batch["input_ids"], batch["attention_mask"]

    def additive(mask: torch.Tensor) -> torch.Tensor:
        return (1.0 - mask[:, None, None, :].float()) * -1e9

    def run_layers(hidden: torch.Tensor, mask: torch.Tensor, layers: list) -> torch.Tensor:
        for layer in layers:
            out = layer(hidden, attention_mask=additive(mask))
            hidden = out[0] if isinstance(out, tuple) else out
        return hidden

    frozen = list(model.encoder.layer[: args.frozen])
    trained = list(model.encoder.layer[args.frozen :])

    @torch.no_grad()
    def lower(ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return run_layers(model.embeddings(input_ids=ids), mask, frozen)

    head = torch.nn.Linear(model.config.hidden_size, 1)
    torch.nn.init.zeros_(head.weight)
    torch.nn.init.zeros_(head.bias)

    def score(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        hidden = run_layers(hidden, mask, trained)
        m = mask[..., None].float()
        return head((hidden * m).sum(1) / m.sum(1)).squeeze(-1)

    model.eval()
    start = time.time()
    cached = []
    for question, texts, y, old in train:
        positives = [i for i in range(len(texts)) if y[i]]
        negatives = [int(i) for i in np.argsort(-old) if not y[i]][:NEGATIVES]
        if not negatives:
            continue
        pairs = [(question, texts[rng.choice(positives)])] + [
            (question, texts[i]) for i in negatives
        ]
        ids, mask = encode(pairs)
        cached.append((lower(ids, mask), mask))
    print(f"frozen layers: {time.time() - start:.0f} s", flush=True)
    params = [p for layer in trained for p in layer.parameters()]
    optimiser = torch.optim.AdamW(
        [{"params": params, "lr": 3e-5}, {"params": head.parameters(), "lr": 1e-3}],
        weight_decay=0.01,
    )
    model.train()
    for epoch in range(args.epochs):
        rng.shuffle(cached)
        start, total = time.time(), 0.0
        for at in range(0, len(cached), BATCH):
            batch = cached[at : at + BATCH]
            width = max(mask.shape[1] for _, mask in batch)
            pad = torch.nn.functional.pad
            hidden = torch.cat([pad(h, (0, 0, 0, width - h.shape[1])) for h, _ in batch])
            mask = torch.cat([pad(m, (0, width - m.shape[1])) for _, m in batch])
            logits = score(hidden, mask).view(len(batch), -1)
            loss = torch.nn.functional.cross_entropy(
                logits, torch.zeros(len(batch), dtype=torch.long)
            )
            loss.backward()
            optimiser.step()
            optimiser.zero_grad()
            total += loss.item()
        steps = max(1, (len(cached) + BATCH - 1) // BATCH)
        print(f"epoch {epoch}: loss {total / steps:.3f}, {time.time() - start:.0f} s", flush=True)
    model.eval()
    scored = []
    with torch.no_grad():
        for question, texts, y, old in held:
            ids, mask = encode([(question, t) for t in texts])
            scored.append((score(lower(ids, mask), mask).numpy(), old, y))
    print("\n| choice on newsqa-dev | top sentence holds a key |\n|---|---|")
    print(f"| quote model | {np.mean([y[np.argmax(o)] for _, o, y in scored]):.3f} |")
    print(f"| cross-encoder | {np.mean([y[np.argmax(s)] for s, _, y in scored]):.3f} |")
    for alpha in (0.25, 0.5, 1.0, 2.0, 4.0):
        top = np.mean([y[np.argmax(alpha * s + o)] for s, o, y in scored])
        print(f"| quote model + {alpha} × cross-encoder | {top:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
