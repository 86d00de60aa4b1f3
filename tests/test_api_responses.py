"""OpenAI's Responses API (api/responses.py) through the official `openai` client, against a real
server on the bundled model: each answer is checked against the chat-completions answer to the
same conversation (greedy, so the same engine path gives the same text)."""

from __future__ import annotations

import json

import openai
import pytest
from api_support import api_client
from pydantic import BaseModel, Field

from engine import Settings, build

GREEDY = {"temperature": 0.0, "extra_body": {"repeat_penalty": 1.0}}
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Get the current weather for a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string", "maxLength": 40}},
        "required": ["city"],
    },
}


class City(BaseModel):
    name: str = Field(max_length=24)
    population: int
    coastal: bool


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    s = build(Settings(data_dir=tmp_path_factory.mktemp("api-responses") / "data", n_ctx=2048))
    with api_client(s) as (client, model):
        yield client, model
    s.close()


def _chat(api, messages, **kwargs) -> str:
    client, model = api
    reply = client.chat.completions.create(model=model, messages=messages, **{**GREEDY, **kwargs})
    return reply.choices[0].message.content


def test_a_response_is_the_chat_answer_as_output_items(api):
    client, model = api
    r = client.responses.create(
        model=model, instructions="Be brief.", input="Name a fruit.", max_output_tokens=24, **GREEDY
    )
    expected = _chat(
        api,
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a fruit."}],
        max_tokens=24,
    )
    assert r.object == "response" and r.id.startswith("resp_") and r.model == model
    assert r.output_text == expected
    (item,) = r.output
    assert item.type == "message" and item.role == "assistant" and item.content[0].type == "output_text"
    assert r.usage.output_tokens > 0 and r.usage.total_tokens == r.usage.input_tokens + r.usage.output_tokens
    cut = client.responses.create(model=model, input="Tell me a long story.", max_output_tokens=5, **GREEDY)
    assert (cut.status, cut.incomplete_details.reason, cut.usage.output_tokens) == (
        "incomplete",
        "max_output_tokens",
        5,
    )


def test_previous_response_id_continues_the_stored_conversation(api):
    client, model = api
    first = client.responses.create(model=model, input="My name is Ada.", max_output_tokens=16, **GREEDY)
    second = client.responses.create(
        model=model, previous_response_id=first.id, input="What is my name?", max_output_tokens=16, **GREEDY
    )
    history = [
        {"role": "user", "content": "My name is Ada."},
        {"role": "assistant", "content": first.output_text},
        {"role": "user", "content": "What is my name?"},
    ]
    assert second.output_text == _chat(api, history, max_tokens=16)
    assert client.responses.retrieve(second.id).output_text == second.output_text
    unstored = client.responses.create(model=model, input="Hi", max_output_tokens=4, store=False)
    with pytest.raises(openai.NotFoundError):
        client.responses.create(
            model=model, previous_response_id=unstored.id, input="Hi", max_output_tokens=4
        )


def test_function_calls_and_their_outputs_round_trip(api):
    client, model = api
    forced = {"type": "function", "name": "get_weather"}
    call_reply = client.responses.create(
        model=model,
        input="Weather in Paris?",
        tools=[WEATHER],
        tool_choice=forced,
        max_output_tokens=40,
        **GREEDY,
    )
    (call,) = call_reply.output
    assert call.type == "function_call" and call.name == "get_weather" and call.call_id.startswith("call_")
    assert isinstance(json.loads(call.arguments)["city"], str)
    answer = client.responses.create(
        model=model,
        previous_response_id=call_reply.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "18 C, sunny"}],
        tools=[WEATHER],
        max_output_tokens=20,
        **GREEDY,
    )
    chat_tools = [{"type": "function", "function": {k: v for k, v in WEATHER.items() if k != "type"}}]
    history = [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call.call_id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call.call_id, "content": "18 C, sunny"},
    ]
    assert answer.output_text == _chat(api, history, tools=chat_tools, max_tokens=20)


def test_the_stream_is_the_semantic_event_sequence_of_the_same_answer(api):
    client, model = api
    whole = client.responses.create(model=model, input="Count to five.", max_output_tokens=20, **GREEDY)
    events = list(
        client.responses.create(
            model=model, input="Count to five.", max_output_tokens=20, stream=True, **GREEDY
        )
    )
    kinds = [e.type for e in events]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.incomplete" if whole.status == "incomplete" else "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == whole.output_text
    assert events[-1].response.output_text == whole.output_text
    # the SDK's stream helper assembles a forced call and a finished answer
    with client.responses.stream(
        model=model,
        input="Weather in Oslo?",
        tools=[WEATHER],
        tool_choice="required",
        max_output_tokens=40,
        **GREEDY,
    ) as stream:
        final = stream.get_final_response()
    assert [o.type for o in final.output] == ["function_call"] and "city" in json.loads(
        final.output[0].arguments
    )


def test_text_format_gives_what_the_sdk_parses(api):
    client, model = api
    parsed = client.responses.parse(
        model=model, input="Describe a city as JSON.", text_format=City, max_output_tokens=80, **GREEDY
    ).output_parsed
    assert isinstance(parsed, City)


@pytest.mark.parametrize(
    ("kwargs", "status"),
    [
        ({"tools": [{"type": "web_search"}]}, 400),
        ({"input": [{"type": "image_generation_call", "id": "x"}]}, 400),
        ({"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "data:,"}]}]}, 400),
        ({"input": []}, 400),
        ({"previous_response_id": "resp_missing"}, 404),
        ({"text": {"format": {"type": "json_schema", "name": "x", "schema": {"type": "banana"}}}}, 400),
    ],
)
def test_what_is_not_served_is_a_clear_error(api, kwargs, status):
    client, model = api
    with pytest.raises(openai.APIStatusError) as caught:
        client.responses.create(model=model, **{"input": "Hi", "max_output_tokens": 4, **kwargs})
    assert caught.value.status_code == status and caught.value.message


def test_input_items_become_the_chat_turns_they_mean():
    from api.responses import input_messages
    from api.tools import render

    items = [
        {"role": "user", "content": [{"type": "input_text", "text": "Weather in Paris and Oslo?"}]},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Checking."}]},
        {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": '{"city": "Paris"}'},
        {"type": "function_call", "call_id": "c2", "name": "get_weather", "arguments": '{"city": "Oslo"}'},
        {"type": "reasoning", "summary": []},
        {"type": "function_call_output", "call_id": "c1", "output": "18 C"},
        {"type": "function_call_output", "call_id": "c2", "output": [{"type": "input_text", "text": "9 C"}]},
    ]
    turns = render(input_messages(items), None)
    assert [t.role for t in turns] == ["user", "assistant", "user"]
    assert (
        turns[1].content.startswith("Checking.\n<tool_call>") and turns[1].content.count("<tool_call>") == 2
    )
    assert turns[2].content.count("<tool_response>") == 2 and "9 C" in turns[2].content
