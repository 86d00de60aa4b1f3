"""Function calling on /v1/chat/completions (api/tools.py): the official `openai` client against a
real server on the bundled model; the parsing of free answers also on its own."""

from __future__ import annotations

import json

import openai
import pytest
from api_support import API_KEY, serve_api
from backend_doubles import DelegatingBackend
from pydantic import BaseModel, Field

from api.schemas import ChatMessageIn, ToolSpec
from api.tools import CallWatch, ToolPlan, render, split_calls
from engine import Settings, build
from engine.types import Chunk, Usage

GREEDY = {"temperature": 0.0, "extra_body": {"repeat_penalty": 1.0}}
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "maxLength": 40},
                "unit": {"type": "string", "enum": ["c", "f"]},
            },
            "required": ["city", "unit"],
        },
    },
}
ADD = {
    "type": "function",
    "function": {
        "name": "add",
        "description": "Add two numbers",
        "parameters": {
            "type": "object",
            "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
            "required": ["a", "b"],
        },
    },
}
TOOLS = [WEATHER, ADD]


def _tool(name: str, parameters: dict) -> dict:
    return {"type": "function", "function": {"name": name, "parameters": parameters}}


def _format(schema: dict) -> dict:
    return {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}


class Street(BaseModel):
    name: str = Field(max_length=30)
    number: int


class Address(BaseModel):
    """A pydantic model as LangChain and the Agents SDK send it: nested models under $defs."""

    city: str = Field(max_length=30)
    streets: list[Street] = Field(max_length=2)
    main: Street


ASK = [{"role": "user", "content": "What is the weather in Paris?"}]
NAMES = frozenset({"get_weather", "add"})
PLAN = ToolPlan(offered=tuple(ToolSpec.model_validate(t) for t in TOOLS), grammar=None)


class Steered(DelegatingBackend):
    """The real model; it records each prompt, and answers with ``script`` (in pieces) when set."""

    def __init__(self, inner):
        super().__init__(inner)
        self.prompts: list = []
        self.script: list[str] | None = None

    def stream_chat(self, messages, config, **kwargs):
        self.prompts.append(list(messages))
        if self.script is None:
            return self.inner.stream_chat(messages, config, **kwargs)
        return self._scripted(self.script)

    def _scripted(self, pieces):
        for piece in pieces:
            yield Chunk(text=piece)
        yield Chunk(
            text="", finish_reason="stop", usage=Usage(prompt_tokens=1, completion_tokens=len(pieces))
        )


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    s = build(Settings(data_dir=tmp_path_factory.mktemp("api-tools") / "data", n_ctx=2048))
    steered = Steered(s.models._backend)
    s.models._backend = steered
    with serve_api(s) as url, openai.OpenAI(base_url=f"{url}/v1", api_key=API_KEY, max_retries=0) as client:
        steered.client = client
        steered.model = client.models.list().data[0].id
        yield steered
    s.close()


@pytest.fixture
def real(backend):
    backend.script = None
    return backend


def _call(backend, **kwargs):
    return backend.client.chat.completions.create(
        model=backend.model, **{"max_tokens": 80, **GREEDY, **kwargs}
    )


def _streamed(backend, **kwargs):
    content, calls, finish = "", {}, None
    for chunk in backend.client.chat.completions.create(
        model=backend.model, stream=True, **{"max_tokens": 80, **GREEDY, **kwargs}
    ):
        for choice in chunk.choices:
            content += choice.delta.content or ""
            for call in choice.delta.tool_calls or []:
                entry = calls.setdefault(
                    call.index, {"id": call.id, "name": call.function.name, "arguments": ""}
                )
                entry["arguments"] += call.function.arguments or ""
            finish = choice.finish_reason or finish
    return content, list(calls.values()), finish


def test_required_makes_the_real_model_call_a_tool_with_valid_arguments(real):
    reply = _call(real, messages=ASK, tools=TOOLS, tool_choice="required")
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    (call,) = choice.message.tool_calls
    assert call.type == "function" and call.id.startswith("call_")
    assert call.function.name in NAMES
    arguments = json.loads(call.function.arguments)
    if call.function.name == "get_weather":
        assert isinstance(arguments["city"], str) and arguments["unit"] in ("c", "f")
    else:
        assert isinstance(arguments["a"], int | float) and isinstance(arguments["b"], int | float)
    # the tools were described to the model in the system turn, the question after it
    prompt = real.prompts[-1]
    assert prompt[0].role == "system" and '"name": "get_weather"' in prompt[0].content
    assert prompt[-1].content == ASK[0]["content"]


def test_a_named_function_is_the_one_called_and_streams_as_one_call(real):
    choice = {"type": "function", "function": {"name": "add"}}
    ask = [{"role": "user", "content": "What is 2 plus 3?"}]
    whole = _call(real, messages=ask, tools=TOOLS, tool_choice=choice).choices[0]
    (call,) = whole.message.tool_calls
    assert call.function.name == "add"
    assert set(json.loads(call.function.arguments)) == {"a", "b"}
    content, calls, finish = _streamed(real, messages=ask, tools=TOOLS, tool_choice=choice)
    assert finish == "tool_calls" and content == ""
    assert [(c["name"], json.loads(c["arguments"])) for c in calls] == [
        ("add", json.loads(call.function.arguments))
    ]  # greedy: the stream and the whole reply make the same call


