"""Export a sentence-transformers folder's encoder to ONNX once (fp32 and int8) into the cache.

Only the export needs torch and transformers; what it writes runs on onnxruntime alone
(index/onnx_embedder.py). The recipe, measured on multilingual-e5-small (issue 13): trace
with eager attention (so onnxruntime can fuse it), fuse with onnxruntime's transformer
optimizer, then quantise the MatMul weights (those fused into Attention included)
dynamically, per channel, to int8.

    python -m index.onnx_export [--model bundled|FOLDER] [--cache-dir DIR] [fp32] [int8]
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from index.bundled_model import MARKER_FILE, MODEL_NAME

logger = logging.getLogger(__name__)

VARIANTS = ("fp32", "int8")
# Bump when what this module writes changes, so exported files are rebuilt.
# 2: no SkipLayerNormalization fusion (see `export_fp32`).
EXPORT_VERSION = 2
OPSET = 17
# The optimizer fuses the query/key/value MatMuls into Attention; quantising that op too made
# int8 ~1.6x faster on passages than MatMul alone, at the same fidelity (bench/embedders.py).
QUANTISED_OPS = ["MatMul", "Attention"]
# A staging folder untouched for this long belongs to an export that died.
_ABANDONED_AFTER_S = 3600


class OnnxExportError(RuntimeError):
    """The model folder could not be exported or quantised."""


def onnx_dir(cache_dir: Path, model_folder: Path, bundled: bool) -> Path:
    """Where a model folder's ONNX files live in the cache (a local folder: by its path)."""
    if bundled:
        return Path(cache_dir) / "onnx" / MODEL_NAME
    resolved = str(Path(model_folder).resolve())
    digest = hashlib.sha256(resolved.encode()).hexdigest()[:12]
    return Path(cache_dir) / "onnx" / f"{Path(model_folder).name}-{digest}"


def onnx_file(directory: Path, variant: str) -> Path:
    return Path(directory) / f"model-{variant}.onnx"


def source_fingerprint(model_folder: Path) -> dict[str, Any]:
    """What identifies the weights exported: the bundled model's marker, else files' stats."""
    folder = Path(model_folder)
    try:
        return {"bundled": json.loads((folder / MARKER_FILE).read_text(encoding="utf-8"))}
    except (OSError, ValueError):
        pass
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    stats = {str(p.relative_to(folder)): [p.stat().st_size, p.stat().st_mtime_ns] for p in files}
    return {"folder": str(folder.resolve()), "files": stats}


def _marker(model_folder: Path, variant: str) -> dict[str, Any]:
    return {
        "source": source_fingerprint(model_folder),
        "variant": variant,
        "export_version": EXPORT_VERSION,
    }


def _marker_path(directory: Path, variant: str) -> Path:
    return onnx_file(directory, variant).with_suffix(".json")


def is_exported(model_folder: Path, directory: Path, variant: str) -> bool:
    """True when `directory` holds a finished export of this folder's current weights."""
    try:
        found = json.loads(_marker_path(directory, variant).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return found == _marker(model_folder, variant) and onnx_file(directory, variant).is_file()


def ensure_onnx(model_folder: Path, directory: Path, variant: str) -> Path:
    """The ONNX file of `variant` for this folder, exported first if missing or stale."""
    export_if_missing(model_folder, directory, variant)
    return onnx_file(directory, variant)


def export_if_missing(model_folder: Path, directory: Path, variant: str) -> bool:
    """Export `variant` unless a current export is there; True when this call exported it.

    One export at a time per directory (an flock), each written beside its final place and
    renamed into it, its marker last: a killed export never leaves a file that looks done.
    """
    if variant not in VARIANTS:
        raise OnnxExportError(f"unknown ONNX variant {variant!r}; expected one of {VARIANTS}")
    model_folder, directory = Path(model_folder), Path(directory)
    if is_exported(model_folder, directory, variant):
        return False
    directory.mkdir(parents=True, exist_ok=True)
    with _exclusive(directory / ".export.lock"):
        if is_exported(model_folder, directory, variant):
            return False  # another process finished it while this one waited
        _remove_abandoned_staging(directory)
        logger.info(
            "exporting %s to ONNX %s in %s (once, about a minute)", model_folder, variant, directory
        )
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=directory))
        try:
            if variant == "fp32" or not is_exported(model_folder, directory, "fp32"):
                fp32 = export_fp32(model_folder, staging / "model-fp32.onnx")
            else:
                fp32 = onnx_file(directory, "fp32")
            built = fp32 if variant == "fp32" else quantise_int8(fp32, staging / "int8.onnx")
            _publish(built, onnx_file(directory, variant), _marker(model_folder, variant))
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return True


