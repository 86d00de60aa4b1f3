"""The bundled MiniLM through torch against ONNX Runtime: Hearth's fused fp32 export, and int8.

    python bench/bench_embed_onnx.py [--chunks 64] [--rounds 6] [--retrieval] [--only NAME ...]

Exports the model the way Hearth does (``engine.embed_export``: eager attention traced, then
onnxruntime's transformer optimizer fuses attention, GELU and LayerNorm) into a temp folder
(nothing is downloaded), quantizes copies of it (``CANDIDATES``), then embeds the same
length-sorted 1,000-character chunks of the evaluation set's man pages with each, in
alternating rounds (a change in the machine's load hits every path), and prints the median
chunks/s of each, its ratio to torch and to the fused fp32 export, and the lowest and mean
cosine of its vectors to torch's on English (64), German (32) and mixed Chinese/English (32)
chunks.

``--retrieval``: dense-only recall@5 and MRR on every evaluation set and split, each
candidate's vectors for passages and questions ("both"), and fp32 passages with the
candidate's questions (a collection embedded before the switch), against fp32 for both. The
chunks are the ones Hearth's ingest makes; the ranking is the exact cosine top 5 (what Chroma
approximates). The candidates that need onnx_ir (onnxruntime's MatMulNBits quantizer, not a
Hearth dependency) are skipped without it.

Measured here (2 EPYC cores with AVX-512 VNNI, load average 6 from other jobs: read ratios):

    candidate                   x torch  x fp32  lowest cosine en/de/zh   mean en/de/zh
    onnx fp32 (fused)            1.20     1.00   1.0000 (max |diff| 3e-7)
    int8 default (per tensor)    2.39     1.99   0.907 0.788 0.823        0.940 0.863 0.880
    int8 per-channel  <- Hearth  2.33     1.94   0.988 0.986 0.981        0.994 0.991 0.989
    int8 pc, fp32 FFN-out        1.71     1.42   0.994 0.995 0.994        0.997 0.996 0.996
    blk8 MatMul, int8 attention  1.70     1.41   0.997 0.998 0.998        0.999 0.998 0.999

Explored once, not kept in the table (single timings, cosine on the same chunks): per-tensor
int8 of MatMul only 0.80 lowest; per-channel MatMul only 0.980 (slower than with Attention);
reduce_range 0.983 (no better); uint8 weights (per tensor) 0.931; per-channel excluding layer 0 0.988;
excluding FFN-out of layers 0-2 0.986 at ~1.9x fp32; MatMulNBits 8-bit blocks of 32 everywhere
(accuracy level 4) 0.9996 but only ~1.2x fp32 (b128: 0.9991, ~1.35x); 4-bit blocks 0.929.
Sensitivity, one node quantized at a time: the FFN output MatMuls of layers 0-2 cost most
(mean cosine 0.997-0.999 each), attention output MatMuls least (>= 0.99997). Quantizing the
unfused traced graph (per channel, MatMul) gives the same cosines (0.979 lowest) and speed (2.0x
fp32, single timing); fusing after that finds no Attention (the MatMuls are quantized) and runs
at 1.1x fp32. So: fuse, then quantize.

Dense recall (hits in the top 5 / questions, MRR), fp32 both against int8 per-channel both
and fp32 passages + int8 questions; tune splits chose the candidate, held-out splits were
looked at only for the final check:

    set       split     fp32            int8 both       fp32 passages + int8 questions
    en_man    tune      38/58 0.475     38/58 0.451     38/58 0.450
    en_man    held_out  18/25 0.498     18/25 0.495     18/25 0.523
    de_man    tune      23/52 0.260     23/52 0.257     23/52 0.259
    de_man    held_out  10/22 0.341     11/22 0.380     10/22 0.341
    zh_mixed  tune      17/48 0.199     18/48 0.203     17/48 0.192
    zh_mixed  held_out   5/21 0.151      5/21 0.143      5/21 0.139
    all 226 questions   MRR 0.3263      0.3230 (-0.003)  0.3198 (-0.007)

The closer candidates were not better for it: "fp32 FFN-out" lost 2 questions on de_man tune,
"blk8 MatMul" 2 on zh_mixed tune; differences of a question or two are noise at this size.
Torch itself: tokenizing 128 chunks is ~1% of an embed; batch sizes 8-64 on length-sorted
input are within the noise; sentence-transformers already length-sorts and uses inference_mode.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from eval_sets import first_rank, load_sets, metrics, relevant_chunks  # noqa: E402

from engine.embed_export import export  # noqa: E402
from engine.embed_onnx import OnnxEncoder  # noqa: E402
from engine.embeddings import TextEmbedder, bundled_embedder_path  # noqa: E402

LANGUAGES = {"en": ("en_man", 64), "de": ("de_man", 32), "zh": ("zh_mixed", 32)}


def chunks(language: str, n: int) -> list[str]:
    out: list[str] = []
    for path in sorted((ROOT / "bench" / "data" / "eval" / language / "docs").iterdir()):
        text = path.read_text(encoding="utf-8")
        out += [text[i : i + 1000] for i in range(0, len(text), 1000)]
    return out[:n]


def _nodes(path: Path, op: str, part: str = "") -> list[str]:
    import onnx

    return [n.name for n in onnx.load(str(path)).graph.node if n.op_type == op and part in n.name]


def dynamic(src: Path, out: Path, **options) -> Path:
    """onnxruntime's dynamic quantization: int8 weights, activations quantized per tensor at run time."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # the fused graph's contrib ops have no inferred types: tell the quantizer they are float
    extra = {"DefaultTensorType": 1}
    quantize_dynamic(str(src), str(out), weight_type=QuantType.QInt8, extra_options=extra, **options)
    return out


