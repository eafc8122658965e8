"""The answering engine: one embedder, one store, one retriever, shared by CLI and bot.

It owns the swap of the store after a reindex, so questions keep being answered from the
old index while a new one is built.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from bot.answer import Answer, compose_answer
from bot.config import Settings
from bot.corroboration import corroboration
from bot.followup import Thread, answer_followup
from bot.phrasing import Phraser
from index.articles import Article, clean_text, load_articles
from index.backend import IndexStore
from index.corpus import (
    RebuildReport,
    open_store,
    rebuild_lock,
    rebuild_store,
    reindex_in_database,
)
from index.dates import Period, question_period
from index.embedding import Embedder, embedder_for
from index.search import Fusion, Retrieval, Retriever, SearchFilters
from index.store import Store
from index.store_base import IngestReport, StoreRetired, StoreStats

log = logging.getLogger(__name__)

RETIRE_AFTER_S = 60.0
T = TypeVar("T")


def retention_cutoff(days: int, now: float | None = None) -> tuple[str, float]:
    """The moment `days` before `now`, as an ISO date and as a timestamp."""
    moment = (time.time() if now is None else now) - days * 86400
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%d"), moment


def question_filters(
    question: str, filters: SearchFilters | None
) -> tuple[SearchFilters | None, Period | None]:
    """The filters one question is searched with, and the period read from its words
    (None when it names no date, or when `filters` already sets dates)."""
    if filters is not None and (filters.since or filters.until):
        return filters, None
    period = question_period(question)
    if period is None:
        return filters, None
    sources = filters.sources if filters else ()
    return SearchFilters(since=period.since, until=period.until, sources=sources), period


def answer_questions(
    retriever: Retriever,
    store: IndexStore,
    embedder: Embedder,
    settings: Settings,
    questions: Sequence[str],
    filters: SearchFilters | None = None,
    k: int | None = None,
    floor: float | None = None,
) -> list[tuple[Retrieval, Answer]]:
    """Each question's retrieval and answer; the embedder batches their vectors.

    A month or day named in a question ("in September 2023") is first searched alone
    (unless `filters` sets dates): if articles of that date answer it, only they are
    cited. If they don't, the question is answered from every date and the answer says
    that nothing of the named date was found: the date may be the subject's ("the price
    of oil in March 1974", "a trial set for May 2021") rather than the article's."""

    def compose(retrieval: Retrieval) -> Answer:
        return compose_answer(
            retrieval,
            store,
            embedder,
            settings.max_citations,
            settings.score_floor,
        )

    vectors = retriever.encoder.embed_queries(list(questions)) if questions else None
    results: list[tuple[Retrieval, Answer] | None] = [None] * len(questions)
    periods: list[Period | None] = [None] * len(questions)
    for i, question in enumerate(questions):
        dated_filters, periods[i] = question_filters(question, filters)
        if periods[i] is None or vectors is None:
            continue
        (dated,) = retriever.retrieve_many(
            [question], k=k, filters=dated_filters, floor=floor, vectors=vectors[i : i + 1]
        )
        answer = compose(dated)
        if answer.answered:
            results[i] = (dated, dataclasses.replace(answer, period=periods[i]))
    # Every other question (and a dated one its date did not answer) in one batch.
    rest = [i for i, result in enumerate(results) if result is None]
    if rest and vectors is not None:
        retrievals = retriever.retrieve_many(
            [questions[i] for i in rest], k=k, filters=filters, floor=floor, vectors=vectors[rest]
        )
        for i, retrieval in zip(rest, retrievals, strict=True):
            answer = compose(retrieval)
            if periods[i] is not None:
                answer = dataclasses.replace(answer, period=periods[i], dated=False)
            results[i] = (retrieval, answer)
    return [result for result in results if result is not None]


def corroborated(store: IndexStore, answer: Answer) -> Answer:
    """The answer with each citation's story: its sources, languages and days."""
    if not answer.citations:
        return answer
    citations = [
        dataclasses.replace(c, story=corroboration(store, c.article_id)) for c in answer.citations
    ]
    return dataclasses.replace(answer, citations=citations)


def build_retriever(settings: Settings, store: IndexStore, embedder: Embedder) -> Retriever:
    """The product's retriever: e5, fused with the signals the settings turn on."""
    fusion = Fusion(
        settings.lexical_weight,
        settings.use_weight,
        settings.use_cross_only,
        cross_lexical=settings.cross_lexical_share,
        secondary_question=settings.use_question_share,
        sentence=settings.sentence_weight,
        sentence_headline=settings.sentence_headline_share,
    )
    secondary = None
    if fusion.secondary > 0:
        from index.usem import get_use_encoder

        secondary = get_use_encoder()
    return Retriever(
        store,
        embedder,
        k=settings.top_k,
        floor=settings.passage_floor,
        fusion=fusion,
        secondary=secondary,
    )


def open_index(settings: Settings, embedder: Embedder) -> IndexStore:
    """The index the settings name: PostgreSQL + pgvector when NEWSBOT_DATABASE_URL is set
    (the bot's state is there too; questions read from NEWSBOT_DATABASE_READ_URL's replica
    when that is set), else the data dir's SQLite + FAISS store."""
    if settings.database_url is not None:
        from index.pg_store import PgStore

        url = settings.database_url.get_secret_value()
        replica = settings.database_read_url
        read_url = None if replica is None else replica.get_secret_value()
        return PgStore(url, embedder.model_id, embedder.dim, read_url=read_url)
    return open_store(settings.data_dir, embedder)


