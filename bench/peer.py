"""The peer that bench/speed.py compares newsbot with: LangChain's FAISS vector store over
the same model (multilingual-e5-small, the bundled folder, run by sentence-transformers on
torch), and the limit: raw `SentenceTransformer.encode` of the same texts.

The peer indexes the product's passage texts with e5's "passage: " prompt prepended and
searches with "query: " prepended, as a LangChain user of e5 would. It needs the `bench`
extra (`pip install -e '.[bench]'`); the product never imports this module.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LIMIT_BATCH = 32  # sentence-transformers' default, and HuggingFaceEmbeddings'
PASSAGE = "passage: "
QUERY = "query: "


class PeerMissing(RuntimeError):
    """The `bench` extra (langchain-community, langchain-huggingface) is not installed."""


@dataclass(frozen=True)
class PeerFigures:
    passages: int
    peer_index_s: float  # FAISS.from_texts: embedding, FAISS, docstore
    peer_cpu_s: float  # CPU time of the process meanwhile, every thread
    limit_s: float  # SentenceTransformer.encode alone, batch 32
    limit_cpu_s: float
    search_ms: list[float]  # similarity_search(q, k=5), one question at a time
    search_one_thread_ms: list[float]  # the same with torch on one thread


def _peer_classes() -> tuple[Any, Any]:
    try:
        from langchain_community.vectorstores import FAISS
        from langchain_huggingface import HuggingFaceEmbeddings
    except ImportError as exc:
        raise PeerMissing(
            f"the peer comparison needs the bench extra ({exc.name} is missing): "
            "pip install -e '.[bench]'"
        ) from exc
    return FAISS, HuggingFaceEmbeddings


def measure_peer(folder: Path, texts: Sequence[str], questions: Sequence[str]) -> PeerFigures:
    """Index `texts` with the peer and time `questions` against it; then the limit."""
    faiss_store, embeddings_class = _peer_classes()
    from sentence_transformers import SentenceTransformer

    embeddings = embeddings_class(
        model_name=str(folder),
        model_kwargs={"device": "cpu"},
        encode_kwargs={"normalize_embeddings": True},
    )
    embeddings.embed_documents([PASSAGE + "warm-up"])
    embeddings.embed_query(QUERY + "warm-up")
    prompted = [PASSAGE + text for text in texts]
    t0, c0 = time.perf_counter(), time.process_time()
    peer = faiss_store.from_texts(prompted, embeddings)
    peer_s, peer_cpu_s = time.perf_counter() - t0, time.process_time() - c0
    import torch

    threads = torch.get_num_threads()
    search_ms: dict[int, list[float]] = {threads: [], 1: []}
    for count, times in search_ms.items():
        torch.set_num_threads(count)
        for question in questions:
            t0 = time.perf_counter()
            peer.similarity_search(QUERY + question, k=5)
            times.append((time.perf_counter() - t0) * 1000)
    torch.set_num_threads(threads)

    model = SentenceTransformer(str(folder), device="cpu")
    model.encode([PASSAGE + "warm-up"])
    t0, c0 = time.perf_counter(), time.process_time()
    model.encode(prompted, batch_size=LIMIT_BATCH, normalize_embeddings=True)
    limit_s, limit_cpu_s = time.perf_counter() - t0, time.process_time() - c0
    return PeerFigures(
        len(texts), peer_s, peer_cpu_s, limit_s, limit_cpu_s, search_ms[threads], search_ms[1]
    )


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")
