"""Function calling on /v1/chat/completions (``tools``, ``tool_choice``), for any chat model.

The tools are offered the way Hermes- and Qwen-style models are trained to take them: each
function's JSON Schema is listed in the system message, and a call is written
``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``. Earlier calls go back into the
prompt in that form, and their results as a user turn in ``<tool_response>``: every chat
template takes a user turn, where many refuse a "tool" role.

- ``tool_choice`` "required", or one named function: a grammar makes the answer exactly one
  call to (one of) those functions, with arguments valid under the function's schema.
- "auto" (the default with tools): the model writes freely. An answer that holds calls, in that
  form or as the bare JSON object Llama 3.1-style models write, comes back as ``tool_calls``
  with finish_reason "tool_calls"; text before the first call stays the content. A block that
  is not a call to one of the given tools leaves the whole answer as text. While streaming,
  text that may be the start of a call is held back until it is known. With
  ``parallel_tool_calls`` false only the first call is kept.
- "none": the tools are not offered (earlier calls and results still reach the model).
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from engine.types import Message, Role

from .errors import bad_request, not_text
from .schemas import ChatCompletionRequest, ChatMessageIn, NamedToolChoice, ToolSpec

CALL_OPEN = "<tool_call>"
CALL_CLOSE = "</tool_call>"

TOOLS_PROMPT = """You can call functions to answer. The functions, with JSON Schemas of their arguments:
<tools>
{tools}
</tools>
To call a function, write only this, with arguments that fit its schema:
{open}
{{"name": <function-name>, "arguments": <args-json-object>}}
{close}
Each result comes back inside <tool_response></tool_response>. When no call is needed, answer in \
plain text."""

#: how each role reaches the chat template (tool results become user turns, below)
_ROLES: dict[str, Role] = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "assistant": "assistant",
}

_BLOCK = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|\Z)", re.S)


@dataclass(frozen=True)
class ToolCall:
    name: str
    #: the arguments as a JSON text, as OpenAI returns them
    arguments: str
    id: str = field(default_factory=lambda: "call_" + uuid.uuid4().hex[:24])

    def as_openai(self, index: int | None = None) -> dict[str, Any]:
        call = {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }
        return call if index is None else {"index": index, **call}


@dataclass(frozen=True)
class ToolPlan:
    """What a call's tools mean for its prompt, its grammar and its reply."""

    #: the tools described to the model (none for tool_choice "none")
    offered: tuple[ToolSpec, ...]
    #: the grammar that forces a call ("required" or a named function), else None
    grammar: str | None
    #: parallel_tool_calls: False keeps only an answer's first call
    parallel: bool = True
    #: the functions the grammar forces a call to (empty unless it forces one)
    forced: frozenset[str] = frozenset()

    def split(self, text: str) -> tuple[str, list[ToolCall]]:
        """``split_calls`` over these tools, keeping only the first call unless ``parallel``.
        A forced call that did not parse was cut short (max_tokens): it is still the call, with
        its arguments as far as they got, as OpenAI returns it (finish_reason "length")."""
        content, calls = split_calls(text, self.names)
        if self.forced and not calls:
            return "", [cut_call(text, self.forced)]
        return content, calls if self.parallel else calls[:1]

    @property
    def names(self) -> frozenset[str]:
        return frozenset(t.function.name for t in self.offered)


