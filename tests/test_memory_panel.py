"""The Memory tab's handlers (no browser) and that the tab builds."""

from __future__ import annotations

import gradio as gr
import pytest
from test_memory_context import make_services

from app import memory_handlers as mh
from app.memory_panel import build_memory_panel
from engine import GenerationConfig, Settings, build
from engine.memory import Origin


@pytest.fixture
def services(tmp_path):
    s = build(Settings(data_dir=tmp_path / "data"), load_model=False)
    yield s
    s.close()


def test_the_tab_builds(services):
    with gr.Blocks() as demo:
        with gr.Tab("Memory"):
            build_memory_panel(services)
    ids = {getattr(b, "elem_id", None) for b in demo.blocks.values()}
    assert {
        "mem-block-text",
        "mem-save",
        "mem-search",
        "mem-archival",
        "mem-pending",
        "mem-fed",
        "mem-auto",
        "mem-edit",
    } <= ids


def test_edit_a_block_with_a_live_counter(services):
    text, info, limit = mh.block_view(services, "human")
    assert (text, limit) == ("", 2000) and info.startswith("0/2000 chars")
    assert mh.fill_label("abc", 2000) == "3/2000 chars"
    assert "over the limit" in mh.fill_label("x" * 2001, 2000)
    assert "Saved **human** (12/2000 chars)" in mh.save_block(services, "human", "Ana, a nurse")
    message = mh.save_block(services, "human", "x" * 2001)
    assert "Memory problem" in message and "1 too many" in message
    assert mh.block_view(services, "human")[0] == "Ana, a nurse", "a refused edit changes nothing"
    assert "user edit" in mh.block_view(services, "human")[1]


def test_add_and_delete_blocks_globally_or_per_conversation(services):
    chat = services.conversations.create(title="Trip")
    assert ("Trip · " + chat.updated_at[:10], chat.id) in mh.scope_choices(services)
    assert "Created **trip**" in mh.create_block(services, "trip", 300, chat.id)
    assert "trip" in mh.block_choices(services, chat.id) and "trip" not in mh.block_choices(services)
    assert "whole number" in mh.create_block(services, "x", "lots")
    assert "built-in" in mh.delete_block(services, "persona")
    assert "Deleted" in mh.delete_block(services, "trip", chat.id)


def test_archival_and_search(services):
    assert "Kept in archival memory" in mh.add_archival(services, "Ana's cat is called Pickles.")
    [row] = mh.archival_table(services)
    assert row[1] == "Ana's cat is called Pickles." and row[3] == "user"
    assert "Pickles" in mh.search(services, "what is my pet called?")
    assert "Type something" in mh.search(services, "")
    assert "2025-01-31" in mh.search(services, "cat", start="soon")
    assert "Deleted" in mh.delete_archival(services, row[0])
    assert mh.archival_table(services) == []
    assert "Not found" in mh.delete_archival(services, row[0])


def test_edit_an_automatic_memory_and_switch_automatic_memories_off(services):
    chat = services.conversations.create(title="Dog")
    origin = Origin(kind="auto", conversation_id=chat.id, message_id="m1")
    entry = services.memory.archival.insert("My dog Rex is a beagle.", origin=origin)
    [row] = mh.archival_table(services)
    assert row[3] == "automatic · said in 1 chat"
    assert "Updated" in mh.edit_archival(services, entry.id, "My dog Rex is a old beagle.")
    [row] = mh.archival_table(services)
    assert row[1] == "My dog Rex is a old beagle." and row[3] == "automatic, edited by you", (
        "edited: the user's"
    )
    services.conversations.delete(chat.id)
    assert [r[0] for r in mh.archival_table(services)] == [entry.id], "so it stays when its chat goes"
    assert "Paste the id" in mh.edit_archival(services, "", "x")
    assert mh.auto_memory_on(services) is True
    assert "off" in mh.set_auto_memory(services, False)
    assert mh.auto_memory_on(services) is False and services.memory.auto_enabled is False
    assert "keeps what you say" in mh.set_auto_memory(services, True)


def test_approve_a_suggestion(services):
    write_id = services.memory.propose(
        "block_append",
        {"label": "human", "content": "Likes jazz."},
        origin=Origin(kind="model", conversation_id="c", message_id="m"),
        note="why",
    )
    [row] = mh.pending_table(services)
    assert row[0] == write_id and row[2] == "human: Likes jazz." and "conversation c" in row[3]
    assert "Added to 'human'" in mh.resolve_pending(services, write_id, approve=True)
    assert services.memory.core.get("human").value == "Likes jazz."
    assert mh.pending_table(services) == []
    assert "not pending" in mh.resolve_pending(services, write_id, approve=False)
    log = mh.log_table(services)
    assert [(r[1], r[4]) for r in log] == [("applied", "user"), ("approved", "model")]
    assert log[0][7] == f"approved suggestion {write_id}"


def test_which_memories_fed_an_answer(tmp_path):
    services, _ = make_services(tmp_path / "data")
    try:
        config = GenerationConfig(temperature=0.0, max_tokens=8)
        first = None
        for event in services.chat.stream_turn(None, "My cat's name is Pickles.", config):
            first = getattr(event, "conversation_id", first)
        other = services.chat.new_conversation()
        for _ in services.chat.stream_turn(other.id, "What is my cat's name?", config):
            pass
        [(label, message_id)] = mh.answer_choices(services, other.id)
        assert "What is my cat's name?" in label
        text = mh.answer_memories(services, message_id)
        assert "My cat's name is Pickles." in text and "message" in text
        assert "No summary yet" in mh.summary_text(services, other.id)
        first_answer = mh.answer_choices(services, first)[0][1]
        assert "No recall or archival memories" in mh.answer_memories(services, first_answer)
    finally:
        services.close()