class Engine:
    """Everything needed to answer questions from the data directory's index."""

    def __init__(self, settings: Settings, embedder: Embedder | None = None) -> None:
        self.settings = settings
        self.embedder = embedder or embedder_for(settings)
        self._swap_lock = threading.Lock()
        self._store: IndexStore = open_index(settings, self.embedder)
        self.phraser: Phraser | None = None
        if settings.llm_base_url:
            key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
            self.phraser = Phraser(
                settings.llm_base_url, settings.llm_model, key, settings.llm_timeout
            )

    @property
    def store(self) -> IndexStore:
        """The data dir's current store: after a reindex (by this process or any other)
        swapped a new one in, the next call gets the new one; the old one is closed once
        questions already running on it are done."""
        store = self._store
        if store.retired:
            with self._swap_lock:
                if self._store is store:
                    log.info("the index in %s was rebuilt: reopening it", store.location)
                    self._install(open_index(self.settings, self.embedder))
            store = self._store
        return store

    def _install(self, new: IndexStore) -> None:
        """Swap `new` in (under _swap_lock); questions still reading the old one may go on
        for a while, so it is closed a little later."""
        old, self._store = self._store, new
        timer = threading.Timer(RETIRE_AFTER_S, old.close)
        timer.daemon = True
        timer.start()

    def _write(self, write: Callable[[IndexStore], T]) -> T:
        """Run a write on the current store; when a reindex swapped a new store in while
        the write waited for the lock, run it on the new one (it is never lost)."""
        for _ in range(3):
            try:
                return write(self.store)
            except StoreRetired:
                continue
        return write(self.store)

    def ask(self, questions: Sequence[str], filters: SearchFilters | None = None) -> list[Answer]:
        """Answer several questions (see `answer_questions`). Each is cleaned first: text
        from any caller may hold lone surrogates or control characters a tokenizer rejects."""
        questions = [clean_text(q) for q in questions]
        store = self.store
        retriever = build_retriever(self.settings, store, self.embedder)
        answers = [
            corroborated(store, answer)
            for _, answer in answer_questions(
                retriever, store, self.embedder, self.settings, questions, filters
            )
        ]
        if self.phraser is None:
            return answers
        return [self._phrased(a) if a.answered else a for a in answers]

    def ask_followup(self, question: str, thread: Thread) -> Answer:
        """A question replying to an answer: answered within that answer's story (see
        bot/followup.py)."""
        store = self.store
        retriever = build_retriever(self.settings, store, self.embedder)
        answer = corroborated(
            store,
            answer_followup(
                retriever, store, self.embedder, self.settings, clean_text(question), thread
            ),
        )
        return self._phrased(answer) if self.phraser is not None and answer.answered else answer

    def _phrased(self, answer: Answer) -> Answer:
        assert self.phraser is not None
        line = self.phraser.phrase(answer.question, answer.citations)
        return answer if line is None else dataclasses.replace(answer, answer=line, phrased=True)

    def ingest(
        self, paths: Sequence[Path], progress: bool = False
    ) -> tuple[IngestReport, list[str]]:
        loaded = load_articles(list(paths))
        report = self._write(
            lambda store: store.add_articles(loaded.articles, self.embedder, progress=progress)
        )
        self.prepare(self.store)
        return report, loaded.errors + report.rejected

    def add_articles(self, articles: Sequence[Article]) -> IngestReport:
        """Index new articles (a feed poll, one page) and prepare them for questions."""
        report = self._write(lambda store: store.add_articles(articles, self.embedder))
        if report.added or report.updated:
            self.prepare(self.store)
        return report

    def remove(self, ref: str) -> Article | None:
        """Take the article `ref` names (id or link) out of the index; None if unknown.
        A file in DATA_DIR/articles/ comes back at the next reindex unless deleted too.
        Raises RebuildInProgress while a reindex runs (the rebuilt index would keep it)."""
        with rebuild_lock(self.settings.data_dir):  # RebuildInProgress: it would come back
            found = self.store.find_article(ref)
            if found is None or not self._write(lambda store: store.remove_articles([found.id])):
                return None
            self.prepare(self.store)
            return found

    def forget_older_than(self, days: int, now: float | None = None) -> int:
        """Remove the articles older than `days` (see Store.articles_older_than)."""
        cutoff, moment = retention_cutoff(days, now)
        removed = self._write(
            lambda store: store.remove_articles(store.articles_older_than(cutoff, moment))
        )
        if removed:
            log.info("retention: %d article(s) older than %s forgotten", removed, cutoff)
            self.prepare(self.store)
        return removed

    def prepare(self, store: IndexStore) -> None:
        """Compute what the first question would otherwise wait for: the second model's
        vectors of passages it has not seen (after an ingest, a poll or a rebuild)."""
        if self.settings.use_weight > 0:
            from index.usem import get_use_encoder

            store.secondary_vectors(get_use_encoder())

    def reindex(
        self, progress: bool = False, on_progress: Callable[[int, int], None] | None = None
    ) -> RebuildReport:
        """Rebuild the whole index in a new folder (on PostgreSQL: a new schema, see
        pg_store.rebuild_database), then swap it in for every reader."""
        old = self.store
        if not isinstance(old, Store):
            report = reindex_in_database(
                old, self.settings.data_dir, self.embedder, progress, on_progress
            )
            self.prepare(self.store)  # reopened in the new schema
            return report
        new_store, report = rebuild_store(
            self.settings.data_dir,
            self.embedder,
            current=old,
            progress=progress,
            on_progress=on_progress,
        )
        self.prepare(new_store)
        with self._swap_lock:
            if self._store is old:
                self._install(new_store)
            else:  # a writer of this process already followed the swap
                new_store.close()
        return report

    def stats(self) -> StoreStats:
        return self.store.stats()

    def close(self) -> None:
        self._store.close()
        if self.phraser is not None:
            self.phraser.close()
