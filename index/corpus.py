"""The data directory: `articles/` in, `store/` built; opening it and rebuilding it whole.

A rebuild writes a complete new store beside the current one and then swaps the folders,
so readers keep using the old index until the new one is ready.
"""

from __future__ import annotations

import fcntl
import logging
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from index.articles import Article, load_articles
from index.backend import IndexStore
from index.store import DB_NAME, Store
from index.store_base import IngestReport, PassageEncoder

# Where callers have always found them (they live in store_base, shared with pg_store).
from index.store_base import RebuildInProgress as RebuildInProgress
from index.store_base import catch_up as catch_up

log = logging.getLogger(__name__)


@dataclass
class RebuildReport:
    articles: int
    passages: int
    embedded: int
    reused: int
    seconds: float
    errors: list[str] = field(default_factory=list)


def store_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "store"


def articles_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "articles"


def write_lock_path(data_dir: Path) -> Path:
    """The writers' lock of a data dir: beside the store folder, so it outlives a swap."""
    return Path(data_dir) / "write.lock"


def open_store(data_dir: Path, encoder: PassageEncoder) -> Store:
    """Open (or create) the data dir's store for this encoder's model."""
    data_dir = Path(data_dir)
    _recover_interrupted_swap(data_dir)
    _remove_abandoned_build(data_dir)
    return Store(
        store_dir(data_dir), encoder.model_id, encoder.dim, lock_path=write_lock_path(data_dir)
    )


def ingest_paths(
    store: Store, paths: list[Path], encoder: PassageEncoder, progress: bool = False
) -> tuple[IngestReport, list[str]]:
    """Load files and add their articles; bad files are reported, the rest ingested."""
    loaded = load_articles(paths)
    report = store.add_articles(loaded.articles, encoder, progress=progress)
    return report, loaded.errors + report.rejected


