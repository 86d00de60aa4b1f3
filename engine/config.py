"""Two kinds of configuration.

``Settings`` is fixed when the app starts or a model loads (paths, n_ctx, GPU layers).
``GenerationConfig`` may change on every turn (sampling, max tokens, stop strings).

Both are frozen, keyword-only dataclasses whose fields carry metadata (range, step,
help text); the UI builds its sliders and the command line its flags from that
metadata, so a new field appears everywhere at once.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError

SEED_RANDOM = -1

#: the sampler stages llama.cpp can order (its server's names), and its default order; the
#: stock llama-cpp-python chain is this order with DRY, top-n-sigma and XTC off
SAMPLER_NAMES = ("penalties", "dry", "top_n_sigma", "top_k", "typ_p", "top_p", "min_p", "xtc", "temperature")
DEFAULT_SAMPLERS = SAMPLER_NAMES
#: a logit bias this low (OpenAI's convention) means "never this token"
BIAS_BAN = -100.0


def _num(default: float | int, lo: float, hi: float, step: float, label: str, help: str) -> Any:
    return field(
        default=default,
        metadata={"min": lo, "max": hi, "step": step, "label": label, "help": help},
    )


@dataclass(frozen=True, kw_only=True)
class GenerationConfig:
    """Sampling settings for one answer. Validated on construction."""

    temperature: float = _num(
        0.7, 0.0, 2.0, 0.05, "Temperature", "Randomness; 0 always picks the most likely token."
    )
    top_k: int = _num(40, 0, 200, 1, "Top-k", "Sample among the k most likely tokens; 0 = off.")
    top_p: float = _num(0.95, 0.0, 1.0, 0.01, "Top-p", "Nucleus: smallest set with this mass.")
    min_p: float = _num(0.05, 0.0, 1.0, 0.01, "Min-p", "Drop tokens below this fraction of the top token.")
    typical_p: float = _num(1.0, 0.0, 1.0, 0.01, "Typical-p", "Locally typical sampling; 1 = off.")
    repeat_penalty: float = _num(
        1.1, 0.0, 2.0, 0.01, "Repeat penalty", "Penalise recently used tokens; 1 = off."
    )
    presence_penalty: float = _num(
        0.0, -2.0, 2.0, 0.05, "Presence penalty", "Penalise tokens that appeared at all."
    )
    frequency_penalty: float = _num(
        0.0, -2.0, 2.0, 0.05, "Frequency penalty", "Penalise tokens by how often they appeared."
    )
    mirostat_mode: int = _num(0, 0, 2, 1, "Mirostat", "0 = off, 1 or 2 = Mirostat v1/v2.")
    mirostat_tau: float = _num(5.0, 0.0, 10.0, 0.1, "Mirostat tau", "Target surprise.")
    mirostat_eta: float = _num(0.1, 0.0, 1.0, 0.01, "Mirostat eta", "Mirostat learning rate.")
    dynatemp_range: float = _num(
        0.0,
        0.0,
        5.0,
        0.05,
        "Dynamic temperature range",
        "Temperature varies by ± this with the entropy of the candidates; 0 = off.",
    )
    dynatemp_exponent: float = _num(
        1.0, 0.0, 5.0, 0.05, "Dynamic temperature exponent", "How the entropy maps onto the range."
    )
    top_n_sigma: float = _num(
        0.0,
        0.0,
        10.0,
        0.05,
        "Top-n-sigma",
        "Keep tokens within n standard deviations of the best logit; 0 = off.",
    )
    xtc_probability: float = _num(
        0.0,
        0.0,
        1.0,
        0.01,
        "XTC probability",
        "Chance per token that XTC removes the most likely choices; 0 = off.",
    )
    xtc_threshold: float = _num(
        0.1, 0.0, 0.5, 0.01, "XTC threshold", "XTC removes every choice above this probability but the last."
    )
    dry_multiplier: float = _num(
        0.0, 0.0, 5.0, 0.05, "DRY multiplier", "Penalise repeating earlier sequences; 0 = off."
    )
    dry_base: float = _num(1.75, 1.0, 4.0, 0.05, "DRY base", "Penalty growth per repeated token.")
    dry_allowed_length: int = _num(
        2, 1, 20, 1, "DRY allowed length", "Repeats up to this long are not penalised."
    )
    dry_penalty_last_n: int = _num(
        -1, -1, 32768, 1, "DRY last n", "Tokens DRY looks back over; -1 = the whole context."
    )
    max_tokens: int = _num(512, 1, 32768, 1, "Max new tokens", "Longest answer, in tokens.")
    seed: int = _num(SEED_RANDOM, -1, 2**31 - 1, 1, "Seed", "Fix for reproducible answers; -1 = random.")
    stop: tuple[str, ...] = field(
        default=(),
        metadata={"label": "Stop strings", "help": "Generation ends at any of these strings."},
    )
    logit_bias: tuple[tuple[int, float], ...] = field(
        default=(),
        metadata={
            "label": "Logit bias",
            "help": f"token id: bias, comma-separated (e.g. 1234:-5); {BIAS_BAN:g} bans the token.",
        },
    )
    samplers: tuple[str, ...] = field(
        default=DEFAULT_SAMPLERS,
        metadata={
            "label": "Sampler order",
            "help": "Stages in the order applied: " + ", ".join(SAMPLER_NAMES),
        },
    )

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "stop":
                _check_stop(value)
            elif f.name == "logit_bias":
                _check_logit_bias(value)
            elif f.name == "samplers":
                _check_samplers(value)
            else:
                _check_number(f, value)

    @classmethod
    def from_values(cls, values: dict[str, Any]) -> GenerationConfig:
        """Build from loosely typed input (slider floats, CLI strings), coercing types.

        Unknown keys raise ConfigError; missing keys keep their defaults.
        """
        known = {f.name: f for f in dataclasses.fields(cls)}
        kwargs: dict[str, Any] = {}
        for name, value in values.items():
            if name not in known:
                raise ConfigError(f"Unknown generation setting '{name}'.", field=name)
            if value is None:
                continue
            kwargs[name] = _coerce(known[name], value)
        return cls(**kwargs)

    def replace(self, **changes: Any) -> GenerationConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["stop"] = list(self.stop)
        d["logit_bias"] = [[token, bias] for token, bias in self.logit_bias]
        d["samplers"] = list(self.samplers)
        return d

    def uses_extra_samplers(self) -> bool:
        """Whether any sampler beyond llama-cpp-python's stock chain is on (or reordered)."""
        return bool(
            self.dynatemp_range > 0
            or self.top_n_sigma > 0
            or self.xtc_probability > 0
            or self.dry_multiplier > 0
            or self.logit_bias
            or self.samplers != DEFAULT_SAMPLERS
        )

    @staticmethod
    def numeric_fields() -> list[dataclasses.Field]:
        return [f for f in dataclasses.fields(GenerationConfig) if "min" in f.metadata]


