"""What both index backends share: the errors, the encoder protocols, what a store returns
(StoredPassage, IngestReport, StoreStats), the hashing and float16 blobs of vectors, how
articles are cut into passages and quotable sentences for an ingest, and StoreBase (the
embedding cache and the sentence vectors over each backend's own reads).

The backends: `index.store.Store` (SQLite, the source of truth, with its FAISS vector index
in `index.faiss_index`) and `index.pg_store.PgStore` (PostgreSQL + pgvector). Nothing here
knows which one runs.
"""

from __future__ import annotations

import datetime
import hashlib
import logging
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from index import chunking
from index.articles import Article, article_problem
from index.chunking import Passage, passage_embedding_text, quote_spans, split_into_passages

if TYPE_CHECKING:
    from index.backend import IndexStore

log = logging.getLogger(__name__)

BATCH_ARTICLES = 32
# Passages whose sentence vectors `sentence_vectors` keeps in memory (~9 KB each: ~45 MB).
SENTENCE_CACHE = 5_000
# What cut the quotable sentences recorded with each passage (`passages.sentences`): the
# chunker's own code. After a change to it the recorded lists are ignored (and cleared at
# the next write) until a reindex: sentences are then found from the text, as before.
SENTENCE_SPLIT = hashlib.sha256(Path(chunking.__file__).read_bytes()).hexdigest()[:16]
# Lead passages this similar (cosine) belong to one story: the same dispatch from another
# source or republished. Set high on purpose: merging two stories would hide an alert.
STORY_SIMILARITY = 0.95
STORY_DAYS = 3


class StoreError(RuntimeError):
    """A problem with the index on disk that the operator must act on."""


class ModelMismatchError(StoreError):
    """The index was built by another embedding model; vectors of two models can't mix."""


class StoreRetired(StoreError):
    """A reindex swapped a new store in: writes must go to it, not to this one."""


class DatabaseUnavailable(StoreError):
    """The database in NEWSBOT_DATABASE_URL cannot be reached (down, wrong URL, refused)."""


class DiskFullError(StoreError):
    """The disk (or the quota) holding the index is full: nothing of the write was kept."""


class SecondaryEncoder(Protocol):
    """A second embedding model (no prompts) whose passage vectors live beside e5's."""

    model_id: str
    dim: int

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray: ...


class PassageEncoder(Protocol):
    """What the store needs from an embedder."""

    model_id: str
    dim: int
    max_tokens: int

    def count_tokens(self, text: str) -> int: ...

    def embed_passages(self, texts: Sequence[str], progress: bool = False) -> np.ndarray: ...


@dataclass(frozen=True)
class StoredPassage:
    """A passage as retrieved, with the article it belongs to."""

    id: int
    article: Article
    ordinal: int
    heading: str
    text: str
    start: int
    end: int
    story_id: str = ""