@contextmanager
def rebuild_lock(data_dir: Path) -> Iterator[None]:
    """Only one rebuild of a data dir at a time, across processes; raises if one runs."""
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    with open(Path(data_dir) / "reindex.lock", "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RebuildInProgress("a reindex of this data directory is already running") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def rebuild_running(data_dir: Path) -> bool:
    """Whether a reindex of this data dir runs now (in any process)."""
    try:
        with rebuild_lock(data_dir):
            return False
    except RebuildInProgress:
        return True


def rebuild_store(
    data_dir: Path,
    encoder: PassageEncoder,
    current: Store | None = None,
    progress: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
) -> tuple[Store, RebuildReport]:
    """Build a fresh store from `articles/` plus every article the current store holds
    (so ingested articles survive), reusing its embeddings when the model is the same,
    then swap it in. Returns the new, open store.

    Writers go on while it builds (ingest, polls, /ingest write to the current store).
    Before the swap, holding the writers' lock, it applies to the new store every article
    added, changed or removed since it started, and marks the old store retired, so a
    writer that waited for the lock, in any process, writes to the new one."""
    started = time.monotonic()
    data_dir = Path(data_dir)
    building = data_dir / "store.new"
    with rebuild_lock(data_dir):
        loaded = (
            load_articles([articles_dir(data_dir)]) if articles_dir(data_dir).exists() else None
        )
        old = current
        if old is None and (store_dir(data_dir) / DB_NAME).exists():
            old = _open_previous(data_dir, encoder)
        snapshot = old.article_hashes() if old is not None else {}
        articles: dict[str, Article] = {}
        if old is not None:
            articles.update({a.id: a for a in old.all_articles()})
        if loaded is not None:
            articles.update({a.id: a for a in loaded.articles})
        shutil.rmtree(building, ignore_errors=True)
        try:
            fresh = Store(building, encoder.model_id, encoder.dim)
            reused = fresh.copy_embeddings_from(old) if old is not None else 0
            report = fresh.add_articles(
                list(articles.values()), encoder, progress=progress, on_progress=on_progress
            )
            with _writers_paused(data_dir, old, encoder) as (latest, opened):
                if latest is not None:
                    catch_up(fresh, latest, snapshot, encoder, report)
                    fresh.close()
                    _carry_over_history(latest.directory / DB_NAME, building / DB_NAME)
                    latest.retire()
                else:
                    fresh.close()
                if opened is not None:
                    opened.close()
                _swap_in(data_dir, building)
                new_store = Store(
                    store_dir(data_dir),
                    encoder.model_id,
                    encoder.dim,
                    lock_path=write_lock_path(data_dir),
                )
        except BaseException:
            # Nothing half-built is left for the next run to trip on; the old store serves.
            shutil.rmtree(building, ignore_errors=True)
            raise
        finally:
            if old is not None and old is not current:
                old.close()
    return new_store, RebuildReport(
        articles=report.added + report.updated + report.unchanged,
        passages=report.passages,
        embedded=report.embedded,
        reused=reused,
        seconds=time.monotonic() - started,
        errors=(loaded.errors if loaded else []) + report.rejected,
    )


@contextmanager
def _writers_paused(
    data_dir: Path, old: Store | None, encoder: PassageEncoder
) -> Iterator[tuple[Store | None, Store | None]]:
    """Hold the data dir's writers' lock; yield the store writers wrote to meanwhile (the
    old one, or one an ingest created while there was none) and the one opened for it."""
    with open(write_lock_path(data_dir), "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        opened = None
        latest = old
        if latest is None and (store_dir(data_dir) / DB_NAME).exists():
            latest = opened = _open_previous(data_dir, encoder)
        yield latest, opened


def _carry_over_history(old_db: Path, new_db: Path) -> None:
    """Articles keep when they were first indexed and which story they belong to: a rebuild
    must not make old stories look new (alerts) or regroup stories already alerted."""
    with sqlite3.connect(new_db) as conn:
        conn.execute("ATTACH DATABASE ? AS old", (str(old_db),))
        conn.execute(
            "UPDATE articles SET "
            "added_at = (SELECT o.added_at FROM old.articles o WHERE o.id = articles.id), "
            "story_id = COALESCE((SELECT o.story_id FROM old.articles o "
            "WHERE o.id = articles.id), story_id) "
            "WHERE id IN (SELECT id FROM old.articles)"
        )
        conn.commit()
        conn.execute("DETACH DATABASE old")


def _open_previous(data_dir: Path, encoder: PassageEncoder) -> Store | None:
    """The old store, whatever model built it (only its articles are needed then)."""
    db = store_dir(data_dir) / DB_NAME
    with sqlite3.connect(db) as conn:
        row = conn.execute("SELECT value FROM meta WHERE key='model_id'").fetchone()
        dim = conn.execute("SELECT value FROM meta WHERE key='dim'").fetchone()
    if row is None or dim is None:
        return None
    return Store(store_dir(data_dir), row[0], int(dim[0]), lock_path=write_lock_path(data_dir))


def _swap_in(data_dir: Path, building: Path) -> None:
    target = store_dir(data_dir)
    retired = data_dir / "store.old"
    shutil.rmtree(retired, ignore_errors=True)
    if target.exists():
        target.rename(retired)
    building.rename(target)
    shutil.rmtree(retired, ignore_errors=True)


def _recover_interrupted_swap(data_dir: Path) -> None:
    """A crash between the two renames of a swap leaves store.old and no store: undo it
    (unless a reindex is between those renames right now)."""
    target = store_dir(data_dir)
    retired = data_dir / "store.old"
    if not target.exists() and retired.exists() and not rebuild_running(data_dir):
        log.warning("recovering %s from an interrupted reindex", target)
        with sqlite3.connect(retired / DB_NAME) as conn:  # it was marked retired before
            conn.execute("DELETE FROM meta WHERE key = 'retired'")
        retired.rename(target)
    for _ in range(100):  # a swap in progress takes two renames: wait for the second
        if target.exists() or not retired.exists():
            return
        time.sleep(0.05)


def _remove_abandoned_build(data_dir: Path) -> None:
    """A reindex that was killed leaves a half-built store.new: nothing uses it."""
    building = data_dir / "store.new"
    if building.exists() and not rebuild_running(data_dir):
        log.warning("removing %s left by an interrupted reindex", building)
        shutil.rmtree(building, ignore_errors=True)


def reindex_in_database(
    store: IndexStore,
    data_dir: Path,
    encoder: PassageEncoder,
    progress: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
) -> RebuildReport:
    """A reindex of the PostgreSQL index: `articles/` and every article it holds built
    again in a fresh schema with `encoder`'s model, then swapped in for every process
    (index.pg_store.rebuild_database). `store` may hold another model's index when it was
    opened by open_database_index."""
    from index.pg_store import PgStore, rebuild_database

    if not isinstance(store, PgStore):
        raise TypeError(f"not a database index: {store.location}")
    started = time.monotonic()
    loaded = load_articles([articles_dir(data_dir)]) if articles_dir(data_dir).exists() else None
    report, reused = rebuild_database(
        store, loaded.articles if loaded else [], encoder, progress, on_progress
    )
    return RebuildReport(
        articles=report.added + report.updated + report.unchanged,
        passages=report.passages,
        embedded=report.embedded,
        reused=reused,
        seconds=time.monotonic() - started,
        errors=(loaded.errors if loaded else []) + report.rejected,
    )


def open_database_index(url: str, encoder: PassageEncoder) -> IndexStore:
    """The PostgreSQL index as a reindex reads it: whatever model built it (only its
    articles are needed then, and its vectors only if that is `encoder`'s model), as
    _open_previous opens the SQLite store. It is for the reindex only: its vectors may be
    another model's than `encoder`'s, whose writes it refuses then."""
    from index.pg_store import PgStore

    return PgStore(url, encoder.model_id, encoder.dim, any_model=True)
