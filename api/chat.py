"""POST /v1/chat/completions: stateless by default, a whole Hearth turn when asked.

Stateless calls go straight to the backend (nothing saved, no memory), like OpenAI's.
With ``"hearth": {...}`` in the body the call runs ChatService.stream_turn: the last user
message joins a saved conversation, memory and retrieval feed it, and the answer carries the
conversation id and its sources in an extra ``hearth`` field.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

from fastapi import Request, Response

from engine.backends.kv_snapshots import RAM_ONLY
from engine.chat import ChatService
from engine.config import GenerationConfig
from engine.errors import GenerationError
from engine.types import Chunk, Done, Message, Sources, TextDelta, TokenLogprob, TurnStarted, Usage

from .catalog import resolve_chat_model
from .errors import APIError, bad_request, context_exceeded
from .schemas import MAX_TOP_LOGPROBS, ChatCompletionRequest, ResponseFormat, read_json
from .streams import MAX_BODY_BYTES, Gate, Generation, answer
from .tools import CallWatch, ToolCall, ToolPlan, message_text, plan_tools, render

if TYPE_CHECKING:
    from engine.factory import Services


@dataclasses.dataclass
class HearthResult:
    """Filled by the generation thread before it hands over the last chunk."""

    conversation_id: str = ""
    message_id: str = ""
    sources: list[dict[str, Any]] = dataclasses.field(default_factory=list)


async def create_chat_completion(request: Request, services: Services, gate: Gate) -> Response:
    body = await read_json(request, ChatCompletionRequest, max_bytes=MAX_BODY_BYTES)
    check_n(body.n)
    config = body.generation_config()
    model = resolve_chat_model(services, body.model)
    top = top_logprobs(body)
    tools = plan_tools(body)
    grammar = tools.grammar if tools and tools.grammar else response_grammar(body.response_format)
    hearth: HearthResult | None = None
    if body.hearth is None:
        produce = stateless_chat(services, render(body.messages, tools), config, grammar, top)
    else:
        if grammar or top is not None or body.tools:
            raise bad_request(
                'response_format, logprobs and tools are not available with "hearth" turns.', param="hearth"
            )
        hearth = HearthResult()
        produce = _hearth_turn(services, body, config, hearth)
    reply = _Reply(model=model, hearth=hearth, logprobs=top is not None, tools=tools)
    return await answer(
        request,
        produce,
        gate=gate,
        stream=body.stream,
        whole=reply.whole,
        events=lambda g: reply.events(g, include_usage=body.include_usage),
    )


def check_n(n: int | None) -> None:
    if n is not None and n != 1:
        raise bad_request("Only n=1 is supported: this server generates one answer per call.", param="n")


def top_logprobs(body: ChatCompletionRequest) -> int | None:
    """Alternatives per token for the backend; None when logprobs are off."""
    if not body.logprobs:
        if body.top_logprobs:
            raise bad_request("top_logprobs needs logprobs set to true.", param="top_logprobs")
        return None
    top = body.top_logprobs or 0
    if not 0 <= top <= MAX_TOP_LOGPROBS:
        raise bad_request(f"top_logprobs must be between 0 and {MAX_TOP_LOGPROBS}.", param="top_logprobs")
    return top


def response_grammar(fmt: ResponseFormat | None) -> str | None:
    """The GBNF grammar that enforces ``response_format`` (None for plain text)."""
    if fmt is None or fmt.type == "text":
        return None
    from engine.backends.llama_cpp import json_object_grammar, json_schema_grammar

    if fmt.type == "json_schema":
        if fmt.json_schema is None or not fmt.json_schema.schema_:
            raise bad_request(
                "response_format json_schema needs a json_schema.schema.", param="response_format"
            )
        return json_schema_grammar(fmt.json_schema.schema_)
    return json_schema_grammar(fmt.schema_) if fmt.schema_ else json_object_grammar()


def stateless_chat(services: Services, messages: list[Message], config: GenerationConfig, grammar, top):
    def produce(cancel: threading.Event) -> Iterator[Chunk]:
        backend = services.models.backend
        try:
            needed = backend.count_prompt_tokens(messages)
        except GenerationError as e:  # the chat template refused these messages (e.g. role order)
            raise APIError(400, str(e), param="messages") from e
        if needed >= backend.info.n_ctx:
            raise context_exceeded(needed, backend.info.n_ctx, param="messages")
        key = stateless_cache_key(messages)
        yield from backend.stream_chat(
            messages, config, cancel=cancel, grammar=grammar, logprobs=top, cache_key=key
        )
        # the client has the whole answer: its tokens become reusable by this chat's next call
        # (which would otherwise evaluate them again, as a page turn's next one would)
        backend.settle(key)

    return produce


def stateless_cache_key(messages: list[Message]) -> str:
    """The KV snapshot key of a stateless call's conversation.

    A client sends a chat's opening (system prompt, first user message) again with every call
    of that chat, so the opening names it: switching between chats restores each one's KV
    instead of evaluating its whole history again. Two chats that open alike share a key,
    which costs reuse, never correctness (a snapshot is used only for the tokens it shares
    with the prompt). RAM only: nothing of a stateless call is written to disk.
    """
    opening: list[tuple[str, str]] = []
    for m in messages:
        opening.append((m.role, m.content))
        if m.role == "user":
            break
    digest = hashlib.sha256(json.dumps(opening).encode("utf-8")).hexdigest()[:32]
    return f"{RAM_ONLY}api-{digest}"


def _hearth_turn(
    services: Services, body: ChatCompletionRequest, config: GenerationConfig, result: HearthResult
):
    options = body.hearth
    assert options is not None
    last = body.messages[-1]
    if last.role != "user":
        raise bad_request(
            'A "hearth" turn answers the last message, which must be the user\'s.', param="messages"
        )
    text = message_text(last, len(body.messages) - 1)
    system = next((m for m in render(body.messages, None) if m.role == "system"), None)
    chat: ChatService = services.chat
    if not options.memory and chat.memory is not None:
        # same conversations and retrievers, no memory hooks
        chat = ChatService(
            models=chat.models,
            conversations=chat.conversations,
            retrievers=chat.retrievers,
            default_system_prompt=chat.default_system_prompt,
        )

    def produce(cancel: threading.Event) -> Iterator[Chunk]:
        conversation_id = _prepare_conversation(services, chat, options, system)
        events = chat.stream_turn(conversation_id, text, config)
        try:
            for event in events:
                if isinstance(event, TurnStarted):
                    result.conversation_id = event.conversation_id
                elif isinstance(event, TextDelta):
                    yield Chunk(text=event.text)
                elif isinstance(event, Sources):
                    result.sources = [_source(h) for h in event.hits]
                elif isinstance(event, Done):
                    result.message_id = event.message_id
                    yield Chunk(text="", finish_reason=event.finish_reason, usage=event.usage)
                    continue  # memory upkeep runs after Done: let it finish
                if cancel.is_set():
                    break  # closing the turn keeps the partial answer (as Stop on the page)
        finally:
            events.close()

    return produce


def _prepare_conversation(
    services: Services, chat: ChatService, options, system: Message | None
) -> str | None:
    conversation_id = options.conversation_id
    if conversation_id is None and (system is not None or options.collections is not None):
        prompt = system.content if system is not None else None
        conversation_id = chat.new_conversation(system_prompt=prompt).id
    if options.collections is not None:
        names = services.documents.resolve_collections(options.collections) or []
        services.conversations.update(conversation_id, collections=names)
    return conversation_id


def _source(hit) -> dict[str, Any]:
    return {
        "kind": hit.kind,
        "id": hit.id,
        "source": hit.source,
        "page": hit.page,
        "location": hit.location,
        "score": hit.score,
        "text": hit.text,
    }


@dataclasses.dataclass
class _Reply:
    """Turns engine chunks into OpenAI's chat.completion(.chunk) objects."""

    model: str
    hearth: HearthResult | None
    logprobs: bool
    #: the call's tools: answers that call them come back as tool_calls
    tools: ToolPlan | None = None
    id: str = dataclasses.field(default_factory=lambda: "chatcmpl-" + uuid.uuid4().hex)
    created: int = dataclasses.field(default_factory=lambda: int(time.time()))

    def _head(self, kind: str) -> dict[str, Any]:
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model}

    async def events(self, generation: Generation, *, include_usage: bool) -> AsyncIterator[dict[str, Any]]:
        head = self._head("chat.completion.chunk")
        yield {**head, "choices": [_choice_delta({"role": "assistant", "content": ""}, None, None)]}
        watch = CallWatch(self.tools) if self.tools and self.tools.offered else None
        async for chunk in generation.chunks():
            logprobs = {"content": _logprobs(chunk.logprobs), "refusal": None} if self.logprobs else None
            text = watch.feed(chunk.text) if watch else chunk.text
            if text or chunk.logprobs:
                yield {**head, "choices": [_choice_delta({"content": text}, logprobs, None)]}
            if chunk.finish_reason:
                reason = finish_reason(chunk.finish_reason)
                if watch:
                    rest, calls = watch.finish()
                    if rest:
                        yield {**head, "choices": [_choice_delta({"content": rest}, None, None)]}
                    if calls:
                        delta = {"tool_calls": [c.as_openai(i) for i, c in enumerate(calls)]}
                        yield {**head, "choices": [_choice_delta(delta, None, None)]}
                        reason = _with_calls(reason)
                last = {**head, "choices": [_choice_delta({}, None, reason)]}
                if self.hearth is not None:
                    last["hearth"] = dataclasses.asdict(self.hearth)
                yield last
                if include_usage:
                    yield {**head, "choices": [], "usage": usage(chunk.usage)}

    def whole(self, chunks: list[Chunk]) -> dict[str, Any]:
        last = chunks[-1] if chunks else Chunk(text="", finish_reason="stop")
        text = "".join(c.text for c in chunks)
        content, calls = self._calls(text)
        message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
        if calls:
            message["tool_calls"] = [c.as_openai() for c in calls]
        scored = [t for c in chunks for t in (c.logprobs or ())]
        choice = {
            "index": 0,
            "message": message,
            "logprobs": {"content": _logprobs(scored), "refusal": None} if self.logprobs else None,
            "finish_reason": _with_calls(finish_reason(last.finish_reason))
            if calls
            else finish_reason(last.finish_reason),
        }
        reply = {**self._head("chat.completion"), "choices": [choice], "usage": usage(last.usage)}
        if self.hearth is not None:
            reply["hearth"] = dataclasses.asdict(self.hearth)
        return reply

    def _calls(self, text: str) -> tuple[str | None, list[ToolCall]]:
        if not (self.tools and self.tools.offered):
            return text, []
        content, calls = self.tools.split(text)
        return (content or None) if calls else content, calls


def _choice_delta(delta: dict[str, Any], logprobs: Any, finish: str | None) -> dict[str, Any]:
    return {"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish}


def _logprobs(tokens) -> list[dict[str, Any]]:
    def one(t: TokenLogprob) -> dict[str, Any]:
        return {"token": t.token, "logprob": t.logprob, "bytes": list(t.token_bytes)}

    return [{**one(t), "top_logprobs": [one(alt) for alt in t.top]} for t in (tokens or ())]


def _with_calls(reason: str) -> str:
    # an answer cut by max_tokens stays "length", its calls unfinished, as OpenAI reports it
    return "length" if reason == "length" else "tool_calls"


def finish_reason(reason: str | None) -> str:
    # "cancelled" only reaches a client that is still listening after a Stop on the page
    return "length" if reason == "length" else "stop"


def usage(u: Usage | None) -> dict[str, Any]:
    if u is None:
        return {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    return {
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.prompt_tokens + u.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": u.cached_tokens},
    }