def _coerce(f: dataclasses.Field, value: Any) -> Any:
    if f.name == "stop":
        if isinstance(value, str):
            return parse_stop_strings(value)
        return tuple(str(s) for s in value)
    if f.name == "logit_bias":
        return parse_logit_bias(value)
    if f.name == "samplers":
        return parse_samplers(value)
    kind = int if f.type in ("int", int) else float
    try:
        number = float(value)
    except (TypeError, ValueError) as e:
        raise ConfigError(
            f"{f.metadata['label']} must be a number between {f.metadata['min']} and "
            f"{f.metadata['max']}; got {value!r}.",
            field=f.name,
        ) from e
    if kind is int:
        if not math.isfinite(number) or number != int(number):
            raise ConfigError(
                f"{f.metadata['label']} must be a whole number between {f.metadata['min']} "
                f"and {f.metadata['max']}; got {value!r}.",
                field=f.name,
            )
        return int(number)
    return number


def _check_number(f: dataclasses.Field, value: Any) -> None:
    lo, hi, label = f.metadata["min"], f.metadata["max"], f.metadata["label"]
    want_int = f.type in ("int", int)
    ok_type = isinstance(value, int) if want_int else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type:
        kind = "a whole number" if want_int else "a number"
        raise ConfigError(
            f"{label} ({f.name}) must be {kind} between {lo} and {hi}; got {value!r}.",
            field=f.name,
        )
    if not (math.isfinite(value) and lo <= value <= hi):
        raise ConfigError(f"{label} ({f.name}) must be between {lo} and {hi}; got {value!r}.", field=f.name)


