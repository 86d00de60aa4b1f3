"""POST /v1/completions: raw text continued by the model, with no chat template."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

from fastapi import Request, Response

from engine.config import GenerationConfig
from engine.types import Chunk, TokenLogprob

from .catalog import resolve_chat_model
from .chat import check_n, finish_reason, usage
from .errors import APIError, bad_request, context_exceeded
from .schemas import MAX_TOP_LOGPROBS, CompletionRequest, TokenArrays, read_json
from .streams import MAX_BODY_BYTES, Gate, Generation, answer

if TYPE_CHECKING:
    from engine.factory import Services


async def create_completion(request: Request, services: Services, gate: Gate) -> Response:
    body = await read_json(request, CompletionRequest, max_bytes=MAX_BODY_BYTES)
    check_n(body.n)
    if body.best_of is not None and body.best_of != 1:
        raise bad_request(
            "Only best_of=1 is supported: this server generates one answer per call.", param="best_of"
        )
    prompt = _single_prompt(body.prompt)
    if body.echo or body.suffix:
        raise bad_request("echo and suffix are not supported.", param="echo" if body.echo else "suffix")
    if body.logprobs is not None and not 0 <= body.logprobs <= MAX_TOP_LOGPROBS:
        raise bad_request(f"logprobs must be between 0 and {MAX_TOP_LOGPROBS}.", param="logprobs")
    config = body.generation_config()
    model = resolve_chat_model(services, body.model)

    produce = _raw(services, prompt, config, body.logprobs)
    head = {
        "id": "cmpl-" + uuid.uuid4().hex,
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
    }
    want_logprobs = body.logprobs is not None

    def whole(chunks: list[Chunk]) -> dict[str, Any]:
        last = chunks[-1] if chunks else Chunk(text="", finish_reason="stop")
        scored = [t for c in chunks for t in (c.logprobs or ())]
        logprobs = _legacy_logprobs(scored, 0) if want_logprobs else None
        choice = _choice("".join(c.text for c in chunks), logprobs, last.finish_reason)
        return {**head, "choices": [choice], "usage": usage(last.usage)}

    return await answer(
        request,
        produce,
        gate=gate,
        stream=body.stream,
        whole=whole,
        events=lambda g: _events(g, head, want_logprobs, body.include_usage),
    )


def _raw(services: Services, prompt: str, config: GenerationConfig, logprobs: int | None):
    def produce(cancel: threading.Event) -> Iterator[Chunk]:
        backend = services.models.backend
        if not backend.supports_completion:
            raise APIError(
                400,
                "The loaded backend cannot continue raw text; use /v1/chat/completions.",
                code="unsupported",
            )
        needed = backend.count_tokens(prompt)
        if needed >= backend.info.n_ctx:
            raise context_exceeded(needed, backend.info.n_ctx, param="prompt")
        return backend.stream_completion(prompt, config, cancel=cancel, logprobs=logprobs)

    return produce


def _single_prompt(prompt: str | list[str] | TokenArrays) -> str:
    if isinstance(prompt, list):
        if prompt and not isinstance(prompt[0], str):
            raise bad_request("Send the prompt as text: token arrays are not accepted here.", param="prompt")
        if len(prompt) != 1:
            raise bad_request("Send one prompt per call.", param="prompt")
    text = prompt[0] if isinstance(prompt, list) else prompt
    if not isinstance(text, str) or not text:
        raise bad_request("The prompt is empty.", param="prompt")
    return text


async def _events(
    generation: Generation, head: dict[str, Any], want_logprobs: bool, include_usage: bool
) -> AsyncIterator[dict[str, Any]]:
    offset = 0
    async for chunk in generation.chunks():
        logprobs = _legacy_logprobs(chunk.logprobs or (), offset) if want_logprobs else None
        offset += len(chunk.text)
        reason = finish_reason(chunk.finish_reason) if chunk.finish_reason else None
        if chunk.text or chunk.logprobs or reason:
            yield {**head, "choices": [_choice(chunk.text, logprobs, reason, final=bool(reason))]}
        if reason and include_usage:
            yield {**head, "choices": [], "usage": usage(chunk.usage)}


def _choice(text: str, logprobs: Any, reason: str | None, *, final: bool = True) -> dict[str, Any]:
    return {
        "index": 0,
        "text": text,
        "logprobs": logprobs,
        "finish_reason": finish_reason(reason) if final else None,
    }


def _legacy_logprobs(tokens: tuple[TokenLogprob, ...] | list[TokenLogprob], offset: int) -> dict[str, Any]:
    """The completions API's older shape: parallel lists, alternatives as {token: logprob}."""
    offsets = []
    for t in tokens:
        offsets.append(offset)
        offset += len(t.token)
    return {
        "tokens": [t.token for t in tokens],
        "token_logprobs": [t.logprob for t in tokens],
        "top_logprobs": [{alt.token: alt.logprob for alt in t.top} for t in tokens],
        "text_offset": offsets,
    }
