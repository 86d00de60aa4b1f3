"""Export a local BERT sentence-transformers model to ONNX with fused kernels (torch + onnx).

Only models whose vectors ONNX Runtime can reproduce exactly are exported: a local folder
holding a BERT transformer followed by mean pooling (and optionally normalisation), like the
bundled all-MiniLM-L6-v2. The attention is traced in its plain ("eager") form, which
onnxruntime's transformer optimizer recognises and replaces by its fused Attention kernel; the
SDPA form exports too but stays unfused and slower. The int8 precision quantizes that fused
graph (``quantize``). Nothing is downloaded.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from .store.datadir import private_dir

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel

_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def exportable(model_dir: Path) -> bool:
    """Whether ``model_dir`` is a local BERT model with mean pooling (nothing else on top)."""
    try:
        modules = json.loads((model_dir / "modules.json").read_text(encoding="utf-8"))
        config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
        kinds = [m["type"].rsplit(".", 1)[-1] for m in modules]
        if kinds not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
            return False
        pooling = json.loads((model_dir / modules[1]["path"] / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return False
    modes = {k for k, v in pooling.items() if k.startswith("pooling_mode_") and v is True}
    return config.get("model_type") == "bert" and modes == {"pooling_mode_mean_tokens"}


def export(model_dir: Path, target: Path, precision: str = "fp32") -> Path:
    """Write the optimised ONNX graph of ``model_dir``'s transformer to ``target`` atomically
    (a half-written file never carries the final name), at ``precision`` ("fp32" or "int8");
    returns ``target``."""
    import torch
    from onnxruntime.transformers.optimizer import optimize_model
    from transformers import AutoModel, AutoTokenizer

    private_dir(target.parent)
    for stale in target.parent.glob(".export-*"):  # left by a process killed mid-export
        shutil.rmtree(stale, ignore_errors=True)
    model = AutoModel.from_pretrained(model_dir, attn_implementation="eager", local_files_only=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    sample = tokenizer(["a b", "c"], padding=True, return_tensors="pt")
    config = model.config
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".export-") as tmp:
        traced = Path(tmp) / "traced.onnx"
        torch.onnx.export(
            _last_hidden(model),
            tuple(sample[n] for n in _INPUTS),
            str(traced),
            input_names=list(_INPUTS),
            output_names=["hidden"],
            dynamic_axes={n: {0: "batch", 1: "tokens"} for n in (*_INPUTS, "hidden")},
            dynamo=False,  # the TorchScript exporter: its graph is the one the optimizer fuses
            opset_version=17,
        )
        optimized = optimize_model(
            str(traced),
            model_type="bert",
            num_heads=config.num_attention_heads,
            hidden_size=config.hidden_size,
            opt_level=0,  # fusions only; the session applies its own graph optimisations
        )
        staged = Path(tmp) / "optimized.onnx"
        optimized.save_model_to_file(str(staged))
        if precision == "int8":
            staged = quantize(staged, Path(tmp) / "int8.onnx")
        os.chmod(staged, 0o600)
        os.replace(staged, target)
    return target


def quantize(fused: Path, target: Path) -> Path:
    """The fused graph with int8 weights: onnxruntime's dynamic quantization (activations
    quantized at run time) of every MatMul and fused Attention, with one scale per output
    channel of each weight: one scale per tensor (the default) put some vectors at cosine 0.79
    to torch's; per channel the lowest measured was 0.98, recall unchanged
    (bench/bench_embed_onnx.py)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(fused),
        str(target),
        weight_type=QuantType.QInt8,
        per_channel=True,
        op_types_to_quantize=["MatMul", "Attention"],
        # the fused graph's contrib ops have no inferred types: tell the quantizer they are float
        extra_options={"DefaultTensorType": 1},
    )
    return target


def _last_hidden(model: PreTrainedModel) -> torch.nn.Module:
    """The transformer's last hidden state (pooling runs outside the graph, in numpy)."""
    import torch

    class LastHidden(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = model

        def forward(
            self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
        ) -> torch.Tensor:
            out = self.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
            return out.last_hidden_state

    return LastHidden()
