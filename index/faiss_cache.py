"""The FAISS index on disk: a snapshot plus an append-only log of the writes made since.

A write appends its added vectors and removed ids to the log (its own size, not the
index's) instead of rewriting the whole index; the snapshot is rewritten only when the log
has grown to a fraction of it. A reader in another process that saw an earlier state reads
only the log records it has not applied. Every record carries the SQLite generation it
brings the index to and a checksum, so a torn record (a writer killed mid-append) is
ignored, and a snapshot newer than a record makes the record moot.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

SNAPSHOT_NAME = "faiss.index"
LOG_NAME = "faiss.log"
TEMP_PREFIX = ".faiss-"
_MAGIC = b"NEWSBOT-FAISS-1\n"
# One record per write: magic, generation, ids removed, ids added, payload bytes, crc32;
# the payload holds the removed ids, the added ids, then the added vectors.
_RECORD = struct.Struct("<4sqqqqI")
_RECORD_MAGIC = b"NBL2"
# Rewrite the snapshot once the log holds this share of its size, and at least this many
# bytes (a small index's log may outgrow it: 4 MiB is ~2,700 passages' vectors).
COMPACT_RATIO = 0.25
COMPACT_MIN_BYTES = 4 << 20


class CacheError(RuntimeError):
    """The snapshot is not a newsbot FAISS file, or is truncated."""


def new_index(dim: int) -> faiss.Index:
    """Exact inner product over normalised vectors (= cosine), addressed by passage id."""
    return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))


@dataclass
class Loaded:
    """An index as read from disk: the generation it reflects, and where reading stopped
    (the snapshot it came from and the log offset), so a later read can go on from there."""

    index: faiss.Index
    generation: int
    snapshot_id: tuple[int, int]
    log_offset: int


class FaissCache:
    """The snapshot and the log of one store folder."""

    def __init__(self, directory: Path, dim: int) -> None:
        self.directory = Path(directory)
        self.dim = dim
        self.snapshot = self.directory / SNAPSHOT_NAME
        self.log = self.directory / LOG_NAME

    # --- reading -------------------------------------------------------------------------

    def load(self) -> Loaded:
        """The snapshot with every complete log record after it applied. Raises
        FileNotFoundError without a snapshot, CacheError when it is not readable."""
        for _ in range(3):  # a writer may replace the snapshot while it is read
            identity = _identity(self.snapshot)
            index, generation = read_snapshot(self.snapshot)
            loaded = Loaded(index, generation, identity, 0)
            if self.catch_up(loaded):
                break
        return loaded

    def catch_up(self, loaded: Loaded) -> bool:
        """Apply the log records written since `loaded` was read; False when the snapshot
        was replaced meanwhile (the caller then loads again)."""
        try:
            if _identity(self.snapshot) != loaded.snapshot_id:
                return False
        except FileNotFoundError:
            return False
        if not self.log.exists():
            return True
        with open(self.log, "rb") as handle:
            handle.seek(loaded.log_offset)
            while True:
                header = handle.read(_RECORD.size)
                if len(header) < _RECORD.size:
                    break
                magic, generation, removed, added, size, crc = _RECORD.unpack(header)
                payload = handle.read(size)
                if magic != _RECORD_MAGIC or len(payload) < size or zlib.crc32(payload) != crc:
                    break  # torn or foreign: stop before it, as if it had not been written
                if generation > loaded.generation:
                    _apply(loaded.index, removed, added, payload, self.dim)
                    loaded.generation = generation
                loaded.log_offset = handle.tell()
        return True

    # --- writing -------------------------------------------------------------------------

    def append(
        self,
        index: faiss.Index,
        generation: int,
        removed: list[int],
        ids: list[int],
        vectors: np.ndarray | None,
    ) -> None:
        """Record one write (already applied to `index`, which now reflects `generation`):
        appended to the log, or the snapshot rewritten when the log has grown large."""
        log_size = self._log_size()
        if not self.snapshot.exists() or (
            log_size >= COMPACT_MIN_BYTES and log_size > COMPACT_RATIO * _size(self.snapshot)
        ):
            self.save(index, generation)
            return
        payload = np.asarray(removed, dtype=np.int64).tobytes()
        if ids:
            assert vectors is not None
            payload += np.asarray(ids, dtype=np.int64).tobytes()
            payload += np.ascontiguousarray(vectors, dtype=np.float32).tobytes()
        header = _RECORD.pack(
            _RECORD_MAGIC, generation, len(removed), len(ids), len(payload), zlib.crc32(payload)
        )
        with open(self.log, "ab") as handle:
            handle.write(header + payload)
            handle.flush()
            os.fsync(handle.fileno())

    def save(self, index: faiss.Index, generation: int) -> None:
        """Rewrite the snapshot (atomically), then empty the log: its records are older
        than the snapshot, so a crash between the two loses nothing."""
        write_snapshot(self.snapshot, index, generation)
        try:
            with open(self.log, "r+b") as handle:
                handle.truncate(0)
        except FileNotFoundError:
            pass

    def position(self, index: faiss.Index, generation: int) -> Loaded:
        """Where the files stand now, for the writer that just wrote them (under the
        writers' lock, so nothing else was appended)."""
        return Loaded(index, generation, _identity(self.snapshot), self._log_size())

    def _log_size(self) -> int:
        return _size(self.log)

    def bytes_on_disk(self) -> int:
        return _size(self.snapshot) + _size(self.log)


def _apply(index: faiss.Index, removed: int, added: int, payload: bytes, dim: int) -> None:
    if removed:
        ids = np.frombuffer(payload, dtype=np.int64, count=removed)
        index.remove_ids(faiss.IDSelectorBatch(ids))
    if added:
        ids = np.frombuffer(payload, dtype=np.int64, count=added, offset=8 * removed)
        vectors = np.frombuffer(payload, dtype=np.float32, offset=8 * (removed + added))
        index.add_with_ids(vectors.reshape(added, dim), ids)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _identity(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_ino, stat.st_mtime_ns


def write_snapshot(path: Path, index: faiss.Index, generation: int) -> None:
    """Write atomically: a temp file in the same folder (named for this process, so one
    left by a killed save can be told from one being written), fsync, then os.replace."""
    payload = faiss.serialize_index(index).tobytes()
    header = json.dumps({"generation": generation, "count": int(index.ntotal)}).encode() + b"\n"
    fd, tmp = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{os.getpid()}-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(_MAGIC + header + payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_snapshot(path: Path) -> tuple[faiss.Index, int]:
    """Read a file written by write_snapshot; raise CacheError when it is not one."""
    data = path.read_bytes()
    if not data.startswith(_MAGIC):
        raise CacheError("not a newsbot FAISS file")
    try:
        header_end = data.index(b"\n", len(_MAGIC))
        header = json.loads(data[len(_MAGIC) : header_end])
        payload = np.frombuffer(data[header_end + 1 :], dtype=np.uint8)
        index = faiss.deserialize_index(payload)
    except (ValueError, RuntimeError) as exc:
        raise CacheError(f"FAISS file unreadable: {exc}") from None
    if index.ntotal != header["count"]:
        raise CacheError("FAISS file is truncated")
    return index, int(header["generation"])


def remove_stale_temp_files(directory: Path) -> None:
    """Temp files of a save that was killed (its process is gone) are never used again."""
    for temp in directory.glob(f"{TEMP_PREFIX}*"):
        owner = temp.name[len(TEMP_PREFIX) :].split("-", 1)[0]
        if owner.isdigit() and _alive(int(owner)):
            continue
        temp.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