def export_fp32(model_folder: Path, out: Path) -> Path:
    """Trace the folder's transformer (eager attention) and fuse it for onnxruntime."""
    try:
        import torch
        from onnxruntime.transformers.fusion_options import FusionOptions
        from onnxruntime.transformers.optimizer import optimize_model
        from transformers import AutoModel
    except ImportError as exc:
        raise OnnxExportError(f"exporting to ONNX needs torch and transformers: {exc}") from exc

    from transformers.utils import logging as hf_logging

    config = json.loads((Path(model_folder) / "config.json").read_text(encoding="utf-8"))
    hf_logging.disable_progress_bar()  # a build log is no terminal
    try:
        model = AutoModel.from_pretrained(str(model_folder), attn_implementation="eager").eval()
    finally:
        hf_logging.enable_progress_bar()
    # Padding in the sample keeps any "mask is all ones" shortcut out of the traced graph.
    input_ids = torch.tensor([[0, 581, 2043, 2], [0, 581, 2, 1]], dtype=torch.long)
    attention_mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]], dtype=torch.long)

    class LastHiddenState(torch.nn.Module):
        """The transformer called by keyword (its positional order varies), token vectors out."""

        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            return self.inner(input_ids=input_ids, attention_mask=attention_mask)[0]

    axes = {0: "batch", 1: "tokens"}
    raw = out.with_name(out.stem + ".raw.onnx")
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer and deprecation warnings, expected here
        torch.onnx.export(
            LastHiddenState(model),
            (input_ids, attention_mask),
            str(raw),
            input_names=["input_ids", "attention_mask"],
            output_names=["last_hidden_state"],
            dynamic_axes={"input_ids": axes, "attention_mask": axes, "last_hidden_state": axes},
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    # The residual Add and the LayerNormalization after it stay two operators. Fused into
    # SkipLayerNormalization they cost onnxruntime 1.32 ~100 us a layer norm for 40 tokens
    # of e5-small on one thread, ~6x its plain LayerNormalization kernel: 31% of a
    # sentence's int8 run (its profiler). Unfused, a 40-token text runs in 4.9 ms instead
    # of 6.9, with the same fidelity to the fp32 vectors (bench/embedders.py).
    fusions = FusionOptions("bert")
    fusions.enable_skip_layer_norm = False
    fusions.enable_bias_skip_layer_norm = False
    optimised = optimize_model(
        str(raw),
        model_type="bert",
        num_heads=int(config.get("num_attention_heads", 0)),
        hidden_size=int(config.get("hidden_size", 0)),
        opt_level=0,
        optimization_options=fusions,
    )
    optimised.save_model_to_file(str(out))
    raw.unlink()
    return out


def quantise_int8(fp32: Path, out: Path) -> Path:
    """Dynamic int8 quantisation of the MatMul and Attention weights, per channel."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # Its generic advice to pre-process first is noise here: the fidelity test checks the result.
    with _root_warnings_hidden():
        quantize_dynamic(
            str(fp32),
            str(out),
            per_channel=True,
            weight_type=QuantType.QInt8,
            op_types_to_quantize=QUANTISED_OPS,
            # The fused contrib ops defeat shape inference; their outputs are float32.
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT, "MatMulConstBOnly": True},
        )
    return out


@contextmanager
def _root_warnings_hidden() -> Iterator[None]:
    """The quantiser warns through the root logger; keep its advice out of the build log."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def _publish(built: Path, target: Path, marker: dict[str, Any]) -> None:
    """fsync and rename the file into place, then write its marker the same way."""
    _fsync(built)
    built.chmod(0o644)
    marker_path = target.with_suffix(".json")
    marker_path.unlink(missing_ok=True)
    os.replace(built, target)
    staged_marker = built.with_name(built.name + ".json")
    staged_marker.write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
    _fsync(staged_marker)
    staged_marker.chmod(0o644)
    os.replace(staged_marker, marker_path)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """An flock across processes; threads of one process are serialised by the caller."""
    with open(lock_path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _remove_abandoned_staging(directory: Path) -> None:
    """Staging folders of an export that was killed (each up to ~900 MB)."""
    cutoff = time.time() - _ABANDONED_AFTER_S
    for leftover in directory.glob(".staging-*"):
        try:
            if leftover.stat().st_mtime < cutoff:
                shutil.rmtree(leftover, ignore_errors=True)
        except OSError:
            continue


def main() -> None:
    """`make setup` and the Docker build: export the bundled model once, offline."""
    from index.embedding import BUNDLED, default_cache_dir, model_folder

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", nargs="*", help=f"of {', '.join(VARIANTS)} (default: all)")
    parser.add_argument("--model", default=BUNDLED)
    parser.add_argument("--cache-dir", type=Path, default=None)
    args = parser.parse_args()
    unknown = set(args.variants) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variant(s) {', '.join(sorted(unknown))}; expected {VARIANTS}")
    cache_dir = args.cache_dir or default_cache_dir()
    folder, bundled = model_folder(args.model, cache_dir)
    directory = onnx_dir(cache_dir, folder, bundled)
    for variant in args.variants or VARIANTS:
        started = time.monotonic()
        exported = export_if_missing(folder, directory, variant)
        path = onnx_file(directory, variant)
        took = f"exported in {time.monotonic() - started:.0f} s" if exported else "already there"
        print(f"{path} ({variant}, {path.stat().st_size / 1e6:.0f} MB): {took}")


if __name__ == "__main__":
    main()