def plan_tools(body: ChatCompletionRequest) -> ToolPlan | None:
    """The request's tools checked (400 for a bad choice); None when it has none."""
    if body.functions is not None or body.function_call is not None:
        raise bad_request(
            "functions and function_call are the deprecated form of tools: send tools and tool_choice.",
            param="functions",
        )
    choice = body.tool_choice
    if not body.tools:
        if choice not in (None, "none", "auto"):
            asked = choice if isinstance(choice, str) else choice.function.name
            raise bad_request(
                f"tool_choice {asked!r} asks for a call, but the request has no tools.", param="tool_choice"
            )
        return None
    names = [t.function.name for t in body.tools]
    if len(set(names)) != len(names):
        raise bad_request("Two tools have the same function name.", param="tools")
    if choice == "none":
        return ToolPlan(offered=(), grammar=None)
    if isinstance(choice, NamedToolChoice):
        forced = [t for t in body.tools if t.function.name == choice.function.name]
        if not forced:
            raise bad_request(
                f"tool_choice names {choice.function.name!r}, which is not among the tools.",
                param="tool_choice",
            )
        return ToolPlan(
            offered=tuple(body.tools),
            grammar=call_grammar(forced),
            forced=frozenset([forced[0].function.name]),
        )
    required = choice == "required"
    return ToolPlan(
        offered=tuple(body.tools),
        grammar=call_grammar(body.tools) if required else None,
        parallel=body.parallel_tool_calls is not False,
        forced=frozenset(names) if required else frozenset(),
    )


def call_grammar(tools: list[ToolSpec]) -> str:
    """A GBNF grammar for one call, ``{"name": ..., "arguments": {...}}``, to one of ``tools``.

    Each tool's parameters move under ``$defs`` (as ``tool0``, ``tool1`` ...) with their local
    references re-rooted, so ``#/$defs/...`` (as pydantic writes nested models) and ``#`` still
    point into that tool's own schema."""
    from engine.backends.grammars import json_schema_grammar

    defs = {f"tool{i}": _rerooted(_parameters(t), f"#/$defs/tool{i}") for i, t in enumerate(tools)}
    alternatives = [
        {
            "type": "object",
            "properties": {"name": {"const": t.function.name}, "arguments": {"$ref": f"#/$defs/tool{i}"}},
            "required": ["name", "arguments"],
        }
        for i, t in enumerate(tools)
    ]
    schema = alternatives[0] if len(alternatives) == 1 else {"anyOf": alternatives}
    return json_schema_grammar({**schema, "$defs": defs}, field="tools")


def _parameters(tool: ToolSpec) -> dict[str, Any]:
    return tool.function.parameters or {"type": "object", "properties": {}}


def _rerooted(value: Any, root: str) -> Any:
    """``value`` with every local ``$ref`` (``#``, ``#/...``) made relative to ``root``."""
    if isinstance(value, list):
        return [_rerooted(v, root) for v in value]
    if not isinstance(value, dict):
        return value
    out = {k: _rerooted(v, root) for k, v in value.items()}
    ref = value.get("$ref")
    if isinstance(ref, str) and ref.startswith("#"):
        out["$ref"] = root + ref[1:]
    return out


def render(messages: list[ChatMessageIn], plan: ToolPlan | None) -> list[Message]:
    """The messages as the model reads them: calls and results as text, tools in the system turn."""
    out: list[Message] = []
    for i, m in enumerate(messages):
        text = message_text(m, i)
        if m.role in ("tool", "function"):
            result = f"<tool_response>\n{text}\n</tool_response>"
            if out and out[-1].role == "user" and out[-1].content.endswith("</tool_response>"):
                out[-1] = Message(
                    role="user", content=f"{out[-1].content}\n{result}"
                )  # one turn for all results
            else:
                out.append(Message(role="user", content=result))
            continue
        if m.role == "assistant" and m.tool_calls:
            calls = "\n".join(_written_call(c.function.name, c.function.arguments) for c in m.tool_calls)
            text = f"{text}\n{calls}" if text else calls
        out.append(Message(role=_ROLES[m.role], content=text))
    if plan is not None and plan.offered:
        out = _with_tools(out, plan.offered)
    return out


def message_text(m: ChatMessageIn, index: int) -> str:
    if not isinstance(m.content, list):
        return m.content or ""
    for part in m.content:
        if part.type != "text":
            raise bad_request(not_text(part.type), param=f"messages.{index}.content")
    return "\n".join(part.text or "" for part in m.content)