def test_a_forced_call_cut_by_max_tokens_is_still_a_call_with_finish_length(real):
    """As OpenAI returns it: the call, its arguments as far as they got, finish_reason "length";
    never the call's JSON as the message's text."""
    choice = {"type": "function", "function": {"name": "get_weather"}}
    whole = _call(real, messages=ASK, tools=TOOLS, tool_choice=choice, max_tokens=9).choices[0]
    assert whole.finish_reason == "length" and whole.message.content is None
    (call,) = whole.message.tool_calls
    assert call.function.name == "get_weather"
    full = _call(real, messages=ASK, tools=TOOLS, tool_choice=choice).choices[0].message.tool_calls[0]
    assert full.function.arguments.startswith(call.function.arguments[:4])  # the start of the same call
    content, calls, finish = _streamed(real, messages=ASK, tools=TOOLS, tool_choice=choice, max_tokens=9)
    assert (content, finish) == ("", "length")
    assert [(c["name"], c["arguments"]) for c in calls] == [("get_weather", call.function.arguments)]
    cut = real.client.responses.create(
        model=real.model,
        input=ASK[0]["content"],
        tools=[{"type": "function", **WEATHER["function"]}],
        tool_choice={"type": "function", "name": "get_weather"},
        max_output_tokens=9,
        temperature=0,
    )
    assert cut.status == "incomplete" and [item.type for item in cut.output] == ["function_call"]
    assert cut.output[0].name == "get_weather" and cut.output[0].status == "incomplete"


def test_a_pydantic_schema_with_nested_models_gives_arguments_it_validates(real):
    tools = [ADD, _tool("save_address", Address.model_json_schema())]
    assert "$defs" in tools[1]["function"]["parameters"]
    choice = {"type": "function", "function": {"name": "save_address"}}
    ask = [{"role": "user", "content": "Save 12 Baker Street, London."}]
    (call,) = (
        _call(real, messages=ask, tools=tools, tool_choice=choice, max_tokens=150)
        .choices[0]
        .message.tool_calls
    )
    address = Address.model_validate_json(call.function.arguments)
    assert isinstance(address.main, Street)


def test_the_sdk_stream_helper_assembles_the_call(real):
    with real.client.beta.chat.completions.stream(
        model=real.model, messages=ASK, tools=[WEATHER], tool_choice="required", max_tokens=80, **GREEDY
    ) as stream:
        final = stream.get_final_completion()
    (call,) = final.choices[0].message.tool_calls
    assert call.function.name == "get_weather" and "city" in json.loads(call.function.arguments)


def test_none_and_no_tools_answer_in_text_and_offer_nothing(real):
    reply = _call(real, messages=ASK, tools=TOOLS, tool_choice="none", max_tokens=12)
    assert reply.choices[0].message.tool_calls is None
    assert reply.choices[0].message.content
    assert all("<tools>" not in m.content for m in real.prompts[-1])
    plain = _call(real, messages=ASK, max_tokens=12)
    assert [m.content for m in real.prompts[-1]] == [ASK[0]["content"]]
    assert plain.choices[0].message.content == reply.choices[0].message.content  # same prompt, greedy


def test_a_whole_tool_round_trip_reaches_the_model_as_text(real):
    history = [
        {"role": "system", "content": "Be brief."},
        *ASK,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                },
                {
                    "id": "call_2",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Lyon"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "18 C, sunny"},
        {"role": "tool", "tool_call_id": "call_2", "content": "12 C, rain"},
    ]
    reply = _call(real, messages=history, tools=TOOLS, max_tokens=20)
    assert reply.choices[0].finish_reason in ("stop", "length", "tool_calls")
    prompt = real.prompts[-1]
    assert [m.role for m in prompt] == ["system", "user", "assistant", "user"]
    assert prompt[0].content.startswith("Be brief.\n\n") and "<tools>" in prompt[0].content
    assert prompt[2].content.count("<tool_call>") == 2 and '"city": "Lyon"' in prompt[2].content
    assert prompt[3].content == (
        "<tool_response>\n18 C, sunny\n</tool_response>\n<tool_response>\n12 C, rain\n</tool_response>"
    )


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice"),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"tools": [ADD, ADD]}, "tools"),
        ({"tools": [{"type": "function", "function": {"name": "has space"}}]}, "tools"),
        ({"tools": TOOLS, "extra_body": {"hearth": {}}}, "hearth"),
        ({"extra_body": {"functions": [{"name": "f", "parameters": {}}]}}, "functions"),
        # schemas the grammar converter asserts on: a clear 400, never a 500
        ({"tools": [_tool("f", {"type": "banana"})], "tool_choice": "required"}, "tools"),
        ({"tools": [_tool("f", {"$ref": "https://example.com/s.json"})], "tool_choice": "required"}, "tools"),
        ({"response_format": _format({"type": "string", "pattern": "(a+)+"})}, "response_format"),
        ({"response_format": _format({"type": "banana"})}, "response_format"),
    ],
)
def test_bad_tool_requests_are_clear_400s(real, kwargs, param):
    with pytest.raises(openai.BadRequestError) as caught:
        real.client.chat.completions.create(model=real.model, messages=ASK, max_tokens=5, **kwargs)
    assert caught.value.status_code == 400
    assert param in str(caught.value.body.get("param")) or param in caught.value.message


