"""The bundled MiniLM through torch (what Hearth uses) against ONNX Runtime, fp32 and int8.

    pip install "onnx>=1.17,<2"      # only for this script: exporting needs it, Hearth does not
    python bench/bench_embed_onnx.py [--chunks 192]

Exports the model's transformer with ``torch.onnx.export`` into a temp folder (nothing is
downloaded), quantizes a copy to int8 (onnxruntime's dynamic quantization), then embeds the
same 1,000-character chunks of the evaluation set's man pages with each, in alternating
rounds, and prints chunks/s and the cosine of each vector with torch's. A path replaces torch
only if it is faster and exact (cosine >= 0.999 for every chunk).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.embeddings import bundled_embedder_path  # noqa: E402

INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def chunks(n: int) -> list[str]:
    out: list[str] = []
    for path in sorted((ROOT / "bench" / "data" / "eval" / "en_man" / "docs").iterdir()):
        text = path.read_text(encoding="utf-8")
        out += [text[i : i + 1000] for i in range(0, len(text), 1000)]
    return out[:n]


def export(model, folder: Path) -> Path:
    import torch

    class Hidden(torch.nn.Module):
        def __init__(self, bert):
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.bert(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    enc = model.tokenizer(["a b", "c"], padding=True, return_tensors="pt")
    path = folder / "minilm.onnx"
    torch.onnx.export(
        Hidden(model[0].auto_model.eval()),
        tuple(enc[k] for k in INPUTS),
        str(path),
        input_names=list(INPUTS),
        output_names=["hidden"],
        dynamic_axes={k: {0: "batch", 1: "tokens"} for k in (*INPUTS, "hidden")},
        dynamo=False,
        opset_version=17,
    )
    return path


def ort_embedder(model, path: Path):
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def embed(texts: list[str]) -> np.ndarray:
        out = []
        for start in range(0, len(texts), 32):
            enc = model.tokenizer(
                texts[start : start + 32], padding=True, truncation=True, max_length=256, return_tensors="np"
            )
            hidden = session.run(None, {k: enc[k].astype(np.int64) for k in INPUTS})[0]
            mask = enc["attention_mask"][..., None].astype(np.float32)
            mean = (hidden * mask).sum(1) / np.clip(mask.sum(1), 1e-9, None)
            out.append(mean / np.linalg.norm(mean, axis=1, keepdims=True))
        return np.concatenate(out)

    return embed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chunks", type=int, default=192)
    parser.add_argument("--rounds", type=int, default=2)
    n = parser.parse_args()
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(bundled_embedder_path()), device="cpu", local_files_only=True)
    texts = chunks(n.chunks)
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = export(model, Path(tmp))
        int8 = Path(tmp) / "minilm-int8.onnx"
        quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8)
        paths = {
            "torch": lambda t: model.encode(
                t, batch_size=32, normalize_embeddings=True, convert_to_numpy=True
            ),
            "onnx fp32": ort_embedder(model, fp32),
            "onnx int8": ort_embedder(model, int8),
        }
        reference = paths["torch"](texts)
        seconds = {name: 0.0 for name in paths}
        cosine = {}
        for _ in range(n.rounds):  # alternating, so a change in the machine's load hits every path
            for name, embed in paths.items():
                embed(texts[:8])
                start = time.perf_counter()
                vectors = embed(texts)
                seconds[name] += time.perf_counter() - start
                cosine[name] = float((vectors * reference).sum(1).min())
    for name in paths:
        rate = len(texts) * n.rounds / seconds[name]
        print(
            f"{name:>10}: {rate:6.1f} chunks/s, {seconds['torch'] / seconds[name]:.2f}x torch, "
            f"lowest cosine to torch {cosine[name]:.4f}"
        )


if __name__ == "__main__":
    main()
