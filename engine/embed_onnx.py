"""A BERT sentence embedder's transformer through ONNX Runtime: the only module that imports it.

Two precisions (bench/bench_embed_onnx.py measures both). "fp32": the same vectors as torch
(the tests hold every cosine >= 0.9999; measured max |difference| ~3e-7), about 1.3x faster on
CPU because the exported graph has onnxruntime's fused attention, GELU and LayerNorm kernels.
"int8": that graph with int8 weights (``embed_export.quantize``), faster again, its vectors
close to torch's but not equal. The file is exported once per model and precision into the
data directory (``embed_export``), named by the identity of the model's files, so a changed
model never runs through a stale export.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from onnxruntime import InferenceSession

#: bumped when the export itself changes (graph, fusions), so older files are not used
EXPORT_VERSION = 1
#: a tokenizer call: texts -> numpy arrays by input name (input_ids, attention_mask, ...)
Tokenize = Callable[[list[str]], "dict[str, np.ndarray]"]


def model_key(model_dir: Path) -> str:
    """Identity of a model folder: every file's name, size and modification time."""
    digest = hashlib.sha256(f"v{EXPORT_VERSION}".encode())
    for path in sorted(p for p in model_dir.rglob("*") if p.is_file()):
        stat = path.stat()
        digest.update(f"\0{path.relative_to(model_dir)}\0{stat.st_size}\0{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def export_path(folder: Path, model_dir: Path, precision: str = "fp32") -> Path:
    """Where the export of the model in ``model_dir`` at ``precision`` lives under ``folder``
    (an fp32 file keeps the name it had before there were two precisions)."""
    tag = "" if precision == "fp32" else f"-{precision}"
    return folder / f"{model_dir.name}-{model_key(model_dir)}{tag}.onnx"


class OnnxEncoder:
    """Mean-pooled, L2-normalised vectors from an exported transformer."""

    def __init__(
        self, path: Path, tokenize: Tokenize, *, precision: str = "fp32", threads: int | None = None
    ):
        self.path = path
        #: "fp32" or "int8": which vectors it makes (the vector cache keeps them apart)
        self.precision = precision
        self.tokenize = tokenize
        #: one tokenization at a time (the model runs concurrently: ONNX Runtime sessions are thread-safe)
        self._tokenizing = threading.Lock()
        self.session = _session(path, threads)
        self.inputs = {i.name for i in self.session.get_inputs()}

    def encode(self, texts: Sequence[str], batch_size: int) -> list[list[float]]:
        # shortest first, so each batch pads to nearly its own length (sentence-transformers
        # does the same); vectors go back in the order given
        order = sorted(range(len(texts)), key=lambda n: len(texts[n]))
        vectors: list[list[float]] = [[] for _ in texts]
        for start in range(0, len(order), batch_size):
            part = order[start : start + batch_size]
            for n, vector in zip(part, self._batch([texts[n] for n in part])):
                vectors[n] = vector.tolist()
        return vectors

    def _batch(self, texts: list[str]) -> np.ndarray:
        with self._tokenizing:
            encoded = self.tokenize(texts)
        feed = {name: encoded[name].astype(np.int64) for name in self.inputs}
        hidden = self.session.run(None, feed)[0]
        mask = encoded["attention_mask"][..., None].astype(np.float32)
        mean = (hidden * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1e-9, None)
        norms = np.clip(np.linalg.norm(mean, axis=1, keepdims=True), 1e-12, None)
        return np.asarray(mean / norms, dtype=np.float32)


def _session(path: Path, threads: int | None) -> InferenceSession:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # no busy-waiting between kernels: on a small CPU shared with the chat model and the
    # parser workers, spinning threads steal the cores they wait for (measured a little faster)
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