def test_an_auto_answer_that_calls_streams_the_prose_and_returns_the_calls(backend):
    # the bundled 135M model does not call on its own: the answer is scripted, the serving is real
    call = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo", "unit": "c"}}\n</tool_call>'
    backend.script = ["Let me ", "check. <tool", "_call>", call[len("<tool_call>") :], "\n", call]
    content, calls, finish = _streamed(backend, messages=ASK, tools=TOOLS)
    assert finish == "tool_calls"
    assert content == "Let me check. "  # streamed before the call began
    assert [c["name"] for c in calls] == ["get_weather", "get_weather"]
    assert json.loads(calls[0]["arguments"]) == {"city": "Oslo", "unit": "c"}
    assert calls[0]["id"] != calls[1]["id"]
    whole = _call(backend, messages=ASK, tools=TOOLS).choices[0]
    assert (whole.finish_reason, whole.message.content) == ("tool_calls", "Let me check.")
    assert [json.loads(c.function.arguments)["city"] for c in whole.message.tool_calls] == ["Oslo", "Oslo"]
    single = _call(backend, messages=ASK, tools=TOOLS, parallel_tool_calls=False).choices[0]
    assert len(single.message.tool_calls) == 1
    backend.script = ["Sunny, ", "I think."]
    content, calls, finish = _streamed(backend, messages=ASK, tools=TOOLS)
    assert (content, calls, finish) == ("Sunny, I think.", [], "stop")


def test_split_calls_reads_the_written_forms():
    hermes = 'Sure.\n<tool_call>\n{"name": "add", "arguments": {"a": 1, "b": 2}}\n</tool_call>'
    content, calls = split_calls(hermes, NAMES)
    assert content == "Sure." and [(c.name, json.loads(c.arguments)) for c in calls] == [
        ("add", {"a": 1, "b": 2})
    ]
    # Llama 3.1 style: a bare object with "parameters"; a list of calls; arguments as a JSON string
    _, calls = split_calls(' {"name": "add", "parameters": {"a": 1, "b": 2}}', NAMES)
    assert json.loads(calls[0].arguments) == {"a": 1, "b": 2}
    _, calls = split_calls(
        '[{"name": "add", "arguments": "{\\"a\\": 1}"}, {"name": "get_weather", "arguments": {}}]', NAMES
    )
    assert [c.name for c in calls] == ["add", "get_weather"]
    # an unclosed last block still counts (the answer ended at the stop token)
    _, calls = split_calls('<tool_call>{"name": "add", "arguments": {}}', NAMES)
    assert [c.name for c in calls] == ["add"]
    for text in (
        '{"name": "rm_rf", "arguments": {}}',  # not one of the tools
        '<tool_call>{"name": "add", "arguments": {}}</tool_call><tool_call>{"name": "add", ',  # one bad block
        '{"a": 1}',  # JSON, but no call
        "The weather is fine.",
        '<tool_call>{"name": "add", "arguments": [1, 2]}</tool_call>',
    ):
        assert split_calls(text, NAMES) == (text, [])


def test_the_watch_shows_prose_at_once_and_holds_back_only_what_may_be_a_call():
    watch = CallWatch(PLAN)
    text = "Use <b>bold</b> or <tool and <tool_c, then more."
    shown = "".join(watch.feed(ch) for ch in text)
    rest, calls = watch.finish()
    assert shown + rest == text and calls == []
    assert len(rest) < len("<tool_call>")  # never more than a call's opening held back
    watch = CallWatch(PLAN)
    shown = "".join(watch.feed(ch) for ch in '{"name": "add", "arguments": {"a": 1}}')
    assert shown == ""
    assert watch.finish()[1][0].name == "add"
    watch = CallWatch(PLAN)
    shown = "".join(watch.feed(ch) for ch in "{curly} prose")
    assert (shown, watch.finish()) == ("", ("{curly} prose", []))  # held, then all of it at the end


def test_render_without_tools_keeps_plain_messages_as_they_were():
    messages = [
        ChatMessageIn(role="developer", content="Rules."),
        ChatMessageIn(role="user", content=[{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]),
        ChatMessageIn(role="assistant", content="c"),
    ]
    assert [(m.role, m.content) for m in render(messages, None)] == [
        ("system", "Rules."),
        ("user", "a\nb"),
        ("assistant", "c"),
    ]
