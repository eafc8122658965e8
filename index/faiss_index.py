"""The SQLite backend's vector index: FAISS indexes that are only caches of SQLite.

`FaissVectors` holds, in memory, the e5 index of every passage (ids: passage ids) and, per
second model (USE), the index of every passage text (ids: `text_key`). Each is kept on disk
as a snapshot + log (index/faiss_cache.py owns that format) stamped with the SQLite
generation it reflects: a write applies itself here after its SQLite commit and appends to
the log; another process catches up by reading only the records it lacks; on open a stale
or broken file is rebuilt from SQLite without re-embedding.

SQLite is the source of truth (index/store.py): `Store` owns one `FaissVectors` and
delegates its vector searches to it; what the index reads of SQLite is `VectorSource`,
which `Store` implements. Nothing here runs SQL.
"""

from __future__ import annotations

import ctypes
import fcntl
import gc
import hashlib
import logging
import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import faiss
import numpy as np

from index.faiss_cache import (
    CacheError,
    FaissCache,
    Loaded,
    absent_from,
    index_for,
    new_index,
    remove_ids,
    remove_stale_temp_files,
    resized,
    search_params,
    stored_ids,
)
from index.store_base import SecondaryEncoder, blob_vectors

log = logging.getLogger(__name__)


class VectorSource(Protocol):
    """What the vector index reads of the source of truth (SQLite: `index.store.Store`)."""

    @property
    def generation(self) -> int:
        """Bumped by every write; the FAISS files record the generation they reflect."""
        ...

    def _passage_count(self) -> int: ...

    def _vector_snapshot(self) -> tuple[int, np.ndarray, np.ndarray]:
        """The generation, every passage id and its e5 vector (float32 rows), in one read."""
        ...

    def _text_hash_snapshot(self, unless: int) -> tuple[int, list[str]] | None:
        """The generation and every distinct passage text hash, in one read; None when the
        generation is still `unless`."""
        ...

    def _passage_vector_blobs(self, ids: Sequence[int]) -> dict[int, bytes]:
        """The stored e5 vectors (float16 blobs) of these passages, by id."""
        ...

    def _passage_text_hashes(self, ids: Sequence[int]) -> dict[int, str]: ...

    def _passages_of_keys(self, keys: list[int]) -> dict[int, list[int]]:
        """Passage ids by text key (several passages may share one text)."""
        ...

    def _secondary_of(self, encoder: SecondaryEncoder, hashes: list[str]) -> np.ndarray:
        """The second model's vectors of these passage texts (by hash), from its cache or
        embedded now."""
        ...


def _trim_heap() -> None:
    """malloc_trim(0) where the C library is glibc; nothing elsewhere."""
    with suppress(OSError, AttributeError):
        ctypes.CDLL(None).malloc_trim(0)


@dataclass
class _SecondaryState:
    """A second model's index as this process holds it, and whether its files are in step."""

    loaded: Loaded
    persisted: bool


def _secondary_name(encoder: SecondaryEncoder) -> str:
    return "secondary-" + hashlib.sha256(encoder.model_id.encode()).hexdigest()[:12]


def text_key(digest: str) -> int:
    """A passage text's id in the second model's index: the first 60 bits of its hash."""
    return int(digest[:15], 16)


