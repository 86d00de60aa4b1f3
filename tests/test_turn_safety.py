"""Conversations stay continuable and turns stay independent (issue 8, item 3)."""

from __future__ import annotations

import threading
import time

import pytest
from conftest import GREEDY, run_turn

from engine import GenerationConfig, GenerationError, ModelError, Settings, build
from engine.prompt import build_messages
from engine.types import ContextReport, Done, Message, TextDelta, TurnStarted

# the shape of Mistral's / Llama-2's templates: roles must alternate after an optional system
# message, else raise_exception (here with ChatML markers, which the bundled model knows)
ALTERNATING_TEMPLATE = (
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    "{{ '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{% else %}{% set loop_messages = messages %}{% endif %}"
    "{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}{{ '<|im_start|>assistant\\n' }}"
)


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(data_dir=tmp_path / "data", n_ctx=2048, memory=False, chat_template=ALTERNATING_TEMPLATE)


def test_a_conversation_left_with_unanswered_user_messages_continues(services):
    conversations = services.conversations
    first, _ = run_turn(services, "Name a colour.")
    cid = first.conversation_id
    # what a kill -9 mid-answer (or a failed answer) leaves: user messages without a reply
    conversations.add_message(cid, "user", "Name a fruit.")
    conversations.add_message(cid, "user", "Name a tree.")
    done, _ = run_turn(services, "Name an animal.", conversation_id=cid)
    assert done.finish_reason in ("stop", "length") and done.text.strip()
    again, _ = run_turn(services, "One more animal?", conversation_id=cid)
    assert again.text.strip()
    roles = [(m.role, m.content) for m in conversations.messages(cid)]
    assert ("user", "Name a fruit.") in roles and ("user", "Name a tree.") in roles  # nothing lost


def test_the_template_really_rejects_a_broken_alternation(services):
    backend = services.models.backend
    with pytest.raises(GenerationError):
        backend.render([Message(role="user", content="a"), Message(role="user", content="b")])


def test_history_is_sent_as_strict_turns_starting_with_the_user():
    history = [
        Message(role="assistant", content="left over from a summary cut"),
        Message(role="user", content="q1"),
        Message(role="user", content="q2 (answered)"),
        Message(role="assistant", content="a2"),
        Message(role="assistant", content="a2 again"),
        Message(role="user", content="q3 (never answered)"),
    ]
    plan = build_messages(
        system_prompt="sys",
        user_message="q4",
        count_tokens=lambda t: len(t.split()),
        budget=1000,
        history=history,
    )
    assert [(m.role, m.content) for m in plan.messages] == [
        ("system", "sys"),
        ("user", "q2 (answered)"),
        ("assistant", "a2"),
        ("user", "q4"),
    ]
    assert plan.dropped == []  # unanswered messages are not "dropped for room" (memory would fold them)
    # a window cut by the budget never starts with an answer
    tight = build_messages(
        system_prompt="",
        user_message="q",
        count_tokens=lambda t: len(t),
        budget=40,
        history=[Message(role="user", content="u" * 30), Message(role="assistant", content="a")],
    )
    assert [m.role for m in tight.messages] == ["user"]


@pytest.fixture
def plain_settings(tmp_path) -> Settings:
    return Settings(data_dir=tmp_path / "data", n_ctx=2048, memory=False)


@pytest.fixture
def plain(plain_settings):
    services = build(plain_settings)
    yield services
    services.close()


def _until(gen, kind):
    for event in gen:
        if isinstance(event, kind):
            return event
    raise AssertionError(f"no {kind.__name__}")


def test_stop_reaches_both_turns_running_in_one_chat(plain):
    chat = plain.chat
    long = GenerationConfig(temperature=0.0, max_tokens=300)
    first, _ = run_turn(plain, "Hello")
    cid = first.conversation_id
    a = chat.stream_turn(cid, "List the numbers from 1 to 300 separated by commas.", long)
    started_a = _until(a, TurnStarted)
    _until(a, TextDelta)  # turn A is generating (and holds the model)

    b_events: list = []
    b = threading.Thread(target=lambda: b_events.extend(chat.stream_turn(cid, "Count to 300.", long)))
    b.start()
    deadline = time.monotonic() + 60
    while len(chat._cancels) < 2 and time.monotonic() < deadline:  # B waits for the model
        time.sleep(0.05)
    assert chat.stop(cid)
    done_a = _until(a, Done)
    b.join(timeout=300)
    done_b = next(e for e in b_events if isinstance(e, Done))
    assert done_a.finish_reason == "cancelled" and done_b.finish_reason == "cancelled"
    assert (
        started_a.turn_id
        and started_a.turn_id != next(e for e in b_events if isinstance(e, TurnStarted)).turn_id
    )
    assert not chat._cancels


def test_stop_with_a_turn_id_stops_only_that_turn(plain):
    chat = plain.chat
    a = chat.stream_turn(
        None,
        "List the numbers from 1 to 300 separated by commas.",
        GenerationConfig(temperature=0.0, max_tokens=200),
    )
    started = _until(a, TurnStarted)
    _until(a, TextDelta)
    assert not chat.stop(started.conversation_id, turn_id="another-turn")
    assert chat.stop(started.conversation_id, turn_id=started.turn_id)
    assert _until(a, Done).finish_reason == "cancelled"


def test_loading_a_model_mid_turn_lets_the_turn_finish_on_its_model(plain):
    old = plain.models.backend
    turn = plain.chat.stream_turn(None, "Say hello.", GREEDY)
    _until(turn, TurnStarted)  # the turn holds its model; tokenizing comes next
    plain.models.load()  # a swap from the Model tab, meanwhile
    assert plain.models.backend is not old
    _until(turn, ContextReport)
    done = _until(turn, Done)
    assert done.text.strip()
    list(turn)
    deadline = time.monotonic() + 30
    while old._loaded is not None and time.monotonic() < deadline:  # closed once its turn ended
        time.sleep(0.05)
    assert old._loaded is None
    with pytest.raises(ModelError):
        old.count_tokens("a closed model says so, with a typed error")
    after, _ = run_turn(plain, "Say hello again.")
    assert after.text.strip()