def blockwise8(src: Path, out: Path, exclude: list[str] | None = None) -> Path:
    """8-bit weights in blocks of 32 (MatMulNBits); accuracy level 4 quantizes the activations
    per block too, so an outlier spoils 32 values, not a whole tensor."""
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    quantizer = MatMulNBitsQuantizer(
        onnx.load(str(src)),
        bits=8,
        block_size=32,
        is_symmetric=True,
        accuracy_level=4,
        op_types_to_quantize=("MatMul",),
        nodes_to_exclude=exclude,
    )
    quantizer.process()
    quantizer.model.save_model_to_file(str(out), False)
    return out


def _ffn_out(src: Path) -> list[str]:
    """The feed-forward output MatMuls: their input (GELU's output) has the outliers that
    per-tensor activation scales lose most to (measured node by node)."""
    return _nodes(src, "MatMul", "/output/dense/")


BOTH = ["MatMul", "Attention"]
#: name -> (fp32 graph, folder) -> quantized graph
CANDIDATES: dict[str, Callable[[Path, Path], Path]] = {
    "int8 default": lambda s, d: dynamic(s, d / "a.onnx"),
    "int8 per-channel": lambda s, d: dynamic(s, d / "b.onnx", op_types_to_quantize=BOTH, per_channel=True),
    "int8 pc, fp32 FFN-out": lambda s, d: dynamic(
        s, d / "c.onnx", op_types_to_quantize=BOTH, per_channel=True, nodes_to_exclude=_ffn_out(s)
    ),
    "int8 pc, blk8 FFN-out": lambda s, d: dynamic(
        blockwise8(s, d / "d0.onnx", [m for m in _nodes(s, "MatMul") if m not in _ffn_out(s)]),
        d / "d.onnx",
        op_types_to_quantize=BOTH,
        per_channel=True,
    ),
    "blk8 MatMul, int8 attn": lambda s, d: dynamic(
        blockwise8(s, d / "e0.onnx"), d / "e.onnx", op_types_to_quantize=["Attention"], per_channel=True
    ),
    "blk8 MatMul": lambda s, d: blockwise8(s, d / "f.onnx"),
}


def build_candidates(fp32: Path, folder: Path, names: list[str]) -> dict[str, Path]:
    out = {"onnx fp32": fp32}
    for name in names:
        try:
            out[name] = CANDIDATES[name](fp32, folder)
        except ImportError as e:  # onnx_ir is not a Hearth dependency
            print(f"{name}: skipped ({e})")
    return out