@dataclass
class IngestReport:
    """What one ingest changed."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    passages: int = 0
    embedded: int = 0
    article_ids: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)  # one line per article not indexed


@dataclass(frozen=True)
class StoreStats:
    articles: int
    passages: int
    sources: int
    model: str | None
    last_update: str | None
    index_bytes: int
    first_date: str | None
    last_date: str | None


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def vector_blob(vectors: np.ndarray) -> bytes:
    """e5 vectors as the `embeddings` table keeps them: float16, half the bytes of float32
    (a cosine moves by under 1e-3; bench/vectors.py measures the effect)."""
    return np.ascontiguousarray(vectors, dtype=np.float16).tobytes()


def blob_vectors(blob: bytes, dim: int) -> np.ndarray:
    """float32 rows (dim wide) of `embeddings` blobs (one or several joined)."""
    return np.frombuffer(blob, dtype=np.float16).astype(np.float32).reshape(-1, dim)


def sentence_digests(listed: bytes) -> list[str]:
    """The text hashes (hex) of a `passages.sentences` list: 32-byte sha256 digests."""
    return [listed[i : i + 32].hex() for i in range(0, len(listed), 32)]


def joined_vectors(listed: bytes, vectors: Mapping[str, np.ndarray]) -> bytes:
    """The `sentence_vectors` row of a passage: its sentences' vectors (by the hashes of its
    `sentences` list), float16, one after another."""
    return b"".join(vector_blob(vectors[h]) for h in sentence_digests(listed))


def stored_precision(vectors: np.ndarray) -> np.ndarray:
    """Vectors as they read back from the table, so that what a write puts in FAISS is what a
    rebuild from SQLite gives."""
    return np.asarray(vectors, dtype=np.float16).astype(np.float32)


Chunked = list[tuple[Article, list[Passage], list[str]]]


def chunk_articles(
    articles: Sequence[Article], encoder: PassageEncoder, embed_quotes: bool
) -> tuple[Chunked, list[str], dict[tuple[str, int], bytes]]:
    """Each article's passages and their embedding texts; the quotable sentences to embed;
    each passage's sentence list (by (article id, ordinal)): the concatenated sha256 digests
    of its sentences, so a question reads them without re-cutting the article. The same
    for both backends."""
    chunked: Chunked = []
    quotes: list[str] = []
    sentence_lists: dict[tuple[str, int], bytes] = {}
    for article in articles:
        passages = split_into_passages(article, encoder.count_tokens, encoder.max_tokens)
        texts = [passage_embedding_text(p.heading, p.text) for p in passages]
        chunked.append((article, passages, texts))
        if embed_quotes:
            for p in passages:
                said = [article.text[a:b] for a, b in quote_spans(article.text, p.start, p.end)]
                quotes += said
                sentence_lists[(article.id, p.ordinal)] = b"".join(
                    hashlib.sha256(q.encode("utf-8")).digest() for q in said
                )
    return chunked, quotes, sentence_lists


def body_hash(text: str) -> str:
    """The same body whatever its case, spacing or punctuation marks."""
    return text_hash(" ".join(re.findall(r"\w+", text.lower())))


def close_in_time(a: str | None, b: str | None, days: int = STORY_DAYS) -> bool:
    """Published within `days` of each other, as two reports of one story are; a missing or
    month-only date can't be told apart, so it passes."""
    if not a or not b or len(a) < 10 or len(b) < 10:
        return True
    try:
        delta = datetime.date.fromisoformat(a[:10]) - datetime.date.fromisoformat(b[:10])
    except ValueError:
        return True
    return abs(delta.days) <= days