def _written_call(name: str, arguments: str | dict[str, Any]) -> str:
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except ValueError:
            pass  # shown as the client sent it
    call = json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False)
    return f"{CALL_OPEN}\n{call}\n{CALL_CLOSE}"


def _with_tools(messages: list[Message], tools: tuple[ToolSpec, ...]) -> list[Message]:
    listed = "\n".join(json.dumps(t.model_dump(exclude_none=True), ensure_ascii=False) for t in tools)
    prompt = TOOLS_PROMPT.format(tools=listed, open=CALL_OPEN, close=CALL_CLOSE)
    if messages and messages[0].role == "system":
        first = messages[0]
        joined = f"{first.content}\n\n{prompt}" if first.content else prompt
        return [Message(role="system", content=joined), *messages[1:]]
    return [Message(role="system", content=prompt), *messages]


def split_calls(text: str, names: frozenset[str]) -> tuple[str, list[ToolCall]]:
    """The answer's content (text before the first call) and its calls; no calls, and the whole
    text as content, unless every call block is a call to one of ``names``."""
    start = text.find(CALL_OPEN)
    if start >= 0:
        blocks, head = _BLOCK.findall(text, start), text[:start]
    elif text.lstrip()[:1] in ("{", "["):
        blocks, head = [text.strip()], ""
    else:
        return text, []
    calls: list[ToolCall] = []
    for block in blocks:
        found = _calls_in(block, names)
        if found is None:
            return text, []
        calls += found
    return head.rstrip(), calls


def cut_call(text: str, forced: frozenset[str]) -> ToolCall:
    """The call in a forced answer cut short: the grammar wrote ``{"name": "...", "arguments":``
    first, so the name is known once written (or when one function was forced), and the
    arguments are the text that followed, unfinished."""
    name = _CUT_NAME.search(text)
    written = name.group(1) if name else ""
    matching = sorted(n for n in forced if n.startswith(written))
    arguments = _CUT_ARGUMENTS.search(text)
    return ToolCall(
        name=matching[0] if len(matching) == 1 else written,
        arguments=text[arguments.end() :].strip() if arguments else "",
    )


_CUT_NAME = re.compile(r'"name"\s*:\s*"((?:[^"\\]|\\.)*)')
_CUT_ARGUMENTS = re.compile(r'"arguments"\s*:')


def _calls_in(block: str, names: frozenset[str]) -> list[ToolCall] | None:
    try:
        value = json.loads(block)
    except ValueError:
        return None
    calls = []
    for item in value if isinstance(value, list) else [value]:
        if not isinstance(item, dict) or item.get("name") not in names:
            return None
        arguments = item.get("arguments", item.get("parameters", {}))
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments)
            except ValueError:
                return None
        if not isinstance(arguments, dict):
            return None
        calls.append(ToolCall(name=item["name"], arguments=json.dumps(arguments, ensure_ascii=False)))
    return calls or None


class CallWatch:
    """Streams an answer's text while holding back whatever may be the start of a call."""

    def __init__(self, plan: ToolPlan):
        self._plan = plan
        self._text = ""
        self._sent = 0

    def feed(self, piece: str) -> str:
        """The text that can be shown now."""
        self._text += piece
        end = self._safe_end()
        shown = self._text[self._sent : end]
        self._sent = max(self._sent, end)
        return shown

    def _safe_end(self) -> int:
        text = self._text
        if self._sent == 0 and text.lstrip()[:1] in ("", "{", "["):
            return 0  # nothing yet, or a bare JSON call may be coming
        start = text.find(CALL_OPEN, self._sent)  # none starts before: that text was shown
        if start >= 0:
            return start
        for k in range(min(len(CALL_OPEN) - 1, len(text)), 0, -1):
            if CALL_OPEN.startswith(text[-k:]):
                return len(text) - k  # maybe the first characters of a call
        return len(text)

    def finish(self) -> tuple[str, list[ToolCall]]:
        """The text not shown yet, and the answer's calls."""
        content, calls = self._plan.split(self._text)
        return content[self._sent :], calls
