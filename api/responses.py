"""POST /v1/responses (and GET /v1/responses/{id}): OpenAI's Responses API over the same chat.

Newer clients (the Agents SDK, ``client.responses.create``) speak this instead of chat
completions. A request becomes the chat-completions request it means (``instructions`` as the
system turn, ``input`` items as messages, ``function_call`` / ``function_call_output`` items as
calls and results, flat function tools, ``text.format`` as ``response_format``,
``max_output_tokens``) and runs the same stateless path, tools and grammars included; the
answer comes back as output items: a message with ``output_text``, and ``function_call`` items.

``previous_response_id`` continues a stored response: with ``store`` (OpenAI's default) each
response's conversation is kept in RAM, the last ``KEPT_RESPONSES`` of them, never on disk.
Only function tools are served (no hosted web or file search) and only text input.
"""

from __future__ import annotations

import collections
import threading
import time
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from engine.types import Chunk, Usage

from .catalog import resolve_chat_model
from .chat import response_grammar, stateless_chat
from .errors import APIError, bad_request, not_text, validation_error
from .schemas import (
    ChatCompletionRequest,
    ChatMessageIn,
    GenerationRequest,
    JSONSchemaSpec,
    ResponseFormat,
    read_json,
)
from .streams import MAX_BODY_BYTES, Gate, Generation, answer
from .tools import CallWatch, ToolCall, ToolPlan, plan_tools, render

if TYPE_CHECKING:
    from engine.factory import Services

#: stored responses kept for previous_response_id (RAM only; the oldest go first)
KEPT_RESPONSES = 256


def add_routes(v1: APIRouter, services: Services, gate: Gate) -> None:
    """POST /v1/responses and GET /v1/responses/{id} on ``v1``."""
    stored = Stored()

    @v1.post("/responses")
    async def responses(request: Request) -> Response:
        return await create_response(request, services, gate, stored)

    @v1.get("/responses/{response_id}")
    async def get_response(response_id: str) -> Response:
        return JSONResponse(stored.get(response_id, param=None)[1])


class ResponsesRequest(GenerationRequest):
    input: str | list[dict[str, Any]]
    instructions: str | None = None
    previous_response_id: str | None = None
    store: bool = True
    max_output_tokens: int | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    text: dict[str, Any] | None = None

    def answer_limit(self) -> int | None:
        return self.max_output_tokens


class Stored:
    """The conversations of stored responses, for previous_response_id (a bounded LRU)."""

    def __init__(self, size: int = KEPT_RESPONSES):
        self._size = size
        self._items: collections.OrderedDict[str, tuple[list[ChatMessageIn], dict[str, Any]]] = (
            collections.OrderedDict()
        )
        self._lock = threading.Lock()

    def put(self, rid: str, messages: list[ChatMessageIn], reply: dict[str, Any]) -> None:
        with self._lock:
            self._items[rid] = (messages, reply)
            while len(self._items) > self._size:
                self._items.popitem(last=False)

    def get(
        self, rid: str, *, param: str | None = "previous_response_id"
    ) -> tuple[list[ChatMessageIn], dict[str, Any]]:
        with self._lock:
            if rid not in self._items:
                raise APIError(
                    404,
                    f"No stored response {rid!r} (responses are kept in memory, the last {self._size}).",
                    param=param,
                    code="not_found",
                )
            self._items.move_to_end(rid)
            return self._items[rid]


async def create_response(request: Request, services: Services, gate: Gate, stored: Stored) -> Response:
    body = await read_json(request, ResponsesRequest, max_bytes=MAX_BODY_BYTES)
    earlier = stored.get(body.previous_response_id)[0] if body.previous_response_id else []
    conversation = earlier + input_messages(body.input)
    chat = _as_chat(body, conversation)
    config = chat.generation_config()
    model = resolve_chat_model(services, body.model)
    tools = plan_tools(chat)
    grammar = tools.grammar if tools and tools.grammar else response_grammar(chat.response_format)
    produce = stateless_chat(services, render(chat.messages, tools), config, grammar, None)
    reply = _Reply(body=body, model=model, tools=tools)

    def whole(chunks: list[Chunk]) -> dict[str, Any]:
        result = reply.result("".join(c.text for c in chunks), chunks[-1] if chunks else None)
        reply.keep(stored, conversation, result)
        return result

    async def events(generation: Generation) -> AsyncIterator[dict[str, Any]]:
        async for event in reply.events(generation):
            if event["type"] in ("response.completed", "response.incomplete"):
                reply.keep(stored, conversation, event["response"])
            yield event

    return await answer(request, produce, gate=gate, stream=body.stream, whole=whole, events=events)


