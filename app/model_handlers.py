"""Plain functions behind the Model panel."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

from engine.errors import ConfigError, EngineError, ModelError


def model_facts(services) -> str:
    info = services.models.info
    if info is None:
        why = services.models.last_error or "no model file chosen"
        return f"**No model loaded.** {why}"
    gpu = (
        f"{'all' if info.n_gpu_layers < 0 else info.n_gpu_layers} layers on the GPU"
        if info.on_gpu
        else (
            "CPU only (this llama-cpp-python build cannot offload to a GPU)"
            if not info.gpu_offload_supported
            else "CPU (0 GPU layers)"
        )
    )
    return (
        f"**{info.name}**\n\n"
        f"| | {info.backend} |\n|---|---|\n"
        f"| file | `{Path(info.path).name}` ({info.size_bytes / 1e6:,.0f} MB) |\n"
        f"| quantization | {info.quantization} |\n"
        f"| parameters | {info.n_params / 1e6:,.1f} M |\n"
        f"| context | {info.n_ctx:,} tokens (trained on {info.n_ctx_train:,}) |\n"
        f"| layers | {info.n_layers} |\n"
        f"| chat template | {info.chat_template_source} |\n"
        f"| images | {'yes (projector loaded)' if getattr(services.models.backend, 'supports_images', False) else 'no (text only)'} |\n"
        f"| compute | {gpu} |\n"
        f"| CPU threads | {info.threads_note or 'n/a'} |\n"
        f"| backend | {info.backend} |"
    )


def _int_or_none(value, name: str) -> int | None:
    if value is None or str(value).strip() == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{name} must be a whole number.", field=name) from e
    if not math.isfinite(number) or number != int(number):
        raise ConfigError(f"{name} must be a whole number.", field=name)
    return int(number)


def load_model(
    services,
    path: str,
    uploaded: str | None,
    n_ctx,
    n_gpu_layers,
    n_threads,
    n_batch,
    flash_attn: bool,
    type_k: str,
    type_v: str,
    use_mmap: bool,
    use_mlock: bool,
    chat_template: str,
    mmproj: str = "",
) -> tuple[str, str]:
    """Load a model; on failure keep the previous one. Returns (facts markdown, status message)."""
    try:
        model = (path or "").strip() or None
        if uploaded:
            model = str(_keep_upload(services, Path(uploaded)))
        changes = dict(
            model=model,
            n_ctx=_int_or_none(n_ctx, "n_ctx") or services.settings.n_ctx,
            n_gpu_layers=_int_or_none(n_gpu_layers, "n_gpu_layers"),
            n_threads=_int_or_none(n_threads, "n_threads"),
            n_batch=_int_or_none(n_batch, "n_batch") or services.settings.n_batch,
            flash_attn=bool(flash_attn),
            type_k=(type_k or None) if type_k != "f16" else None,
            type_v=(type_v or None) if type_v != "f16" else None,
            use_mmap=bool(use_mmap),
            use_mlock=bool(use_mlock),
            chat_template=(chat_template or "").strip() or None,
            mmproj=(mmproj or "").strip() or None,
        )
        info = services.models.load(**changes)
        return model_facts(services), f"✅ Loaded {info.name}."
    except EngineError as e:
        kept = services.models.info
        still = f" Still using {kept.name}." if kept else " No model is loaded."
        return model_facts(services), f"⚠️ **{e.title}**: {e}{still}"
    except Exception as e:  # noqa: BLE001 - a bad value must never take the app down
        return model_facts(services), f"⚠️ Could not load the model: {e}"


def _keep_upload(services, uploaded: Path) -> Path:
    """Copy an uploaded GGUF into the data directory under its (sanitised) name."""
    if uploaded.suffix.lower() != ".gguf":
        raise ModelError(f"{uploaded.name} is not a .gguf file.")
    name = (
        "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in uploaded.name).lstrip(".")
        or "model.gguf"
    )
    target = services.settings.models_dir / name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(uploaded, target)
    return target
