"""Corroboration: how many sources, languages and days the story of a cited article spans.

A story is the cited article, every article the index put in its story (`story_id`: the
same body, or a lead passage nearly identical), and the articles whose lead passage is
close to its lead and that were published within STORY_DAYS of it: the same news told
by another source, or in another language. Near-identical texts (a wire dispatch that
several outlets ran) are one dispatch: they count as one source, and are named as copies.
Read from the store only; nothing is embedded here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from index.backend import IndexStore
from index.store_base import StoredPassage, close_in_time

# Lead passages at least this similar (e5 cosine) report the same news. newstest2014
# (dev): a French article and its English translation 0.88-0.94, median 0.91 (74% at or
# above 0.90); two different articles above 0.90 in 3 of 13,284 pairs. OrangeSum (dev):
# 63 of 9,922 pairs published within 3 days reach 0.90, and the ones read were the same
# news on consecutive days (a strike, a visit, an investigation).
SAME_NEWS = 0.90
# Lead passages searched for the story's other articles.
NEIGHBOURS = 50
# Two texts sharing this share of their word 5-grams (of the shorter one) are copies of
# one dispatch: republished with another headline, a line added, an ending cut.
COPY_OVERLAP = 0.8
SHINGLE = 5


@dataclass(frozen=True)
class Dispatch:
    """One text and the outlets that ran it: `sources[0]` ran it first (by date)."""

    article_ids: tuple[str, ...]
    sources: tuple[str, ...]


@dataclass(frozen=True)
class Corroboration:
    """A cited article's story: its articles (the cited one first), the independent sources
    (a dispatch counts once, under the outlet that ran it first), its languages and the
    first and last publication dates (ISO, as precise as the articles give them)."""

    article_ids: tuple[str, ...]
    sources: tuple[str, ...]
    languages: tuple[str, ...]
    first_date: str | None
    last_date: str | None
    dispatches: tuple[Dispatch, ...]

    @property
    def copies(self) -> tuple[Dispatch, ...]:
        """The dispatches run by more than one outlet or more than once."""
        return tuple(d for d in self.dispatches if len(d.article_ids) > 1)


def shingles(text: str) -> set[int]:
    """The text's word 5-grams (case and punctuation ignored), hashed."""
    words = re.findall(r"\w+", text.lower())
    if len(words) < SHINGLE:
        return {hash(tuple(words))} if words else set()
    return {hash(tuple(words[i : i + SHINGLE])) for i in range(len(words) - SHINGLE + 1)}


def are_copies(a: set[int], b: set[int]) -> bool:
    """Whether two texts' shingles say they are one dispatch (see COPY_OVERLAP)."""
    if not a or not b:
        return False
    return len(a & b) / min(len(a), len(b)) >= COPY_OVERLAP


def group_dispatches(articles: Sequence[StoredPassage]) -> list[list[StoredPassage]]:
    """The story's articles (by their lead passage) grouped into dispatches, each group
    oldest first, groups in the order of their first article in `articles`."""
    texts = [shingles(p.article.text) for p in articles]
    parent = list(range(len(articles)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(articles)):
        for j in range(i + 1, len(articles)):
            if root(i) != root(j) and are_copies(texts[i], texts[j]):
                parent[root(j)] = root(i)
    groups: dict[int, list[StoredPassage]] = {}
    for i, passage in enumerate(articles):
        groups.setdefault(root(i), []).append(passage)
    return [sorted(g, key=lambda p: p.article.date or "9999") for g in groups.values()]


def story_leads(store: IndexStore, article_id: str) -> list[StoredPassage]:
    """The lead passages of the article's story (see the module docstring), its own first."""
    passages, vectors = store.article_passages(article_id)
    if not passages:
        return []
    lead = passages[0]
    (found,) = store.search_vectors(vectors[:1], NEIGHBOURS)
    similar = {pid: score for pid, score in found}
    neighbours = store.passages([pid for pid in similar if pid != lead.id])
    members = [lead]
    for pid, passage in sorted(neighbours.items(), key=lambda kv: -similar[kv[0]]):
        if passage.ordinal != 0 or passage.article.id == article_id:
            continue
        same_story = passage.story_id == lead.story_id
        if same_story or (
            similar[pid] >= SAME_NEWS and close_in_time(passage.article.date, lead.article.date)
        ):
            members.append(passage)
    return members


def outlets(names: Iterable[str]) -> tuple[str, ...]:
    """Each outlet once, as first written, however its feeds case it ("COAST WIRE")."""
    first: dict[str, str] = {}
    for name in names:
        first.setdefault(name.casefold(), name)
    return tuple(first.values())


def corroboration(store: IndexStore, article_id: str) -> Corroboration | None:
    """The story of `article_id` (None when the article is not in the index)."""
    leads = story_leads(store, article_id)
    if not leads:
        return None
    groups = group_dispatches(leads)
    dispatches = tuple(
        Dispatch(
            tuple(p.article.id for p in group),
            outlets(" ".join(p.article.source.split()) or "?" for p in group),
        )
        for group in groups
    )
    dates = sorted(p.article.date for p in leads if p.article.date)
    return Corroboration(
        article_ids=tuple(p.article.id for p in leads),
        sources=outlets(d.sources[0] for d in dispatches),
        languages=tuple(dict.fromkeys(p.article.lang for p in leads if p.article.lang)),
        first_date=dates[0] if dates else None,
        last_date=dates[-1] if dates else None,
        dispatches=dispatches,
    )
