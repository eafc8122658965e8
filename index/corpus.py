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
from index.store import DB_NAME, IngestReport, PassageEncoder, Store

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


def open_store(data_dir: Path, encoder: PassageEncoder) -> Store:
    """Open (or create) the data dir's store for this encoder's model."""
    _recover_interrupted_swap(Path(data_dir))
    return Store(store_dir(data_dir), encoder.model_id, encoder.dim)


def ingest_paths(
    store: Store, paths: list[Path], encoder: PassageEncoder, progress: bool = False
) -> tuple[IngestReport, list[str]]:
    """Load files and add their articles; bad files are reported, the rest ingested."""
    loaded = load_articles(paths)
    report = store.add_articles(loaded.articles, encoder, progress=progress)
    return report, loaded.errors


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


class RebuildInProgress(RuntimeError):
    pass


def rebuild_store(
    data_dir: Path,
    encoder: PassageEncoder,
    current: Store | None = None,
    progress: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
) -> tuple[Store, RebuildReport]:
    """Build a fresh store from `articles/` plus every article the current store holds
    (so ingested articles survive), reusing its embeddings when the model is the same,
    then swap it in. Returns the new, open store."""
    started = time.monotonic()
    data_dir = Path(data_dir)
    with rebuild_lock(data_dir):
        loaded = (
            load_articles([articles_dir(data_dir)]) if articles_dir(data_dir).exists() else None
        )
        articles: dict[str, Article] = {}
        old = current
        if old is None and (store_dir(data_dir) / "newsbot.sqlite3").exists():
            old = _open_previous(data_dir, encoder)
        if old is not None:
            articles.update({a.id: a for a in old.all_articles()})
        if loaded is not None:
            articles.update({a.id: a for a in loaded.articles})
        building = data_dir / "store.new"
        shutil.rmtree(building, ignore_errors=True)
        fresh = Store(building, encoder.model_id, encoder.dim)
        reused = fresh.copy_embeddings_from(old) if old is not None else 0
        report = fresh.add_articles(
            list(articles.values()), encoder, progress=progress, on_progress=on_progress
        )
        fresh.close()
        if old is not None:
            _carry_over_history(old.directory / DB_NAME, building / DB_NAME)
        if old is not None and old is not current:
            old.close()
        _swap_in(data_dir, building)
        new_store = Store(store_dir(data_dir), encoder.model_id, encoder.dim)
    return new_store, RebuildReport(
        articles=report.added + report.updated + report.unchanged,
        passages=report.passages,
        embedded=report.embedded,
        reused=reused,
        seconds=time.monotonic() - started,
        errors=loaded.errors if loaded else [],
    )


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
    db = store_dir(data_dir) / "newsbot.sqlite3"
    with sqlite3.connect(db) as conn:
        row = conn.execute("SELECT value FROM meta WHERE key='model_id'").fetchone()
        dim = conn.execute("SELECT value FROM meta WHERE key='dim'").fetchone()
    if row is None or dim is None:
        return None
    return Store(store_dir(data_dir), row[0], int(dim[0]))


def _swap_in(data_dir: Path, building: Path) -> None:
    target = store_dir(data_dir)
    retired = data_dir / "store.old"
    shutil.rmtree(retired, ignore_errors=True)
    if target.exists():
        target.rename(retired)
    building.rename(target)
    shutil.rmtree(retired, ignore_errors=True)


def _recover_interrupted_swap(data_dir: Path) -> None:
    """A crash between the two renames of a swap leaves store.old and no store: undo it."""
    target = store_dir(data_dir)
    retired = data_dir / "store.old"
    if not target.exists() and retired.exists():
        log.warning("recovering %s from an interrupted reindex", target)
        retired.rename(target)
