"""Corroboration on public dev sets: does a story join what it should, and only that?

    python -m bench.corroboration

- newstest2014_mixedpool (dev): French articles and their English translations in one
  index. For each French article with its translation in the pool: whether its story
  (bot/corroboration.py) holds the translation (2 languages), and how many other
  documents it joins.
- orangesum-test_title-fr_to_article-fr (dev): 1,500 dated French articles of one outlet,
  2018-2020, none a copy of another: how many stories join two articles or more (the same
  news on nearby days, or different news), and how many copies of one dispatch it finds.
  Prints the dates and first words of the joined OrangeSum stories, to read.

Measured 2026-12-03 (int8 e5): translations in the story 61/82, 4 French articles joined
to another document; OrangeSum: 117 of 1,500 articles in a story of 2-3 articles (the ones
read: the same news over 1-3 days, a gas leak, a strike, a vote, the May 2020
deconfinement), no copies found. ~25 s.
"""

from __future__ import annotations

import time
from collections import Counter

from bench.quality import open_set_store
from bot.config import Settings
from bot.corroboration import corroboration
from index.embedding import embedder_for

MIXED = "newstest2014_mixedpool"
ORANGESUM = "orangesum-test_title-fr_to_article-fr"
SHOWN = 12


def document_of(article_id: str) -> str:
    """'1009-lemondefr#fr' -> '1009-lemondefr': one document in both languages."""
    return article_id.rsplit("#", 1)[0]


def main() -> None:
    started = time.monotonic()
    settings = Settings()
    embedder = embedder_for(settings)
    store = open_set_store("dev", MIXED, embedder, settings)
    ids = store.article_ids()
    french = sorted(a for a in ids if a.endswith("#fr") and document_of(a) + "#en" in ids)
    found, others = 0, Counter[int]()
    for article_id in french:
        story = corroboration(store, article_id)
        members = set(story.article_ids) if story else set()
        found += document_of(article_id) + "#en" in members
        others[len({document_of(a) for a in members} - {document_of(article_id)})] += 1
    store.close()
    print(f"{MIXED}: {len(french)} French articles with their English translation indexed")
    print(f"  story holds the translation (2 languages): {found}/{len(french)}")
    print(f"  other documents joined: {dict(sorted(others.items()))} (number joined: articles)")

    store = open_set_store("dev", ORANGESUM, embedder, settings)
    sizes, copies = Counter[int](), 0
    joined: list[str] = []
    for article_id in sorted(store.article_ids()):
        story = corroboration(store, article_id)
        if story is None:
            continue
        sizes[len(story.article_ids)] += 1
        copies += bool(story.copies)
        if len(story.article_ids) > 1 and len(joined) < SHOWN:
            titles = [store.article(a) for a in story.article_ids]
            joined.append(" | ".join(f"{t.date} {t.title[:60]}" for t in titles if t))
    store.close()
    total = sum(sizes.values())
    print(f"{ORANGESUM}: {total} articles")
    print(f"  story size (articles): {dict(sorted(sizes.items()))}")
    print(f"  stories with copies of one dispatch: {copies}")
    print("  joined stories, first ones:")
    for line in joined:
        print(f"    {line}")
    print(f"Run time: {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
