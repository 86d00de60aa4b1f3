"""Test doubles for the Backend protocol (engine/backends/base.py).

Each implements the whole protocol with the production signatures, so the engine never needs
``getattr``/``hasattr`` for a double's sake; tests/test_backend_doubles.py checks that they
keep up when the protocol grows. Subclass these instead of writing a new partial backend.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from engine.backends.base import Backend, ModelInfo
from engine.config import GenerationConfig
from engine.errors import GenerationError
from engine.types import Chunk, Message, Usage


class DelegatingBackend:
    """A real backend with every protocol member forwarded; override what a test records or changes."""

    def __init__(self, inner: Backend):
        self.inner = inner

    @property
    def info(self) -> ModelInfo:
        return self.inner.info

    @property
    def supports_images(self) -> bool:
        return self.inner.supports_images

    @property
    def supports_completion(self) -> bool:
        return self.inner.supports_completion

    @property
    def ignored_settings(self) -> tuple[str, ...]:
        return self.inner.ignored_settings

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def count_prompt_tokens(self, messages: Sequence[Message]) -> int:
        return self.inner.count_prompt_tokens(messages)

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
        return self.inner.stream_chat(
            messages,
            config,
            cancel=cancel,
            grammar=grammar,
            images=images,
            logprobs=logprobs,
            cache_key=cache_key,
            spare_core=spare_core,
        )

    def stream_completion(
        self,
        prompt: str,
        config: GenerationConfig,
        *,
        cancel: threading.Event | None = None,
        grammar: str | None = None,
        logprobs: int | None = None,
    ) -> Iterator[Chunk]:
        return self.inner.stream_completion(prompt, config, cancel=cancel, grammar=grammar, logprobs=logprobs)

    def settle(self, cache_key: str | None) -> int:
        return self.inner.settle(cache_key)

    def close(self) -> None:
        self.inner.close()


def scripted_info(n_ctx: int = 4096) -> ModelInfo:
    return ModelInfo(
        name="scripted",
        path="(test double)",
        quantization="none",
        n_params=0,
        size_bytes=0,
        n_ctx=n_ctx,
        n_ctx_train=n_ctx,
        n_layers=0,
        chat_template_source="none",
        gpu_offload_supported=False,
        n_gpu_layers=0,
        backend="scripted",
    )


class ScriptedBackend:
    """Pure-logic stand-in: answers each call with the next scripted reply (then ``fallback``);
    tokens are counted as words. For prompt and agent logic only, never as a feature's only test."""

    supports_images = False
    supports_completion = True
    ignored_settings: tuple[str, ...] = ()

    def __init__(self, replies: Sequence[str], *, fallback: str = "", n_ctx: int = 4096):
        self.replies = list(replies)
        self.fallback = fallback
        self.info = scripted_info(n_ctx)

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def count_prompt_tokens(self, messages: Sequence[Message]) -> int:
        return sum(len(m.content.split()) + 4 for m in messages)

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
        if images:
            raise GenerationError("The scripted backend cannot see images.")
        return self._reply()

    def stream_completion(
        self,
        prompt: str,
        config: GenerationConfig,
        *,
        cancel: threading.Event | None = None,
        grammar: str | None = None,
        logprobs: int | None = None,
    ) -> Iterator[Chunk]:
        return self._reply()

    def _reply(self) -> Iterator[Chunk]:
        text = self.replies.pop(0) if self.replies else self.fallback
        yield Chunk(text=text, finish_reason="stop", usage=Usage(n_ctx=self.info.n_ctx))

    def settle(self, cache_key: str | None) -> int:
        return 0

    def close(self) -> None:
        pass