class StoreBase:
    """What both index backends do alike: which articles an ingest stores, the embedding
    cache and the sentence vectors, over the backend's reads below."""

    dim: int
    model_id: str

    def _init_sentence_cache(self) -> None:
        self._sentence_cache: dict[int, np.ndarray | None] = {}
        self._sentence_generation = -1
        self._sentence_lock = threading.Lock()

    # --- what the backend reads ----------------------------------------------------------

    @property
    def generation(self) -> int:
        """Bumped by every write: in-memory caches are keyed by it."""
        raise NotImplementedError

    def passages(self, ids: Sequence[int]) -> dict[int, StoredPassage]:
        raise NotImplementedError

    def _stored_embeddings(self, hashes: Sequence[str]) -> dict[str, bytes]:
        """The cached vectors (float16 blobs) of these text hashes."""
        raise NotImplementedError

    def _stored_sentence_vectors(self, ids: Sequence[int]) -> dict[int, np.ndarray]:
        """Each passage's sentence vectors from its one stored row, for the passages that
        have one cut by today's chunker."""
        raise NotImplementedError

    def _recorded_sentences(self, ids: Sequence[int]) -> dict[int, list[str]]:
        """The text hashes of each passage's quotable sentences recorded at ingest by
        today's chunker; passages without such a list are left out."""
        raise NotImplementedError

    # --- shared ----------------------------------------------------------------------------

    def _accepted(
        self, articles: Sequence[Article], encoder: PassageEncoder
    ) -> tuple[IngestReport, list[Article]]:
        """What an ingest will store: each article once, those article_problem rejects left
        out (named in the report); an encoder of another model is refused outright."""
        if encoder.model_id != self.model_id:
            raise ModelMismatchError(
                f"this index uses {self.model_id!r}, not {encoder.model_id!r}: run reindex"
            )
        report = IngestReport()
        unique = []
        for article in {a.id: a for a in articles}.values():
            problem = article_problem(article)
            if problem is None:
                unique.append(article)
            else:
                report.rejected.append(f"{article.url or article.title[:80]!r}: {problem}")
        return report, unique

    def _embed_missing(
        self, texts: list[str], encoder: PassageEncoder, embed: bool = True
    ) -> tuple[dict[str, np.ndarray], int]:
        """Vectors of these texts by hash (and how many were embedded now): from the cache,
        the others embedded (unless not `embed`: then they are left out)."""
        wanted = {text_hash(t): t for t in texts}
        found = {
            h: blob_vectors(blob, self.dim)[0]
            for h, blob in self._stored_embeddings(list(wanted)).items()
        }
        missing = [h for h in wanted if h not in found]
        if not missing or not embed:
            return found, 0
        matrix = encoder.embed_passages([wanted[h] for h in missing])
        if matrix.shape != (len(missing), self.dim):
            raise StoreError(f"embedder returned {matrix.shape}, expected {self.dim}-d")
        found.update(zip(missing, stored_precision(matrix), strict=True))
        return found, len(missing)

    def _forget_incomplete_sentences(self) -> None:
        """New vectors were cached: they may be the sentences a passage was remembered as
        lacking (an index cut by an older sentence splitter, whose quotes are embedded
        when first shown), so those passages are read again."""
        with self._sentence_lock:
            self._sentence_cache = {
                pid: v for pid, v in self._sentence_cache.items() if v is not None
            }

    def sentence_vectors(self, ids: Iterable[int]) -> dict[int, np.ndarray]:
        """The stored vectors of each passage's quotable sentences (embedded at ingest), one
        row per sentence, by passage id; a passage with a sentence never embedded is left
        out. Nothing is embedded here. Read from the passage's one row, else from its
        recorded sentences' cached vectors, else from sentences cut from its text; kept in
        memory (up to SENTENCE_CACHE passages) until the next write, or, for a passage left
        out, until new vectors are cached."""
        ids = list(ids)
        generation = self.generation
        with self._sentence_lock:
            if self._sentence_generation != generation:
                self._sentence_cache.clear()
                self._sentence_generation = generation
            cache = self._sentence_cache
            known = {pid: cache[pid] for pid in ids if pid in cache}
        asked = [pid for pid in ids if pid not in known]
        stored = self._stored_sentence_vectors(asked) if asked else {}
        wanted = self._recorded_sentences([p for p in asked if p not in stored]) if asked else {}
        rest = [p for p in asked if p not in stored and p not in wanted]
        for pid, passage in self.passages(rest).items():  # lists not recorded: cut them here
            text = passage.article.text
            spans = quote_spans(text, passage.start, passage.end)
            wanted[pid] = [text_hash(text[a:b]) for a, b in spans]
        fresh: dict[int, np.ndarray | None] = dict(stored)
        if wanted:
            found = self._stored_embeddings(list({h for hs in wanted.values() for h in hs}))
            for pid, hs in wanted.items():
                complete = hs and all(h in found for h in hs)
                fresh[pid] = (
                    blob_vectors(b"".join(found[h] for h in hs), self.dim) if complete else None
                )
        if fresh:
            known.update(fresh)
            with self._sentence_lock:
                if len(self._sentence_cache) + len(fresh) > SENTENCE_CACHE:
                    self._sentence_cache.clear()
                self._sentence_cache.update(fresh)
        return {pid: vectors for pid, vectors in known.items() if vectors is not None}


class RebuildInProgress(RuntimeError):
    """A reindex of this index already runs (in any process; on PostgreSQL, any machine)."""


def catch_up(
    fresh: IndexStore,
    latest: IndexStore,
    snapshot: dict[str, str],
    encoder: PassageEncoder,
    report: IngestReport,
) -> dict[str, str]:
    """Apply to the new index what writers changed in the old one while it was built (since
    `snapshot`, its articles' hashes then); returns the hashes it caught up to."""
    now = latest.article_hashes()
    changed = [i for i, digest in now.items() if snapshot.get(i) != digest]
    gone = [i for i in snapshot if i not in now]
    if changed:
        found = [a for a in (latest.article(i) for i in changed) if a is not None]
        extra = fresh.add_articles(found, encoder)
        report.added += extra.added
        report.updated += extra.updated
        report.passages += extra.passages
        report.embedded += extra.embedded
        log.info("reindex: %d article(s) written meanwhile carried over", len(found))
    if gone:
        fresh.remove_articles(gone)
    return now


def article_from_row(row: Mapping[str, Any]) -> Article:
    """An article from its stored row (SQLite's sqlite3.Row or PostgreSQL's dict row)."""
    return Article(
        id=row["id"],
        title=row["title"],
        text=row["text"],
        date=row["date"],
        source=row["source"],
        url=row["url"],
        lang=row["lang"],
        summary_only=bool(row["summary_only"]),
    )


def float_vector(blob: bytes, dim: int) -> np.ndarray:
    """A second model's cached vector: float16 bytes (or float32, written by older stores)."""
    kind = np.float16 if len(blob) == 2 * dim else np.float32
    return np.frombuffer(bytes(blob), dtype=kind).astype(np.float32)
