"""The second model (USE): a question is embedded on one BLAS thread, to the same vector."""

from __future__ import annotations

import numpy as np

from index.usem import UseEncoder

QUESTIONS = [
    "who denied signing an accord?",
    "Qui a nié la signature d'un accord ?",
    "Combien de tonnes de produits ont brûlé chez Lubrizol ?",
]


def test_question_vectors_are_the_text_vectors() -> None:
    """embed_queries takes its own one-thread path; it must give embed_texts' vectors, bit
    for bit, one question or several."""
    use = UseEncoder(threads=2)
    texts = use.embed_texts(QUESTIONS)
    np.testing.assert_array_equal(use.embed_queries(QUESTIONS), texts)
    alone = use.embed_queries(QUESTIONS[1:2])
    assert alone.dtype == np.float32
    np.testing.assert_array_equal(alone, use.embed_texts(QUESTIONS[1:2]))
    assert use.embed_queries([]).shape == (0, use.dim)
    norms = np.linalg.norm(use.embed_queries(QUESTIONS), axis=1)
    np.testing.assert_allclose(norms, 1.0, atol=1e-6)
