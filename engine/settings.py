"""What is fixed when the app starts or a model loads (paths, n_ctx, GPU layers).

A frozen, keyword-only dataclass, validated on construction; ``engine.config`` re-exports it
next to ``GenerationConfig`` (the settings that may change on every turn).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .embeddings import PRECISIONS
from .errors import ConfigError

#: a setting that is on, off or left to Hearth (None): the words of the Model tab and the CLI
AUTO_ON_OFF: dict[str, bool | None] = {"auto": None, "on": True, "off": False}


def auto_on_off_word(value: bool | None) -> str:
    """``value``'s word in ``AUTO_ON_OFF``."""
    return next(word for word, meaning in AUTO_ON_OFF.items() if meaning is value)


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address, IPv6 with or without brackets) is reachable only
    from this machine; a host name or a 0.0.0.0-style wildcard is taken to reach beyond it."""
    import ipaddress

    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def _check_url(url: str | None, name: str) -> None:
    from urllib.parse import urlsplit

    if url is None:
        return
    try:
        parts = urlsplit(url.strip())
        ok = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
    except ValueError:  # e.g. a port that is not a number
        ok = False
    if not ok:
        raise ConfigError(f"{name} must look like http://HOST:PORT or https://HOST; got {url!r}.", field=name)


@dataclass(frozen=True, kw_only=True)
class Settings:
    """What is fixed when the app starts or a model loads."""

    #: where the database, the vector index, uploads and downloaded models live
    data_dir: Path
    #: a GGUF path, "hf:REPO/FILE.gguf", or None for the bundled SmolLM2-135M
    model: str | None = None
    #: context window in tokens
    n_ctx: int = 4096
    #: layers to offload to a GPU; None = all when this build can offload, else 0
    n_gpu_layers: int | None = None
    #: CPU threads for generation (and for prompt batches unless n_threads_batch is set);
    #: None = one per physical core this process may use (affinity, cgroup quota)
    n_threads: int | None = None
    #: CPU threads for prompt batches; None = every logical CPU this process may use
    n_threads_batch: int | None = None
    #: prompt-processing batch size: the most tokens of a prompt evaluated in one llama.cpp call.
    #: Which cached tokens stay reusable depends on how llama.cpp computes batches on this
    #: machine (probed at load, chunk_rule). None = auto: 512 without flash attention (on a CPU
    #: every batch computes alike there; less past 8,192 tokens of context), 63 with it (on a
    #: CPU with flash attention only batches under 64 do: a turn evaluates only its new tokens;
    #: from 128 on, every batch has at least 64 tokens, its tiled kernel's, so each turn
    #: evaluates at least 64)
    n_batch: int | None = None
    #: flash attention; None = auto: on a GPU on, as llama.cpp's own server has it; on a CPU
    #: whichever decodes faster here, measured once per machine (attention_check)
    flash_attn: bool | None = None
    #: KV-cache element types, e.g. "f16", "q8_0", "q4_0"; None = f16
    type_k: str | None = None
    type_v: str | None = None
    #: memory-map the model file / lock it in RAM
    use_mmap: bool = True
    use_mlock: bool = False
    #: keep each conversation's KV cache (RAM, then disk in data_dir/kv) so switching back or
    #: continuing after a restart does not re-evaluate the prompt
    kv_snapshots: bool = True
    #: budgets of the two snapshot tiers in MB; None = sized from the machine (5% of RAM / free disk)
    kv_cache_ram_mb: int | None = None
    kv_cache_disk_mb: int | None = None
    #: prompt-lookup speculative decoding of sampled answers: draft tokens copied from the context,
    #: verified in one batch, only where the learned batch costs say they pay (draft_policy)
    prompt_lookup: bool = False
    #: a small GGUF of the same model family (same tokenizer) that drafts tokens for sampled
    #: answers, verified by the main model in one batch; None = no draft model
    draft_model: str | None = None
    #: a Jinja chat template overriding the one in the GGUF metadata
    chat_template: str | None = None
    #: multimodal projector GGUF (mmproj) of a vision model; with it, attached images go to the model
    mmproj: str | None = None
    #: sentence-transformers model name or path; None = bundled all-MiniLM-L6-v2
    embed_model: str | None = None
    #: text put before every search question / every passage before embedding; None = what the
    #: model was trained with ("query: "/"passage: " for e5, an instruction for bge), by its name
    embed_query_prefix: str | None = None
    embed_passage_prefix: str | None = None
    #: embed with ONNX Runtime where it gives torch's vectors (the bundled model, local BERT
    #: models with mean pooling): exported once into data_dir/onnx, about 1.3x faster on CPU
    embed_onnx: bool = True
    #: "int8": that ONNX export with int8 weights, about 2x the fp32 one, its vectors within a
    #: measured bar of torch's and recall on the evaluation sets unchanged; "fp32": torch's vectors
    embed_precision: str = "int8"
    #: sentence-transformers CrossEncoder that reorders the best fused passages; None = no reranking
    rerank_model: str | None = None
    #: open_clip architecture name or "local-dir:PATH"
    clip_model: str = "ViT-B-32"
    #: open_clip pretrained tag or checkpoint file
    clip_pretrained: str = "laion2b_s34b_b79k"
    #: torch device for CLIP ("cpu", "cuda", "cuda:1"); None = CUDA when available, else CPU
    clip_device: str | None = None
    #: images per CLIP forward pass at ingest (bigger is faster on a GPU, uses more memory)
    clip_batch_size: int = 16
    #: cosine similarity an image needs to be shown with a chat answer (CLIP text-image
    #: scores of real matches sit around 0.25-0.35, unrelated images below ~0.2)
    clip_chat_min_score: float = 0.24
    #: largest file accepted for ingest, in bytes
    max_upload_bytes: int = 50 * 1024 * 1024
    #: ingest refuses PDFs with more pages than this (checked before any page is read)
    ingest_max_pages: int = 2000
    #: ingest refuses documents with more text than this, in characters (as many as the largest
    #: upload holds: a 20 MB log or export is a real file, not an attack)
    ingest_max_chars: int = 50_000_000
    #: a file still being parsed after this many seconds is stopped (its worker process killed)
    ingest_parse_seconds: float = 120.0
    #: document chunk size in tokens of the embedding model (MiniLM reads at most 256)
    chunk_tokens: int = 200
    #: tokens repeated between neighbouring chunks of one section, so no sentence loses its context
    chunk_overlap_tokens: int = 30
    #: default system prompt for new conversations
    system_prompt: str = "You are Hearth, a helpful assistant running privately on this computer."
    #: memory feeds every turn (core blocks, summary of evicted history, recall and archival hits);
    #: off = plain chat whose oldest messages simply drop out of the window
    memory: bool = True
    #: share of the prompt budget the history window may fill before its oldest messages are summarized
    memory_summary_threshold: float = 0.75
    #: recall + archival memories retrieved into each turn's prompt (automatic mode)
    memory_hits: int = 3
    #: agent mode: before answering, the model may call memory tools (grammar-constrained, capped)
    memory_agent: bool = False
    #: an OpenAI-compatible server (vLLM, llama.cpp's server, Ollama ...) that runs the model
    #: instead of a local GGUF; None = load ``model`` in this process
    backend_url: str | None = None
    #: its API key, sent as a bearer token (kept out of repr and logs)
    backend_key: str | None = field(default=None, repr=False)
    #: which of its models to use; None = the first one it lists
    backend_model: str | None = None
    #: its context length when the server does not say (or less, to reserve some)
    backend_n_ctx: int | None = None
    #: seconds the server may go silent mid-request (prompt processing included)
    backend_timeout: float = 120.0
    #: a Chroma server (http[s]://HOST:PORT) holding the vectors instead of the data directory
    chroma_url: str | None = None
    #: its token, sent as a bearer token (kept out of repr and logs)
    chroma_token: str | None = field(default=None, repr=False)
    #: after each turn, keep what the user says about themselves as archival memories
    #: (also switchable in the Memory tab; False here keeps it off whatever the tab says)
    auto_memory: bool = True

    def __post_init__(self) -> None:
        if self.n_ctx < 64 or self.n_ctx > 1_048_576:
            raise ConfigError("n_ctx must be between 64 and 1048576.", field="n_ctx")
        if self.n_gpu_layers is not None and self.n_gpu_layers < -1:
            raise ConfigError("n_gpu_layers must be -1 (all), 0 or more.", field="n_gpu_layers")
        if self.n_threads is not None and not 1 <= self.n_threads <= 1024:
            raise ConfigError("n_threads must be empty (auto) or between 1 and 1024.", field="n_threads")
        if self.n_threads_batch is not None and not 1 <= self.n_threads_batch <= 1024:
            raise ConfigError(
                "n_threads_batch must be empty (auto) or between 1 and 1024.", field="n_threads_batch"
            )
        for name in ("kv_cache_ram_mb", "kv_cache_disk_mb"):
            if getattr(self, name) is not None and getattr(self, name) < 0:
                raise ConfigError(f"{name} must be empty (auto), 0 (off) or more.", field=name)
        if self.embed_precision not in PRECISIONS:
            raise ConfigError(
                f"embed_precision must be one of {', '.join(PRECISIONS)}.", field="embed_precision"
            )
        if self.n_batch is not None and self.n_batch < 1:
            raise ConfigError("n_batch must be at least 1.", field="n_batch")
        if self.ingest_max_pages < 1 or self.ingest_max_chars < 1 or not self.ingest_parse_seconds > 0:
            raise ConfigError(
                "ingest limits (pages, characters, parse seconds) must be positive.",
                field="ingest_parse_seconds",
            )
        if not 16 <= self.chunk_tokens <= 8192:
            raise ConfigError("chunk_tokens must be between 16 and 8192.", field="chunk_tokens")
        if not 0 <= self.chunk_overlap_tokens <= self.chunk_tokens // 2:
            raise ConfigError(
                "chunk_overlap_tokens must be between 0 and half of chunk_tokens.",
                field="chunk_overlap_tokens",
            )
        if self.backend_n_ctx is not None and not 64 <= self.backend_n_ctx <= 1_048_576:
            raise ConfigError("backend_n_ctx must be between 64 and 1048576.", field="backend_n_ctx")
        for name in ("backend_url", "chroma_url"):
            _check_url(getattr(self, name), name)
        if not 0 < self.backend_timeout <= 86_400:
            raise ConfigError("backend_timeout must be between 0 and 86400 seconds.", field="backend_timeout")

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    @property
    def db_path(self) -> Path:
        return self.data_dir / "hearth.db"

    @property
    def chroma_dir(self) -> Path:
        return self.data_dir / "chroma"

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def kv_dir(self) -> Path:
        return self.data_dir / "kv"

    @property
    def files_dir(self) -> Path:
        return self.data_dir / "files"
