"""The Backend protocol: how the engine talks to a model.

The in-process llama.cpp backend implements it today; a remote backend speaking the
OpenAI-compatible API of vLLM / llama.cpp's server implements the same methods.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from ..config import GenerationConfig
from ..types import Chunk, Message


@dataclass(frozen=True, kw_only=True)
class ModelInfo:
    """What was loaded, for the model panel and the status line."""

    name: str
    path: str
    quantization: str
    n_params: int
    size_bytes: int
    n_ctx: int
    n_ctx_train: int
    n_layers: int
    #: "gguf" (from the file's metadata), "override" (settings) or "fallback (chatml)"
    chat_template_source: str
    gpu_offload_supported: bool
    n_gpu_layers: int
    backend: str = "llama.cpp"
    #: what was adjusted while loading and why (e.g. a context clamped to the model or to memory)
    note: str = ""
    #: CPU threads for generation and for prompt batches (0 = not known, e.g. a remote backend)
    n_threads: int = 0
    n_threads_batch: int = 0
    #: how the thread counts were chosen
    threads_note: str = ""
    #: flash attention on or off, and why (see attention_check)
    attention_note: str = ""
    #: SHA-256 of the chat template that renders prompts ("" = not known, e.g. a remote server)
    template_sha256: str = ""

    @property
    def on_gpu(self) -> bool:
        return self.gpu_offload_supported and self.n_gpu_layers != 0

    def summary(self) -> str:
        gpu = (
            f"GPU: {self.n_gpu_layers if self.n_gpu_layers >= 0 else 'all'} layers" if self.on_gpu else "CPU"
        )
        return (
            f"{self.name} · {self.quantization} · {self.n_params / 1e6:,.0f}M params · "
            f"context {self.n_ctx} (trained {self.n_ctx_train}) · template: "
            f"{self.chat_template_source} · {gpu}"
            + (f" · threads {self.n_threads} gen / {self.n_threads_batch} batch" if self.n_threads else "")
        )


@runtime_checkable
class Backend(Protocol):
    info: ModelInfo
    #: whether ``stream_chat`` accepts images (a vision model with its projector)
    supports_images: bool
    #: GenerationConfig fields this backend cannot apply (a remote server drops them)
    ignored_settings: tuple[str, ...]
    #: whether ``stream_completion`` continues raw text (False: it raises GenerationError)
    supports_completion: bool

    def count_tokens(self, text: str) -> int:
        """Tokens ``text`` takes, without special tokens."""
        ...

    def count_prompt_tokens(self, messages: Sequence[Message]) -> int:
        """Tokens of the fully templated prompt for ``messages``."""
        ...

    def stream_chat(
        self,
        messages: Sequence[Message],
        config: GenerationConfig,
        *,
        cancel: threading.Event | None = None,
        grammar: str | None = None,
        images: Sequence[Path] = (),
        logprobs: int | None = None,
        cache_key: str | None = None,
        spare_core: bool = False,
    ) -> Iterator[Chunk]:
        """Stream the answer; the last chunk carries finish_reason and usage.

        ``cache_key`` names the conversation the turn belongs to, so a backend may keep and
        restore that conversation's KV cache; None for one-off calls (summaries, tools).

        ``spare_core``: a browser on this machine renders the answer as it streams (the page);
        a backend decoding on this machine's CPU leaves it a core, others ignore it.

        ``images`` go with the last user message; only backends whose ``supports_images``
        is true accept them. ``logprobs`` (0-20 alternatives per token) attaches each
        token's log-probability to the chunks; None leaves them out.

        Concurrent calls queue; setting ``cancel`` ends the stream at the next token
        with finish_reason "cancelled".
        """
        ...

    def stream_completion(
        self,
        prompt: str,
        config: GenerationConfig,
        *,
        cancel: threading.Event | None = None,
        grammar: str | None = None,
        logprobs: int | None = None,
    ) -> Iterator[Chunk]:
        """Continue raw ``prompt`` text (no chat template); otherwise as ``stream_chat``."""
        ...

    def settle(self, cache_key: str | None) -> int:
        """After an answer, while the user reads it: make what the last turn left in the cache
        reusable by the next turn of ``cache_key``'s conversation. Returns the tokens it
        evaluated (0: nothing to do, or the backend keeps its own cache)."""
        ...

    def close(self) -> None: ...