def speed(
    encoders: dict[str, Callable[[list[str]], list[list[float]]]], texts: list[str], rounds: int
) -> None:
    rates: dict[str, list[float]] = {name: [] for name in encoders}
    for _ in range(rounds):
        for name, embed in encoders.items():
            start = time.perf_counter()
            embed(texts)
            rates[name].append(len(texts) / (time.perf_counter() - start))
    print(
        f"{len(texts)} chunks x {rounds} rounds; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    torch_median, fp32_median = statistics.median(rates["torch"]), statistics.median(rates["onnx fp32"])
    for name, rate in rates.items():
        median = statistics.median(rate)
        print(
            f"  {name:<24} median {median:5.1f} chunks/s  {median / torch_median:.2f}x torch  "
            f"{median / fp32_median:.2f}x fp32  (best {max(rate):.1f})"
        )


def closeness(encoders: dict[str, Callable[[list[str]], list[list[float]]]]) -> None:
    print("cosine to torch, lowest / mean:")
    check = {lang: chunks(folder, n) for lang, (folder, n) in LANGUAGES.items()}
    reference = {lang: np.asarray(encoders["torch"](texts)) for lang, texts in check.items()}
    for name, embed in encoders.items():
        parts = []
        for lang, texts in check.items():
            cosine = (np.asarray(embed(texts)) * reference[lang]).sum(axis=1)
            parts.append(f"{lang} {cosine.min():.4f} / {cosine.mean():.5f}")
        print(f"  {name:<24} " + "   ".join(parts))


def retrieval(encoders: dict[str, Callable[[list[str]], list[list[float]]]], fp32: Path, tmp: Path) -> None:
    """Dense recall@5 / MRR per set and split; the chunks come from Hearth's own ingest."""
    from eval_sets import ingest

    from engine import Settings, build
    from engine.embed_onnx import export_path
    from engine.rag.chunking import embedding_text
    from engine.store.datadir import private_dir

    # the ingest embeds through the fp32 export (torch's vectors), already in place
    target = export_path(private_dir(tmp / "data" / "onnx"), bundled_embedder_path())
    shutil.copyfile(fp32, target)
    services = build(Settings(data_dir=tmp / "data", embed_precision="fp32"), load_model=False)
    try:
        for eval_set in load_sets():
            ingest(services, eval_set)
            rows = list(services.documents.store.iter_chunks(eval_set.name))
            ids = [r["id"] for r in rows]
            relevant = relevant_chunks(services, eval_set)
            texts = [embedding_text(r["text"], r["heading"] or "") for r in rows]
            questions = [q["q"] for q in eval_set.questions]
            passages = {name: np.asarray(embed(texts)) for name, embed in encoders.items()}
            asked = {name: np.asarray(embed(questions)) for name, embed in encoders.items()}
            print(f"{eval_set.name}: {len(rows)} chunks, {len(questions)} questions")
            for name in encoders:
                pairs = {
                    "both": (passages[name], asked[name]),
                    "fp32 passages": (passages["onnx fp32"], asked[name]),
                }
                for label, (p, q) in pairs.items():
                    if name == "onnx fp32" and label != "both":
                        continue
                    ranks = [
                        first_rank([ids[i] for i in np.argsort(-p @ v)[:5]], rel)
                        for v, rel in zip(q, relevant)
                    ]
                    cells = []
                    for split in ("tune", "held_out"):
                        picked = [r for qq, r in zip(eval_set.questions, ranks) if qq["split"] == split]
                        m = metrics(picked)
                        hits = sum(r is not None for r in picked)
                        cells.append(f"{split} {hits}/{m['n']} r@5 {m['recall@5']:.3f} mrr {m['mrr']:.3f}")
                    print(f"  {name:<24} {label:<14} " + "  ".join(cells))
    finally:
        services.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chunks", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--only", nargs="*", default=list(CANDIDATES), help="candidates to run")
    parser.add_argument("--retrieval", action="store_true", help="also dense recall@5/MRR on the eval sets")
    parser.add_argument("--no-speed", action="store_true")
    n = parser.parse_args()

    torch_embedder = TextEmbedder()
    model = torch_embedder._load()

    def tokenize(texts: list[str]) -> dict[str, np.ndarray]:
        return dict(
            model.tokenizer(texts, padding=True, truncation=True, max_length=256, return_tensors="np")
        )

    with tempfile.TemporaryDirectory() as tmp:
        fp32 = export(bundled_embedder_path(), Path(tmp) / "minilm.onnx")
        graphs = build_candidates(fp32, Path(tmp), n.only)
        encoders: dict[str, Callable[[list[str]], list[list[float]]]] = {"torch": torch_embedder.embed}
        for name, path in graphs.items():
            encoders[name] = lambda t, e=OnnxEncoder(path, tokenize): e.encode(t, 32)
        closeness(encoders)
        if not n.no_speed:
            speed(encoders, sorted(chunks("en_man", 100 + n.chunks)[100:], key=len), n.rounds)
        if n.retrieval:
            del encoders["torch"]  # fp32 is its equal (cosine 1.0000) and faster
            retrieval(encoders, fp32, Path(tmp))


if __name__ == "__main__":
    main()
