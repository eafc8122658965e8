"""A sentence-transformers model run from its ONNX export on onnxruntime, without torch.

It reproduces what sentence-transformers does for the folders newsbot uses: the folder's
tokenizer.json (truncated at the model's max_seq_length), the prompt prepended, the
transformer, mean (or CLS) pooling over the tokens, L2 normalisation.
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Tokenizer

POOLING_MODES = ("mean", "cls")


class OnnxModelError(RuntimeError):
    """The folder's layout is one this runtime does not reproduce."""


@dataclass(frozen=True)
class FolderLayout:
    """What a sentence-transformers folder says about its encoding around the transformer."""

    prompts: dict[str, str]
    max_tokens: int
    pooling: str
    dim: int


def read_layout(folder: Path) -> FolderLayout:
    """Prompts, sequence limit, pooling and dimension, as sentence-transformers reads them."""
    folder = Path(folder)
    config = _json(folder / "config.json") or {}
    modules = _json(folder / "modules.json") or [
        {"path": "", "type": "sentence_transformers.models.Transformer"},
        {"path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    pooling = "mean"
    for module in modules:
        kind = str(module.get("type", "")).rsplit(".", 1)[-1]
        if kind == "Pooling":
            pooling = _pooling_mode(_json(folder / module.get("path", "") / "config.json") or {})
        elif kind not in ("Transformer", "Normalize"):
            raise OnnxModelError(
                f"the ONNX embedder does not run a {kind!r} module; use NEWSBOT_EMBEDDER=torch"
            )
    st_config = _json(folder / "config_sentence_transformers.json") or {}
    bert_config = _json(folder / "sentence_bert_config.json") or {}
    tokenizer_config = _json(folder / "tokenizer_config.json") or {}
    max_tokens = bert_config.get("max_seq_length") or tokenizer_config.get("model_max_length")
    if not isinstance(max_tokens, int) or max_tokens > 100_000:
        max_tokens = int(config.get("max_position_embeddings", 514)) - 2
    return FolderLayout(
        prompts={k: v for k, v in (st_config.get("prompts") or {}).items() if v},
        max_tokens=int(max_tokens),
        pooling=pooling,
        dim=int(config["hidden_size"]),
    )


def _pooling_mode(config: dict[str, Any]) -> str:
    modes = [k for k, v in config.items() if k.startswith("pooling_mode_") and v is True]
    if modes == ["pooling_mode_mean_tokens"] and config.get("include_prompt", True):
        return "mean"
    if modes == ["pooling_mode_cls_token"]:
        return "cls"
    raise OnnxModelError(
        f"the ONNX embedder pools by mean (prompt included) or CLS token, not {modes}; "
        "use NEWSBOT_EMBEDDER=torch for this model"
    )


def open_session(onnx_path: Path, optimised_copy: Path | None = None) -> Any:
    """An onnxruntime session on one thread (the encoder runs one per core), its threads not
    spinning; `optimised_copy`: where to write the graph as onnxruntime will run it."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # Spinning threads burn the cores that the bot's other work (and other processes) need.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    if optimised_copy is not None:
        options.optimized_model_filepath = str(optimised_copy)
    # Nor may onnxruntime fuse each residual Add and its LayerNormalization back into
    # SkipLayerNormalization at load (onnx_export.export_fp32 says why): ~30% of a text's
    # run on one thread.
    return ort.InferenceSession(
        str(onnx_path),
        options,
        providers=["CPUExecutionProvider"],
        disabled_optimizers=["SkipLayerNormFusion"],
    )


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None


class OnnxEncoder:
    """One onnxruntime session and the folder's tokenizer.

    Each text is a run of its own (see `encode`), on one thread; several texts run
    `threads` at once. A text's operators are too small to split well across cores: split,
    they cost ~10% more CPU and leave cores waiting on one another between operators, where
    a run per core keeps every core busy."""

    def __init__(self, onnx_path: Path, folder: Path, threads: int) -> None:
        self.layout = read_layout(folder)
        # One tokenizer, never truncating: it counts tokens, and `token_ids` truncates as
        # the folder's own truncation would. (A 250k-word tokenizer takes ~290 MB; a second,
        # truncating copy cost as much again.)
        tokenizer = Tokenizer.from_file(str(Path(folder) / "tokenizer.json"))
        tokenizer.no_truncation()
        tokenizer.no_padding()
        self.tokenizer = tokenizer
        self._specials = tokenizer.num_special_tokens_to_add(is_pair=False)
        self.session = open_session(onnx_path)
        self._inputs = {i.name for i in self.session.get_inputs()}
        self.workers = max(1, threads)
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def count_tokens(self, text: str) -> int:
        """Tokens of `text` with special tokens, never truncated."""
        return len(self.tokenizer.encode(text).ids)

    def token_ids(self, text: str) -> list[int]:
        """The ids the model reads for `text`: cut to max_tokens as a truncating tokenizer
        cuts a single text (its first tokens kept, the special tokens around them)."""
        encoding = self.tokenizer.encode(text)
        ids = encoding.ids
        limit = self.layout.max_tokens
        if len(ids) <= limit:
            return list(ids)
        special = encoding.special_tokens_mask
        lead = 0
        while lead < len(special) and special[lead]:
            lead += 1
        trail = self._specials - lead
        kept = limit - self._specials
        return list(ids[:lead]) + list(ids[lead : lead + kept]) + list(ids[len(ids) - trail :])

    def encode(self, texts: list[str], prompt: str | None) -> np.ndarray:
        """L2-normalised float32 vectors of `texts`, `prompt` prepended to each.

        One text per run: no padding to compute (faster than batches here, for passages and
        sentences alike), and since int8 quantises activations per run, a text's vector is
        the same whatever it is embedded with, and whichever worker runs it.
        """
        vectors = np.empty((len(texts), self.layout.dim), dtype=np.float32)
        ids = [self.token_ids((prompt or "") + text) for text in texts]
        # Longest first, each worker taking the next text when it is done with one: the
        # workers finish together, whatever the lengths (or a core lost to another process).
        queue = iter(sorted(range(len(ids)), key=lambda row: -len(ids[row])))
        taking = threading.Lock()

        def drain() -> None:
            while True:
                with taking:
                    row = next(queue, None)
                if row is None:
                    return
                vectors[row] = self._run(ids[row])

        workers = min(self.workers, len(ids))
        if workers <= 1:
            drain()
            return vectors
        pool = self._worker_pool()
        # Every worker is waited for (and its error raised) before the vectors are returned.
        for future in [pool.submit(drain) for _ in range(workers)]:
            future.result()
        return vectors

    def _run(self, ids: list[int]) -> np.ndarray:
        """The unit vector of one text (its token ids), in one run."""
        tokens = np.array([ids], dtype=np.int64)
        feed = {"input_ids": tokens, "attention_mask": np.ones_like(tokens)}
        if "token_type_ids" in self._inputs:
            feed["token_type_ids"] = np.zeros_like(tokens)
        (hidden,) = self.session.run(["last_hidden_state"], feed)
        pooled = hidden[0, 0] if self.layout.pooling == "cls" else hidden[0].mean(axis=0)
        return pooled / max(float(np.linalg.norm(pooled)), 1e-12)

    def _worker_pool(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="onnx-embed")
            return self._pool
