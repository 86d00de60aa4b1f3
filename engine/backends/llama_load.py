"""Loading a GGUF into llama-cpp-python: the context that fits, the load arguments, the chat
template, the draft model, the KV snapshot store and the model panel's description.

Helpers of ``LlamaCppBackend`` (llama_cpp.py); llama_cpp is imported lazily, as there.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from ..config import Settings
from ..errors import ModelError
from .attention_check import FLASH_BATCH
from .base import ModelInfo
from .chunk_rule import MIN_TILED, ChunkRule
from .draft_model import DraftModel
from .gguf_files import check_gguf_file, resolve_model
from .kv_hook import ConversationKv
from .kv_reuse import evaluate
from .kv_snapshots import KvSnapshotStore, default_budgets, fingerprint, template_hash
from .limits import available_memory, fit_context, kv_bytes_per_token
from .threads import ThreadPlan

if TYPE_CHECKING:
    from llama_cpp import Llama
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

#: used when a GGUF carries no chat template and none is configured
CHATML_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

# llama.cpp's LLAMA_FTYPE values, for the model panel
_FILE_TYPES = {
    0: "F32",
    1: "F16",
    2: "Q4_0",
    3: "Q4_1",
    7: "Q8_0",
    8: "Q5_0",
    9: "Q5_1",
    10: "Q2_K",
    11: "Q3_K_S",
    12: "Q3_K_M",
    13: "Q3_K_L",
    14: "Q4_K_S",
    15: "Q4_K_M",
    16: "Q5_K_S",
    17: "Q5_K_M",
    18: "Q6_K",
    19: "IQ2_XXS",
    20: "IQ2_XS",
    23: "IQ3_XXS",
    24: "IQ1_S",
    25: "IQ4_NL",
    26: "IQ3_S",
    29: "IQ4_XS",
    32: "BF16",
    36: "TQ1_0",
    37: "TQ2_0",
}

log = logging.getLogger(__name__)


def import_llama_cpp() -> ModuleType:
    try:
        import llama_cpp
    except ImportError as e:
        raise ModelError("llama-cpp-python is not installed: pip install -r requirements.txt") from e
    return llama_cpp


def load_kwargs(
    llama_cpp: ModuleType,
    settings: Settings,
    path: Path,
    *,
    n_ctx: int,
    n_gpu_layers: int,
    threads: ThreadPlan,
) -> dict[str, Any]:
    """``Llama(...)``'s arguments for ``path`` (the chat handler is added by the caller)."""
    kwargs: dict[str, Any] = dict(
        model_path=str(path),
        n_ctx=n_ctx,
        n_gpu_layers=n_gpu_layers,
        n_batch=min(settings.n_batch or FLASH_BATCH, n_ctx),  # None only where not resolved
        use_mmap=settings.use_mmap,
        use_mlock=settings.use_mlock,
        flash_attn=settings.flash_attn,
        verbose=False,
    )
    kwargs["n_threads"], kwargs["n_threads_batch"] = threads.generation, threads.batch
    for name in ("type_k", "type_v"):
        value = getattr(settings, name)
        if value:
            kwargs[name] = _ggml_type(llama_cpp, value)
    return kwargs


def load_llama(llama_cpp: ModuleType, path: Path, kwargs: dict[str, Any]) -> Llama:
    try:
        return llama_cpp.Llama(**kwargs)
    except (ValueError, RuntimeError, OSError) as e:
        raise ModelError(
            f"llama.cpp could not load {path.name}: {e}. The file may be truncated, "
            "or made for a newer llama.cpp; try re-downloading it."
        ) from e


def fit_model_context(
    llama_cpp: ModuleType, path: Path, settings: Settings, *, on_gpu: bool
) -> tuple[int, str]:
    """n_ctx within what the model was trained on and what memory holds (from the GGUF's
    hyperparameters, read without loading the weights), and why when less than asked."""
    meta = _metadata(llama_cpp, path)
    arch = meta.get("general.architecture", "")

    def number(key: str) -> int:
        return _int(meta.get(f"{arch}.{key}"))

    per_token = kv_bytes_per_token(
        n_layer=number("block_count"),
        n_head=number("attention.head_count"),
        n_head_kv=number("attention.head_count_kv") or number("attention.head_count"),
        n_embd=number("embedding_length"),
        key_length=number("attention.key_length"),
        value_length=number("attention.value_length"),
        type_k=settings.type_k,
        type_v=settings.type_v,
    )
    n_ctx_train = number("context_length")
    # on a GPU the cache lives in its memory, which llama.cpp checks itself when it allocates
    available = None if on_gpu else available_memory()
    return fit_context(
        settings.n_ctx,
        n_ctx_train=n_ctx_train,
        per_token=per_token,
        available=available,
        model_bytes=path.stat().st_size,
    )