@contextmanager
def lock_file(path: Path) -> Iterator[int]:
    """A descriptor of `path` (created if need be) to flock; closing it releases the lock."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        yield fd
    finally:
        os.close(fd)  # closing the descriptor releases its flock


def try_flock(fd: int, kind: int) -> bool:
    try:
        fcntl.flock(fd, kind | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


class FaissVectors:
    """The FAISS indexes of one index directory, kept in step with its SQLite database.

    `lock_path` is the writers' flock (the store's): a reader rebuilds the e5 index only
    when no writer holds it, or when it is the writer."""

    def __init__(self, source: VectorSource, directory: Path, dim: int, lock_path: Path) -> None:
        self._source = source
        self.directory = directory
        self.dim = dim
        self.lock_path = lock_path
        self._lock = threading.RLock()  # guards the in-memory e5 index
        self._secondary: dict[str, _SecondaryState] = {}  # second models' indexes, by id
        self._secondary_lock = threading.RLock()  # guards their in-memory indexes
        self._secondary_update = threading.Lock()  # one thread brings them up to date
        remove_stale_temp_files(directory)
        self._cache = FaissCache(directory, dim)
        self._on_disk: Loaded | None = None  # where this process's view of the files stops
        self.index = new_index(dim)
        self._loaded_generation = -1
        self._load(locked=False)

    def release(self) -> None:
        """Let go of the in-memory indexes (a closed store: 1M passages hold ~1.3 GB) and
        hand the freed memory back to the system. glibc keeps what FAISS frees in its heap
        otherwise: a store closed and another opened (a reindex's swap, a bench's reopen)
        left the process 800 MB larger at 1M."""
        with self._lock, self._secondary_lock:
            self.index = new_index(self.dim)
            self._loaded_generation = -1
            self._on_disk = None
            self._secondary.clear()
        gc.collect()
        _trim_heap()

    # --- the e5 index: loading --------------------------------------------------------------

    def refresh(self, locked: bool = False) -> bool:
        """Reload the FAISS cache when another process wrote since we loaded it."""
        with self._lock:
            if self._loaded_generation == self._source.generation:
                return False
            before = self._loaded_generation
            self._load(locked)
            return self._loaded_generation != before

    def _load(self, locked: bool) -> None:
        """Bring the in-memory FAISS index to SQLite's generation: read only the log records
        written since it was last read, else the whole cache, else rebuild it from SQLite.

        A writer commits SQLite first and appends to the FAISS log after; a reader that
        looks in between finds the files one write behind. It then keeps serving what it
        has and looks again at its next question, rather than rebuilding the whole index
        itself: it rebuilds only when no writer holds the lock (a writer was killed between
        the two, or the disk was full) or when it is the writer (`locked`)."""
        generation, count = self._source.generation, self._source._passage_count()
        if self._on_disk is not None and self._catch_up(generation, count):
            return
        loaded: Loaded | None = None
        try:
            loaded = self._cache.load()
        except FileNotFoundError:
            if count:
                log.warning("FAISS cache missing in %s; rebuilding from SQLite", self.directory)
        except (CacheError, OSError) as exc:
            log.warning("FAISS cache in %s unreadable (%s); rebuilding", self.directory, exc)
        if loaded is not None:
            fresh = loaded.generation == generation and loaded.index.ntotal == count
            if fresh and loaded.index.d == self.dim:
                with self._lock:
                    self.index, self._loaded_generation = loaded.index, generation
                    self._on_disk = loaded
                return
        with lock_file(self.lock_path) as handle:
            if not locked and not try_flock(handle, fcntl.LOCK_SH):
                # A writer is between its SQLite commit and its FAISS write.
                if loaded is not None and loaded.generation > self._loaded_generation:
                    with self._lock:
                        self.index, self._loaded_generation = loaded.index, loaded.generation
                        self._on_disk = loaded
                elif self._loaded_generation < 0:  # nothing to serve yet: build it anyway
                    self._rebuild()
                return
            if loaded is not None:
                log.warning(
                    "FAISS cache in %s is stale (%d vectors, generation %s; SQLite has %d, %s); "
                    "rebuilding from SQLite",
                    self.directory,
                    loaded.index.ntotal,
                    loaded.generation,
                    count,
                    generation,
                )
            self._rebuild()

    def _catch_up(self, generation: int, count: int) -> bool:
        """Apply the log records other processes appended since this one last read; True
        when that brought the index to SQLite's generation."""
        on_disk = self._on_disk
        assert on_disk is not None
        with self._lock:
            if on_disk.index is not self.index or not self._cache.catch_up(on_disk):
                self._on_disk = None
                return False
            self._loaded_generation = on_disk.generation
            return on_disk.generation == generation and self.index.ntotal == count

    def _rebuild(self) -> None:
        index, generation = self._build()
        with self._lock:
            self.index, self._loaded_generation = index, generation
            self._on_disk = None
        try:
            self._cache.save(index, generation)
            self._on_disk = self._position(index, generation)
        except OSError as exc:  # a full disk: the index still serves from memory
            log.warning("could not save the FAISS cache in %s: %s", self.directory, exc)

    def _position(self, index: faiss.Index, generation: int) -> Loaded | None:
        """Where the files stand right after this process wrote them (under the lock)."""
        try:
            return self._cache.position(index, generation)
        except OSError:
            return None

    def _build(self) -> tuple[faiss.Index, int]:
        """The FAISS index of SQLite's passages, and the generation it reflects (read in
        one snapshot, so a write committed meanwhile is in neither or both). Approximate
        (IVF) from faiss_cache.ANN_MIN_VECTORS passages on."""
        generation, ids, vectors = self._source._vector_snapshot()
        return index_for(ids, vectors, self.dim), generation

    def bytes_on_disk(self) -> int:
        return self._cache.bytes_on_disk()

    # --- the e5 index: writing --------------------------------------------------------------

    def apply(
        self, removed: list[int], ids: list[int], vectors: list[np.ndarray], generation: int
    ) -> None:
        """Apply a committed write to the in-memory index and append it to the FAISS log
        (the cost of the write, not of the index; see index/faiss_cache.py)."""
        matrix = np.vstack(vectors).astype(np.float32) if ids else None
        with self._lock:
            if removed:
                remove_ids(self.index, np.array(removed, dtype=np.int64))
            if matrix is not None:
                self.index.add_with_ids(matrix, np.array(ids, dtype=np.int64))
            self._loaded_generation = generation
            index = self.index
        # An index grown past its lists is trained again outside the lock: questions go on
        # being answered from the one in memory, which already holds this write (1M
        # passages: ~75 s on one core). Only this writer changes it (the store's write lock).
        replacement = resized(index, self.dim)
        with self._lock:
            try:
                if replacement is not None:  # grown past exact search: IVF, a new snapshot
                    self.index = replacement
                    self._cache.save(self.index, generation)
                else:
                    self._cache.append(self.index, generation, removed, ids, matrix)
                self._on_disk = self._position(self.index, generation)
            except OSError as exc:
                # SQLite holds the write; the file is rebuilt from it by the next reader.
                self._on_disk = None
                log.warning("could not save the FAISS cache in %s: %s", self.directory, exc)

    # --- the e5 index: reading --------------------------------------------------------------

    def search(
        self, query: np.ndarray, k: int, among: Sequence[int] | None = None, exact: bool = False
    ) -> list[list[tuple[int, float]]]:
        """Top-k (passage id, cosine) for each query vector, only among these passage ids
        when given (an exact search restricted by a FAISS id selector). `exact`: every
        vector compared even when the index is approximate (to measure its recall)."""
        # `selector` must outlive the search: SWIG's params.sel does not hold it.
        selector = None
        if among is not None:
            selector = faiss.IDSelectorBatch(np.asarray(among, dtype=np.int64))
        with self._lock:
            if self.index.ntotal == 0 or k <= 0:
                return [[] for _ in range(len(query))]
            params = search_params(self.index, selector, exact)
            query = np.ascontiguousarray(query, dtype=np.float32)
            scores, ids = self.index.search(query, k, params=params)
        return [
            [(int(i), float(s)) for i, s in zip(row_ids, row_scores, strict=True) if i >= 0]
            for row_ids, row_scores in zip(ids, scores, strict=True)
        ]

    def nearest(self, vector: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The k nearest passages of one vector with the index's own search parameters, as
        FAISS returns them: (cosines, passage ids; -1 where fewer), both empty when the
        index is."""
        with self._lock:
            if self.index.ntotal == 0:
                return np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.int64)
            scores, ids = self.index.search(vector.reshape(1, -1).astype(np.float32), k)
        return scores[0], ids[0]

    def passage_vectors(self, ids: Sequence[int]) -> np.ndarray:
        """The stored e5 vectors of these passages (from the FAISS cache), in order. A
        passage another process wrote since the cache was loaded (the lexical search, which
        reads SQLite, may find it) is read from SQLite; one removed meanwhile gets zeros."""
        with self._lock:
            if not ids:
                return np.zeros((0, self.dim), dtype=np.float32)
            try:
                keys = np.fromiter(ids, dtype=np.int64, count=len(ids))
                return np.asarray(self.index.reconstruct_batch(keys), dtype=np.float32)
            except RuntimeError:  # a key the cache lacks
                stored = self._source._passage_vector_blobs([int(i) for i in ids])
        missing = bytes(2 * self.dim)  # float16 zeros
        return blob_vectors(b"".join(stored.get(int(i), missing) for i in ids), self.dim)

    # --- the second model's index -----------------------------------------------------------

    def secondary_vectors(self, encoder: SecondaryEncoder, wait: bool = True) -> faiss.Index:
        """The second model's FAISS index of every passage text (ids: `text_key`), brought
        to SQLite's generation. It lives beside the e5 index as its own snapshot + log
        (faiss_cache), so opening reads no passage text and no SQLite vector; after a write
        only the texts added are read (from `secondary_embeddings`, or embedded when never
        seen) and those gone removed. Approximate (IVF, 8-bit codes) from
        faiss_cache.ANN_MIN_VECTORS texts on.

        Without `wait` (a question), while another thread brings the index up to date
        (embedding a poll's texts, or training a grown IVF again: ~1.5 min at 1M passages)
        the index is searched as it is instead of waited for: a passage it does not hold yet
        has no second-model score, one removed is not found again (no passage has its key)."""
        with self._secondary_lock:
            state = self._secondary.get(encoder.model_id)
            if state is not None and state.loaded.generation == self._source.generation:
                return state.loaded.index
        if not self._secondary_update.acquire(blocking=wait or state is None):
            assert state is not None
            return state.loaded.index
        try:
            with self._secondary_lock:
                state = self._secondary.get(encoder.model_id)
                if state is not None and state.loaded.generation == self._source.generation:
                    return state.loaded.index
            cache = FaissCache(self.directory, encoder.dim, name=_secondary_name(encoder))
            with lock_file(self.directory / f"{cache.snapshot.name}.lock") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX)  # one process writes its files at a time
                caught_up = False
                if state is not None and state.persisted:
                    with self._secondary_lock:  # other processes' records, applied in place
                        caught_up = cache.catch_up(state.loaded)
                if not caught_up:
                    state = self._load_secondary(cache)
                    with self._secondary_lock:
                        self._secondary[encoder.model_id] = state
                assert state is not None
                self._update_secondary(encoder, cache, state)
            return state.loaded.index
        finally:
            self._secondary_update.release()

    def _load_secondary(self, cache: FaissCache) -> _SecondaryState:
        """Its files, else an empty index (to be filled and saved whole)."""
        try:
            return _SecondaryState(cache.load(), True)
        except FileNotFoundError:
            pass
        except (CacheError, OSError) as exc:
            log.warning("%s unreadable (%s); rebuilding it", cache.snapshot, exc)
        return _SecondaryState(Loaded(new_index(cache.dim), -1, (0, 0), 0), False)

    def _update_secondary(
        self, encoder: SecondaryEncoder, cache: FaissCache, state: _SecondaryState
    ) -> None:
        """Bring the index to SQLite's generation: the passage texts it lacks added, those
        no passage has any more removed; written as one log record."""
        loaded = state.loaded
        snapshot = self._source._text_hash_snapshot(unless=loaded.generation)
        if snapshot is None:
            return
        generation, hashes = snapshot
        current = np.fromiter((text_key(h) for h in hashes), dtype=np.int64, count=len(hashes))
        held = stored_ids(loaded.index)
        gone = held[absent_from(held, np.sort(current))]
        new = absent_from(current, np.sort(held))
        added = [h for h, keep in zip(hashes, new.tolist(), strict=True) if keep]
        vectors = self._source._secondary_of(encoder, added)
        with self._secondary_lock:  # questions search it meanwhile (see secondary_vectors)
            if len(gone):
                remove_ids(loaded.index, gone)
            if added:
                loaded.index.add_with_ids(vectors, current[new])
            loaded.generation = generation
        try:
            # Trained again outside the lock, like the e5 index (FaissVectors.apply).
            replacement = resized(loaded.index, encoder.dim, compact=True)
            if replacement is not None:
                with self._secondary_lock:
                    loaded.index = replacement
            if replacement is not None or not state.persisted:
                cache.save(loaded.index, generation)
            else:
                keys = current[new].tolist()
                cache.append(loaded.index, generation, gone.tolist(), keys, vectors)
            position = cache.position(loaded.index, generation)
            with self._secondary_lock:
                state.loaded = position
            state.persisted = True
        except OSError as exc:  # a full disk: serve from memory, save it whole next time
            state.persisted = False
            log.warning("could not save %s: %s", cache.snapshot, exc)

    def secondary_search(
        self, encoder: SecondaryEncoder, query: np.ndarray, k: int
    ) -> list[tuple[int, float]]:
        """The passages of the k texts most similar to one query under the second model,
        (passage id, cosine), best first."""
        index = self.secondary_vectors(encoder, wait=False)
        with self._secondary_lock:
            if index.ntotal == 0:
                return []
            params = search_params(index, None, exact=False)
            scores, keys = index.search(query.reshape(1, -1).astype(np.float32), k, params=params)
        by_key = self._source._passages_of_keys([int(key) for key in keys[0] if key >= 0])
        return [
            (pid, float(score))
            for key, score in zip(keys[0].tolist(), scores[0].tolist(), strict=True)
            for pid in by_key.get(key, [])
        ]

    def secondary_scores(
        self, encoder: SecondaryEncoder, ids: Iterable[int], query: np.ndarray
    ) -> dict[int, float]:
        """The second model's cosine of one query with each of these passages (their
        stored vectors; a passage the index lacks is left out)."""
        index = self.secondary_vectors(encoder, wait=False)
        hashes = self._source._passage_text_hashes(list(ids))
        keys = {pid: text_key(digest) for pid, digest in hashes.items()}
        scores: dict[int, float] = {}
        if not keys:
            return scores
        with self._secondary_lock:
            try:  # all at once (one call, not one per passage)
                found = index.reconstruct_batch(np.fromiter(keys.values(), np.int64, len(keys)))
                return {pid: float(vector @ query) for pid, vector in zip(keys, found, strict=True)}
            except RuntimeError:  # one is not in the index (a write since it was updated)
                pass
            for pid, key in keys.items():
                try:
                    scores[pid] = float(index.reconstruct(key) @ query)
                except RuntimeError:
                    continue
        return scores