def _check_stop(value: Any) -> None:
    if not isinstance(value, tuple) or not all(isinstance(s, str) for s in value):
        raise ConfigError("Stop strings must be a tuple of strings.", field="stop")
    if any(s == "" for s in value):
        raise ConfigError("Stop strings must not be empty.", field="stop")
    if len(value) > 16 or any(len(s) > 200 for s in value):
        raise ConfigError("At most 16 stop strings of up to 200 characters.", field="stop")


def _check_logit_bias(value: Any) -> None:
    ok = isinstance(value, tuple) and all(
        isinstance(p, tuple) and len(p) == 2 and type(p[0]) is int and isinstance(p[1], float) for p in value
    )
    if not ok:
        raise ConfigError("Logit bias must be (token id, bias) pairs.", field="logit_bias")
    if len(value) > 1024:
        raise ConfigError("At most 1024 logit biases.", field="logit_bias")
    for token, bias in value:
        if not 0 <= token < 2**31 or not (math.isfinite(bias) and -100 <= bias <= 100):
            raise ConfigError(
                f"Logit bias {token}:{bias} is out of range: token ids from 0, biases from -100 to 100.",
                field="logit_bias",
            )


def _check_samplers(value: Any) -> None:
    if not isinstance(value, tuple) or not all(isinstance(s, str) for s in value):
        raise ConfigError("Sampler order must be a tuple of stage names.", field="samplers")
    unknown = [s for s in value if s not in SAMPLER_NAMES]
    if unknown or len(set(value)) != len(value):
        raise ConfigError(
            f"Sampler order takes each of {', '.join(SAMPLER_NAMES)} at most once; got {', '.join(value)}.",
            field="samplers",
        )


def parse_logit_bias(value: Any) -> tuple[tuple[int, float], ...]:
    """Logit biases from "id:bias, id:bias" text, an OpenAI ``{"id": bias}`` map or ``[[id, bias]]``.

    Token ids come first because a text may tokenize differently in context; later entries for the
    same token win. A bias of -100 or less bans the token, as with OpenAI.
    """
    if isinstance(value, str):
        pairs: list[Any] = [p.split(":", 1) for p in value.replace("\n", ",").split(",") if p.strip()]
    elif isinstance(value, dict):
        pairs = list(value.items())
    else:
        pairs = list(value)
    out: dict[int, float] = {}
    for pair in pairs:
        try:
            token, bias = pair
            if isinstance(token, bool) or isinstance(bias, bool):
                raise ValueError
            number = float(str(token).strip())
            if number != int(number):
                raise ValueError
            out[int(number)] = max(float(str(bias).strip()), BIAS_BAN)
        except (TypeError, ValueError) as e:
            raise ConfigError(
                f"Logit bias entries look like 1234:-5 (token id, bias); got {pair!r}.", field="logit_bias"
            ) from e
    return tuple(out.items())


def parse_samplers(value: Any) -> tuple[str, ...]:
    """Stage names from "a;b;c" / "a, b" text or a list (llama.cpp's server names; typical_p = typ_p)."""
    names = value.replace(";", ",").split(",") if isinstance(value, str) else list(value)
    aliases = {"typical_p": "typ_p", "typical": "typ_p", "temp": "temperature"}
    return tuple(aliases.get(str(n).strip(), str(n).strip()) for n in names if str(n).strip())


def parse_stop_strings(text: str) -> tuple[str, ...]:
    """One stop string per line; ``\\n`` inside a line stands for a newline."""
    lines = [line.replace("\\n", "\n") for line in text.splitlines()]
    return tuple(s for s in lines if s.strip("\r") != "")


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
    #: prompt-processing batch size. Prompts are evaluated in n_batch chunks from the start and
    #: the KV cache is reused in whole chunks (so answers never depend on what was cached): a
    #: small n_batch reuses more of a conversation (each turn re-evaluates at most n_batch - 1
    #: tokens besides the last answer and the new message); a large one evaluates long cold
    #: prompts faster on a GPU
    n_batch: int = 64
    #: flash attention (faster, less memory on GPU builds that support it)
    flash_attn: bool = False
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
    #: verified in one batch (off by default: bench_speed did not show it paying on this CPU)
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
    #: ingest refuses documents with more text than this, in characters
    ingest_max_chars: int = 10_000_000
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
        if self.n_batch < 1:
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
