"""Alert matching quality on hand-labelled topics over real feed items.

    python -m bench.alerts

Indexes every item of the feeds named in bench/alert_labels.json (feed text only, no page
fetches) with the product's pipeline, runs `bot.alerts.matching_subscriptions` with a
range of z thresholds, picks the one with the best F1 on the dev topics, and prints
precision and recall on dev and test topics around it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from bot.alerts import AlertThresholds, matching_subscriptions
from bot.state import Subscription
from index.articles import Article
from index.embedding import default_cache_dir, get_embedder, model_slug
from index.feeds import FeedSource, item_to_article, parse_feed
from index.store import Store

HERE = Path(__file__).resolve().parent
FEEDS = HERE.parents[1] / "shared" / "bench" / "feeds"


def load_items(feed_files: list[str]) -> list[Article]:
    articles = []
    for name in feed_files:
        parsed = parse_feed(
            (FEEDS / name).read_bytes(), FeedSource(url=f"https://feeds.test/{name}")
        )
        articles += [item_to_article(item) for item in parsed.items]
    return articles


def _labels(title: str, prefixes: list[str]) -> bool:
    return any(title.startswith(p) for p in prefixes)


def prf(
    matched: set[tuple[int, str]], labels: dict[tuple[int, str], bool | None]
) -> tuple[float, float, int, int]:
    """Precision, recall, alerts sent and relevant pairs; 'unsure' pairs are ignored."""
    sent = [labels[k] for k in matched if labels[k] is not None]
    relevant = sum(1 for v in labels.values() if v)
    tp = sum(1 for v in sent if v)
    return (
        (tp / len(sent) if sent else 1.0),
        (tp / relevant if relevant else 1.0),
        len(sent),
        relevant,
    )


def main() -> None:
    spec = json.loads((HERE / "alert_labels.json").read_text(encoding="utf-8"))
    embedder = get_embedder("bundled", default_cache_dir())
    articles = load_items(spec["feeds"])
    folder = default_cache_dir() / "bench" / model_slug(embedder.model_id) / "alerts"
    store = Store(folder, embedder.model_id, embedder.dim)
    store.add_articles(articles, embedder)
    stories = sorted({a.id for a in articles} & set(store.stories_added_since(0.0)))
    titles = {a.id: a.title for a in articles}
    missing = [
        p
        for t in spec["topics"]
        for p in t["relevant"]
        if not any(x.startswith(p) for x in titles.values())
    ]
    if missing:
        raise SystemExit(f"labels match no item: {missing}")
    subs = [Subscription(i, i, "group", t["topic"], False) for i, t in enumerate(spec["topics"])]
    labels: dict[str, dict[tuple[int, str], bool | None]] = {"dev": {}, "test": {}}
    for sub, topic in zip(subs, spec["topics"], strict=True):
        for story in stories:
            rel: bool | None = _labels(titles[story], topic["relevant"])
            if not rel and _labels(titles[story], topic["unsure"]):
                rel = None
            labels[topic["split"]][(sub.id, story)] = rel

    def run(z: float) -> set[tuple[int, str]]:
        found = matching_subscriptions(store, embedder, subs, stories, AlertThresholds(z=z))
        return {(m.subscription.id, m.story_id) for m in found}

    started = time.perf_counter()
    results = {round(float(z), 2): run(float(z)) for z in np.arange(1.5, 4.01, 0.05)}
    per_run = (time.perf_counter() - started) / len(results)

    def split_prf(split: str, z: float) -> tuple[float, float, int, int]:
        matched = {k for k in results[z] if k in labels[split]}
        return prf(matched, labels[split])

    best = max(results, key=lambda z: _f1(*split_prf("dev", z)[:2]))
    print(
        f"{len(articles)} feed items, {len(stories)} stories, {len(subs)} topics; "
        f"matching every topic against every story: {per_run:.2f} s"
    )
    print("| split | z threshold | precision | recall | alerts sent | relevant pairs |")
    print("|---|---|---|---|---|---|")
    for split in ("dev", "test"):
        for z in (round(best - 0.25, 2), best, round(best + 0.25, 2)):
            if z in results:
                prec, rec, sent, relevant = split_prf(split, z)
                mark = " (chosen on dev)" if z == best else ""
                print(f"| {split} | {z:.2f}{mark} | {prec:.3f} | {rec:.3f} | {sent} | {relevant} |")
    store.close()


def _f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r else 0.0


if __name__ == "__main__":
    main()