def _metadata(llama_cpp: ModuleType, path: Path) -> dict[str, str]:
    """The GGUF's metadata, from a vocabulary-only load (no weights)."""
    params = llama_cpp.llama_model_default_params()
    params.vocab_only = True
    try:
        probe = llama_cpp._internals.LlamaModel(path_model=str(path), params=params, verbose=False)
    except (ValueError, RuntimeError, OSError) as e:
        raise ModelError(
            f"llama.cpp could not load {path.name}: {e}. The file may be truncated, "
            "or made for a newer llama.cpp; try re-downloading it."
        ) from e
    try:  # vocab_only loads no hyperparameters: read them from the metadata
        return probe.metadata()
    finally:
        probe.close()


def make_formatter(llm: Llama, override: str | None) -> tuple[Jinja2ChatFormatter, str]:
    """The chat template's formatter and where the template came from (for the model panel)."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    template = override or llm.metadata.get("tokenizer.chat_template")
    source = "override" if override else ("gguf" if template else "fallback (chatml)")
    eos, bos = llm.token_eos(), llm.token_bos()
    formatter = Jinja2ChatFormatter(
        template=template or CHATML_TEMPLATE,
        eos_token=llm._model.token_get_text(eos) if eos != -1 else "",
        bos_token=llm._model.token_get_text(bos) if bos != -1 else "",
    )
    return formatter, source


def load_draft(llama_cpp: ModuleType, llm: Llama, settings: Settings, kwargs: dict[str, Any]) -> DraftModel:
    """The --draft-model GGUF, on the same device and threads as the main model ``llm``
    (which is closed when the draft cannot be used, as the whole load fails)."""
    path = resolve_model(settings.draft_model or "", settings.models_dir)
    check_gguf_file(path)
    draft_kwargs = {**kwargs, "model_path": str(path), "chat_handler": None}
    try:
        draft = llama_cpp.Llama(**draft_kwargs)
    except (ValueError, RuntimeError, OSError) as e:
        llm.close()
        raise ModelError(f"llama.cpp could not load the draft model {path.name}: {e}") from e
    try:
        return DraftModel(draft, target_vocab=llm.n_vocab())
    except ModelError:
        draft.close()
        llm.close()
        raise


#: a probe prompt for probe_rule: plain text, over 90 tokens in any tokenizer
_PROBE = (
    "The keeper of the lighthouse wrote down the weather every morning: wind, rain, fog and the colour of "
    "the sea. In the winter of 1893 a storm broke the glass of the lamp, and he kept the flame alive with "
    "his coat for six hours while the ships passed the rocks in the dark. Nobody thanked him, but in the "
    "spring the harbour master sent him a new green book, a box of candles and a letter from the town."
)


def probe_rule(llama_cpp: ModuleType, llm: Llama) -> ChunkRule:
    """The first of chunk_rule's rules that holds for this model, device, build and n_batch,
    measured: cuts of a probe prompt, each part evaluated as the rule would, must give the same
    logits to the last bit. Leaves the cache empty."""
    n_batch = llm.n_batch
    tokens = llm.tokenize((_PROBE + " " + _PROBE).encode("utf-8"), add_bos=True, special=False)
    rule = ChunkRule(n_batch)  # the fixed schedule, true everywhere
    # past MIN_TILED tokens, cut at the batch sizes this n_batch makes at the front and at the
    # end of a prompt (a cached prefix, a short new tail)
    n = min(len(tokens), MIN_TILED + 8)
    if n_batch >= 4 and _agree(llama_cpp, llm, tokens[:n], [[n], [3, n - 3], [n - 3, 3]], 2):
        rule = ChunkRule(n_batch, min_batch=2)
    elif n_batch >= 2 * MIN_TILED and len(tokens) >= 2 * MIN_TILED:
        m = MIN_TILED  # a prompt in one batch, and as a cached half plus a new half
        if _agree(llama_cpp, llm, tokens[: 2 * m], [[2 * m], [m, m]], m):
            rule = ChunkRule(n_batch, min_batch=m)
    log.info("KV reuse rule: %s", rule.name)
    return rule


def _agree(
    llama_cpp: ModuleType, llm: Llama, tokens: list[int], cuts: list[list[int]], min_batch: int
) -> bool:
    """Whether ``tokens`` cut each way (each part evaluated as a prompt in batches of at least
    ``min_batch``) give the same last logits."""
    import numpy as np

    rule = ChunkRule(llm.n_batch, min_batch=min_batch)
    first: Any = None  # the first cut's logits, which every other cut must match
    try:
        for cut in cuts:
            llm.reset()
            llm._ctx.kv_cache_clear()
            position = 0
            for whole in cut:
                position = evaluate(llm, tokens, position, position + whole, rule)
            logits = llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1)
            last = np.ctypeslib.as_array(logits, shape=(llm.n_vocab(),)).copy()
            if first is None:
                first = last
            elif not np.array_equal(first, last):
                return False
    except (RuntimeError, ValueError, OSError) as e:
        log.warning("the batch probe failed (%s): KV reuse keeps to whole chunks", e)
        return False
    finally:
        llm.reset()
        llm._ctx.kv_cache_clear()
    return True


def _template_text(formatter: Jinja2ChatFormatter) -> str:
    return "\0".join(getattr(formatter, k, "") for k in ("template", "bos_token", "eos_token"))


def conversation_kv(
    llama_cpp: ModuleType,
    llm: Llama,
    formatter: Jinja2ChatFormatter,
    settings: Settings,
    path: Path,
    kwargs: dict[str, Any],
    rule: ChunkRule,
) -> ConversationKv:
    """KV snapshots, valid only for this exact model file, context, template and chunk rule."""
    stat = path.stat()
    ram, disk = default_budgets(settings.data_dir)
    mb = 1024 * 1024
    parts = {
        "model": str(path.resolve()),
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "n_ctx": llm.n_ctx(),
        "n_batch": llm.n_batch,
        "chunks": rule.name,  # how prompts are split into batches (what "clean" means)
        "type_k": settings.type_k,
        "type_v": settings.type_v,
        "flash_attn": settings.flash_attn,
        "n_gpu_layers": kwargs["n_gpu_layers"],
        "template": template_hash(_template_text(formatter)),
        "llama_cpp": getattr(llama_cpp, "__version__", ""),
    }
    store = KvSnapshotStore(
        settings.kv_dir,
        fingerprint=fingerprint(parts),
        ram_bytes=settings.kv_cache_ram_mb * mb if settings.kv_cache_ram_mb is not None else ram,
        disk_bytes=settings.kv_cache_disk_mb * mb if settings.kv_cache_disk_mb is not None else disk,
    )
    return ConversationKv(llama_cpp, store, rule)


def describe(
    llm: Llama,
    formatter: Jinja2ChatFormatter,
    path: Path,
    *,
    template_source: str,
    gpu_ok: bool,
    n_gpu_layers: int,
    threads: ThreadPlan,
    note: str,
    attention: str = "",
) -> ModelInfo:
    """The model panel's description of the loaded model."""
    meta = llm.metadata
    arch = meta.get("general.architecture", "")
    try:
        ftype = _FILE_TYPES.get(int(meta.get("general.file_type", -1)), "unknown")
    except ValueError:
        ftype = "unknown"
    return ModelInfo(
        name=meta.get("general.name") or path.stem,
        path=str(path),
        quantization=ftype,
        n_params=int(llm._model.n_params()),
        size_bytes=path.stat().st_size,
        n_ctx=llm.n_ctx(),
        n_ctx_train=int(llm._model.n_ctx_train()),
        n_layers=int(meta.get(f"{arch}.block_count", 0) or 0),
        chat_template_source=template_source,
        gpu_offload_supported=gpu_ok,
        n_gpu_layers=n_gpu_layers if gpu_ok else 0,
        note=note,
        n_threads=threads.generation,
        n_threads_batch=threads.batch,
        threads_note=threads.describe(),
        attention_note=attention,
        template_sha256=hashlib.sha256(_template_text(formatter).encode()).hexdigest(),
    )


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0


def _ggml_type(llama_cpp: ModuleType, name: str) -> int:
    attr = f"GGML_TYPE_{name.upper()}"
    if not hasattr(llama_cpp, attr):
        raise ModelError(f"Unknown KV cache type {name!r}; use f16, q8_0, q4_0 ...")
    return getattr(llama_cpp, attr)