def input_messages(items: str | list[dict[str, Any]]) -> list[ChatMessageIn]:
    """``input`` as chat messages: an assistant message and the function calls after it become
    one assistant turn."""
    if isinstance(items, str):
        return [ChatMessageIn(role="user", content=items)]
    turns: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        kind = item.get("type", "message")
        if kind == "message":
            turns.append({"role": item.get("role"), "content": _text(item.get("content"), i)})
        elif kind == "function_call":
            function = {"name": item.get("name"), "arguments": item.get("arguments", "")}
            call = {"id": item.get("call_id"), "function": function}
            if turns and turns[-1]["role"] == "assistant":  # its text, then its calls
                turns[-1].setdefault("tool_calls", []).append(call)
            else:
                turns.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            output = item.get("output", "")
            text = output if isinstance(output, str) else _text(output, i)
            turns.append({"role": "tool", "content": text, "tool_call_id": item.get("call_id")})
        elif kind != "reasoning":  # a reasoning summary from another server: not for this model
            raise bad_request(f"Input items of type {kind!r} are not supported here.", param=f"input.{i}")
    if not turns:
        raise bad_request("The input holds no message.", param="input")
    try:
        return [ChatMessageIn.model_validate(turn) for turn in turns]
    except ValidationError as e:
        raise validation_error(list(e.errors())) from e


def _text(content: Any, index: int) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    parts = []
    for part in content if isinstance(content, list) else [content]:
        if not isinstance(part, dict) or part.get("type") not in ("input_text", "output_text", "text"):
            kind = part.get("type") if isinstance(part, dict) else type(part).__name__
            raise bad_request(not_text(str(kind)), param=f"input.{index}.content")
        parts.append(str(part.get("text") or ""))
    return "\n".join(parts)


def _as_chat(body: ResponsesRequest, conversation: list[ChatMessageIn]) -> ChatCompletionRequest:
    """The chat-completions request this Responses request means."""
    messages = conversation
    if body.instructions:
        messages = [ChatMessageIn(role="system", content=body.instructions), *conversation]
    tools = None
    if body.tools is not None:
        for i, tool in enumerate(body.tools):
            if tool.get("type") != "function":
                raise bad_request(
                    f"Only function tools are served here, not {tool.get('type')!r}.", param=f"tools.{i}"
                )
        tools = [
            {"type": "function", "function": {k: v for k, v in t.items() if k != "type"}} for t in body.tools
        ]
    choice: Any = body.tool_choice
    if isinstance(choice, dict):
        choice = {"type": "function", "function": {"name": choice.get("name")}}
    fields = {name: getattr(body, name) for name in GenerationRequest.model_fields}
    try:
        return ChatCompletionRequest.model_validate(
            {
                **fields,
                "messages": messages,
                "max_completion_tokens": body.max_output_tokens,
                "tools": tools,
                "tool_choice": choice,
                "parallel_tool_calls": body.parallel_tool_calls,
                "response_format": _format(body.text),
            }
        )
    except ValidationError as e:
        raise validation_error(list(e.errors())) from e


def _format(text: dict[str, Any] | None) -> ResponseFormat | None:
    fmt = (text or {}).get("format")
    if not isinstance(fmt, dict) or fmt.get("type") in (None, "text"):
        return None
    if fmt.get("type") == "json_schema":
        spec = JSONSchemaSpec(name=fmt.get("name") or "response", schema=fmt.get("schema") or {})
        return ResponseFormat(type="json_schema", json_schema=spec)
    if fmt.get("type") == "json_object":
        return ResponseFormat(type="json_object")
    raise bad_request(f"text.format type {fmt.get('type')!r} is not supported.", param="text.format")


class _Reply:
    """Engine chunks as a Response object, or as its stream of semantic events."""

    def __init__(self, *, body: ResponsesRequest, model: str, tools: ToolPlan | None):
        self.body = body
        self.model = model
        self.tools = tools if tools and tools.offered else None
        self.id = "resp_" + uuid.uuid4().hex
        self.message_id = "msg_" + uuid.uuid4().hex
        self.created = int(time.time())

    def result(self, text: str, last: Chunk | None, calls: list[ToolCall] | None = None) -> dict[str, Any]:
        if calls is None:
            text, calls = self._calls(text)
        incomplete = last is not None and last.finish_reason == "length"
        status = "incomplete" if incomplete else "completed"
        output = [self.message_item(text, status)] if text else []
        output += [_call_item(c, status) for c in calls]
        return self._response(
            "incomplete" if incomplete else "completed",
            output,
            usage=_usage(last.usage if last else None),
            incomplete={"reason": "max_output_tokens"} if incomplete else None,
        )

    def _calls(self, text: str) -> tuple[str, list[ToolCall]]:
        if self.tools is None:
            return text, []
        return self.tools.split(text)

    def _response(
        self, status: str, output: list[dict[str, Any]], *, usage=None, incomplete=None
    ) -> dict[str, Any]:
        body = self.body
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created,
            "status": status,
            "error": None,
            "incomplete_details": incomplete,
            "instructions": body.instructions,
            "max_output_tokens": body.max_output_tokens,
            "model": self.model,
            "output": output,
            "parallel_tool_calls": body.parallel_tool_calls is not False,
            "previous_response_id": body.previous_response_id,
            "temperature": body.temperature,
            "top_p": body.top_p,
            "tool_choice": body.tool_choice or "auto",
            "tools": body.tools or [],
            "text": body.text or {"format": {"type": "text"}},
            "store": body.store,
            "metadata": {},
            "usage": usage,
        }

    def message_item(self, text: str, status: str) -> dict[str, Any]:
        part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
        return {
            "id": self.message_id,
            "type": "message",
            "status": status,
            "role": "assistant",
            "content": [part] if status != "in_progress" else [],
        }

    def keep(self, stored: Stored, conversation: list[ChatMessageIn], result: dict[str, Any]) -> None:
        """Store the conversation with this answer (its output items read as input items are)."""
        if self.body.store:
            said = input_messages(result["output"]) if result["output"] else []
            stored.put(self.id, conversation + said, result)

    async def events(self, generation: Generation) -> AsyncIterator[dict[str, Any]]:
        seq = iter(range(1 << 62))

        def event(kind: str, **fields: Any) -> dict[str, Any]:
            return {"type": kind, "sequence_number": next(seq), **fields}

        yield event("response.created", response=self._response("in_progress", []))
        yield event("response.in_progress", response=self._response("in_progress", []))
        watch = CallWatch(self.tools) if self.tools else None
        text, opened, last = "", False, None
        calls: list[ToolCall] = []
        where = {"item_id": self.message_id, "output_index": 0, "content_index": 0}
        async for chunk in generation.chunks():
            shown = watch.feed(chunk.text) if watch else chunk.text
            if chunk.finish_reason:
                last = chunk
                if watch:
                    rest, calls = watch.finish()
                    shown += rest
            if shown:
                if not opened:
                    opened = True
                    item = self.message_item("", "in_progress")
                    yield event("response.output_item.added", output_index=0, item=item)
                    part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
                    yield event("response.content_part.added", **where, part=part)
                text += shown
                yield event("response.output_text.delta", **where, delta=shown, logprobs=[])
        result = self.result(text, last, calls)
        for index, item in enumerate(result["output"]):
            if item["type"] == "message":
                yield event("response.output_text.done", **where, text=text, logprobs=[])
                yield event("response.content_part.done", **where, part=item["content"][0])
            else:
                started = {**item, "status": "in_progress", "arguments": ""}
                yield event("response.output_item.added", output_index=index, item=started)
                ids = {"item_id": item["id"], "output_index": index}
                yield event("response.function_call_arguments.delta", **ids, delta=item["arguments"])
                arguments = item["arguments"]
                yield event(
                    "response.function_call_arguments.done", **ids, name=item["name"], arguments=arguments
                )
            yield event("response.output_item.done", output_index=index, item=item)
        done = "response.incomplete" if result["status"] == "incomplete" else "response.completed"
        yield event(done, response=result)


def _call_item(call: ToolCall, status: str = "completed") -> dict[str, Any]:
    return {
        "id": "fc_" + call.id.removeprefix("call_"),
        "type": "function_call",
        "status": status,
        "call_id": call.id,
        "name": call.name,
        "arguments": call.arguments,
    }


def _usage(u: Usage | None) -> dict[str, Any]:
    u = u or Usage()
    return {
        "input_tokens": u.prompt_tokens,
        "input_tokens_details": {"cached_tokens": u.cached_tokens},
        "output_tokens": u.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": u.prompt_tokens + u.completion_tokens,
    }
