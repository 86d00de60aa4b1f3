"""Conversations end to end through ChatService and the page handlers, on the real model."""

from __future__ import annotations

import threading

import pytest
from conftest import GREEDY, run_turn

from app import handlers as h
from app import page_updates
from app.controls import control_values
from engine import ConfigError, GenerationConfig, Settings, build
from engine.types import Done, TextDelta, TurnStarted


@pytest.fixture
def settings(tmp_path) -> Settings:
    """Memory off: these tests compare answers, and recall hits from other chats would change prompts."""
    return Settings(data_dir=tmp_path / "data", n_ctx=2048, memory=False)


def test_user_message_is_saved_before_generation(services):
    events = services.chat.stream_turn(None, "Hello there", GREEDY)
    started = next(events)
    saved = services.conversations.messages(started.conversation_id)
    assert [(m.role, m.content) for m in saved] == [("user", "Hello there")]
    events.close()  # the client went away before any token: the user's words stay
    assert services.conversations.messages(started.conversation_id)[0].content == "Hello there"


#: KV reuse counts whole n_batch chunks (so answers match a cold cache): small ones show it on short prompts
SMALL_BATCH = 16


def test_multi_turn_reuses_the_kv_prefix(services):
    services.models.load(n_batch=SMALL_BATCH)
    first, _ = run_turn(services, "My name is Ada. Say hi.")
    second, _ = run_turn(services, "What is my name?", conversation_id=first.conversation_id)
    assert second.usage.prompt_tokens > first.usage.prompt_tokens
    # whole chunks are reused: the previous prompt's, and (settled after it) its answer's
    cached = second.usage.cached_tokens
    aligned = services.models.backend._reuse.rule.any_batch or cached % SMALL_BATCH == 0
    assert aligned and cached > first.usage.prompt_tokens // SMALL_BATCH * SMALL_BATCH
    roles = [m.role for m in services.conversations.messages(first.conversation_id)]
    assert roles == ["user", "assistant", "user", "assistant"]


def test_conversation_survives_an_engine_restart(settings):
    services = build(settings)
    first, _ = run_turn(services, "Remember the word pineapple.")
    services.close()

    again = build(settings)
    try:
        assert [c.id for c in again.conversations.list()] == [first.conversation_id]
        second, _ = run_turn(again, "Which word?", conversation_id=first.conversation_id)
        messages = again.conversations.messages(first.conversation_id)
        assert [m.content for m in messages][:2] == ["Remember the word pineapple.", first.text]
        assert second.usage.prompt_tokens > first.usage.prompt_tokens  # history went into the prompt
    finally:
        again.close()


def test_stop_mid_stream_keeps_the_partial_answer(services):
    streamed, done, conversation_id = [], None, None
    config = GREEDY.replace(max_tokens=200)
    for event in services.chat.stream_turn(None, "Write a long story about a dragon and a knight.", config):
        if isinstance(event, TurnStarted):
            conversation_id = event.conversation_id
        elif isinstance(event, TextDelta):
            streamed.append(event.text)
            if len(streamed) == 5:
                assert services.chat.stop(conversation_id)
        elif isinstance(event, Done):
            done = event
    assert done.finish_reason == "cancelled"
    assert 5 <= done.usage.completion_tokens < 200
    saved = services.conversations.message(done.message_id)
    assert saved.content == "".join(streamed) and saved.content
    assert saved.finish_reason == "cancelled"


def test_closing_the_stream_saves_the_partial_answer(services):
    events = services.chat.stream_turn(
        None, "Tell me a long story about a dragon.", GREEDY.replace(max_tokens=200)
    )
    conversation_id = next(events).conversation_id
    got = ""
    for event in events:
        if isinstance(event, TextDelta):
            got += event.text
            if len(got) > 20:
                break
    events.close()
    saved = services.conversations.messages(conversation_id)
    assert saved[-1].role == "assistant" and saved[-1].finish_reason == "cancelled"
    assert saved[-1].content == got


def test_regenerate_replaces_the_answer_but_keeps_the_old_one(services):
    first, _ = run_turn(services, "Name a colour.")
    config = GenerationConfig(temperature=1.2, seed=99, max_tokens=20)
    again, _ = run_turn(services, "", config, conversation_id=first.conversation_id, mode="regenerate")
    active = services.conversations.messages(first.conversation_id)
    assert [m.role for m in active] == ["user", "assistant"]
    assert active[1].id == again.message_id
    everything = services.conversations.messages(first.conversation_id, include_inactive=True)
    assert first.message_id in [m.id for m in everything if not m.active]


def test_a_regenerate_left_or_stopped_before_its_first_word_shows_the_old_answer_again(services):
    """Regenerate hides the answer it replaces before it starts. Left (New chat, another chat)
    or stopped before any text, it must show that answer again, and the next message must
    follow it: before, the question stood bare and the next one became its sibling's branch."""
    first, _ = run_turn(services, "Name a colour.")
    cid = first.conversation_id
    events = services.chat.stream_turn(cid, "", GREEDY, mode="regenerate")
    assert isinstance(next(events), TurnStarted)
    assert services.conversations.messages(cid)[-1].role == "user"  # hidden while it runs
    events.close()  # the reader left before the first word
    assert [m.id for m in services.conversations.messages(cid)][-1] == first.message_id
    stopped = []
    for event in services.chat.stream_turn(cid, "", GREEDY, mode="regenerate"):
        if isinstance(event, TurnStarted):
            services.chat.stop(cid)  # Stop before the first word
        stopped.append(event)
    assert not any(isinstance(e, TextDelta) for e in stopped) and stopped[-1].finish_reason == "cancelled"
    path = services.conversations.messages(cid)
    assert [m.id for m in path][-1] == first.message_id and len(path) == 2  # no empty answer kept
    gone, _ = run_turn(services, "Name a fruit.")
    events = services.chat.stream_turn(gone.conversation_id, "", GREEDY, mode="regenerate")
    next(events)
    services.conversations.delete(gone.conversation_id)  # Delete, mid-regenerate
    events.close()  # nothing to show again, and no error
    nxt, _ = run_turn(services, "And another?", conversation_id=cid)
    question = services.conversations.messages(cid)[-2]
    assert (
        question.parent_id == first.message_id
        and nxt.message_id == services.conversations.messages(cid)[-1].id
    )


def test_edit_last_message_and_resend(services):
    first, _ = run_turn(services, "What is 2 + 2?")
    run_turn(services, "What is 3 + 3?", conversation_id=first.conversation_id, mode="edit")
    active = services.conversations.messages(first.conversation_id)
    assert [m.content for m in active if m.role == "user"] == ["What is 3 + 3?"]
    everything = services.conversations.messages(first.conversation_id, include_inactive=True)
    assert "What is 2 + 2?" in [m.content for m in everything]  # nothing typed is lost


def _final(generator):
    last = None
    for last in generator:
        pass
    return last


def test_concurrent_chats_through_the_handlers_do_not_interleave(services):
    values = control_values(GREEDY.replace(max_tokens=30))
    prompts = ["Describe a cat.", "Explain what rain is."]
    expected = [
        _final(h.respond(services, None, p, [], False, "", *values))[0][1]["content"] for p in prompts
    ]
    results: dict[int, str] = {}

    def chat(i: int) -> None:
        history = _final(h.respond(services, None, prompts[i], [], False, "", *values))[0]
        results[i] = history[1]["content"]

    threads = [threading.Thread(target=chat, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert results == {0: expected[0], 1: expected[1]}


def test_handler_shows_invalid_settings_and_keeps_the_message(services):
    values = control_values(GREEDY)
    values[0] = 7.5  # temperature out of range
    history, conversation_id, box, _ = _final(h.respond(services, None, "Hi", [], False, "", *values))
    assert "Temperature" in history[-1]["content"] and "between 0.0 and 2.0" in history[-1]["content"]
    assert box == "Hi"  # the typed message goes back into the box


def test_handler_status_line_and_history_reload(services):
    values = control_values(GREEDY.replace(max_tokens=12))
    history, conversation_id, _, _ = _final(
        h.respond(services, None, "Say hello.", [], False, "Be brief.", *values)
    )
    status = [m for m in history if m.get("metadata", {}).get("title", "").startswith("📊")]
    assert (
        status
        and "tok/s" in status[0]["metadata"]["title"]
        and "/ 2,048 tokens" in status[0]["metadata"]["title"]
    )
    assert services.conversations.get(conversation_id).system_prompt == "Be brief."
    reloaded, _, system = h.open_conversation(services, conversation_id)
    assert reloaded[0] == {"role": "user", "content": "Say hello."}
    assert reloaded[1]["content"] == history[1]["content"]
    assert system == "Be brief."


def test_conversation_list_search_rename_delete(services):
    a, _ = run_turn(services, "Tell me about volcanoes.")
    b, _ = run_turn(services, "Tell me about glaciers.")
    assert {c[1] for c in h.conversation_choices(services)} == {a.conversation_id, b.conversation_id}
    assert [c[1] for c in h.conversation_choices(services, "glaciers")] == [b.conversation_id]
    h.rename_conversation(services, a.conversation_id, "Fire mountains")
    assert [c[1] for c in h.conversation_choices(services, "Fire")] == [a.conversation_id]
    h.delete_conversation(services, a.conversation_id)
    assert [c[1] for c in h.conversation_choices(services)] == [b.conversation_id]
    assert services.conversations.messages(a.conversation_id) == []


def test_presets_builtin_and_saved(services, settings):
    assert {"Precise", "Balanced", "Creative"} <= set(h.preset_names(services))
    values = control_values(GenerationConfig(temperature=0.3, top_k=7))
    h.save_preset(services, "Mine", *values)
    assert h.apply_preset(services, "Mine")[:2] == [0.3, 7]
    with pytest.raises(ConfigError):
        h.save_preset(services, "Precise", *values)
    services.close()
    again = build(settings, load_model=False)
    try:
        assert again.presets.get("Mine").top_k == 7
    finally:
        again.close()


def test_a_new_chat_takes_the_collections_chosen_on_the_page(services):
    values = control_values(GREEDY.replace(max_tokens=4))
    services.documents.create_collection("research")
    history, cid, _, _ = _final(
        h.respond_with_attachment(services, None, "Hi", [], False, "", None, "", ["research"], *values)
    )
    assert h.conversation_collections(services, cid) == ["research"]
    assert [m.role for m in services.conversations.messages(cid)] == ["user", "assistant"]


def test_turns_with_retrieved_references_still_reuse_the_kv_prefix(services, tmp_path):
    doc = tmp_path / "pump.md"
    doc.write_text("# Pump ZX-4471\n\nThe ZX-4471 pump must be primed with 2 litres of water before use.\n")
    assert [r.status for r in services.documents.ingest_paths([doc])] == ["added"]
    services.models.load(n_batch=SMALL_BATCH)
    first, _ = run_turn(services, "How do I prime the ZX-4471 pump?")
    sent = services.conversations.messages(first.conversation_id)[0]
    assert "ZX-4471 pump must be primed" in sent.sent and sent.content == "How do I prime the ZX-4471 pump?"
    second, _ = run_turn(
        services, "And the ZX-4471 pump water amount?", conversation_id=first.conversation_id
    )
    # the first question is resent exactly as before (with its references), so its prompt's
    # chunks are reused, and the settled answer's after them
    cached = second.usage.cached_tokens
    aligned = services.models.backend._reuse.rule.any_batch or cached % SMALL_BATCH == 0
    assert aligned and cached > first.usage.prompt_tokens // SMALL_BATCH * SMALL_BATCH


def test_deleting_a_chat_removes_its_own_memory_but_keeps_global_memory(services):
    first, _ = run_turn(services, "Hello")
    cid = first.conversation_id
    services.memory.set_block("human", "Only for this chat", conversation_id=cid)
    services.memory.set_block("human", "Everywhere")
    with services.database.tx() as db:
        db["memory_summaries"].insert(
            {"conversation_id": cid, "text": "s", "through_seq": 1, "folded": 1, "updated_at": "2026-01-01"}
        )
    h.delete_conversation(services, cid)
    with services.database.read() as db:
        assert db["memory_summaries"].count_where("conversation_id = ?", [cid]) == 0
        assert db["memory_blocks"].count_where("conversation_id = ?", [cid]) == 0
        assert [r["value"] for r in db["memory_blocks"].rows_where("label = 'human'")] == ["Everywhere"]


def test_regenerate_handler_shows_the_new_answer_with_its_status(services):
    values = control_values(GREEDY.replace(max_tokens=6))
    _, cid, _, _ = _final(h.respond(services, None, "Name a bird.", [], False, "", *values))
    history, same, _, _ = _final(h.regenerate(services, cid, *values))
    assert same == cid and history[0] == {"role": "user", "content": "Name a bird."}
    assert [m["role"] for m in history if "metadata" not in m] == ["user", "assistant"]
    assert len(services.conversations.messages(cid, include_inactive=True)) == 3


def test_the_page_is_updated_a_few_times_a_second_not_per_token(services, monkeypatch):
    """Each update makes the browser render the answer again, on the cores that decode it: the
    handler shows the first text at once, then at most every PAGE_UPDATE_S, then the end."""
    values = control_values(GREEDY.replace(max_tokens=40))
    monkeypatch.setattr(page_updates, "PAGE_UPDATE_S", 3600.0)  # nothing between the first text and the end
    few = list(h.respond(services, None, "Describe a cat.", [], False, "", *values))
    assert len(few) == 3  # the "…" placeholder, the first text, the whole answer with its status
    assert len(few[-1][0][1]["content"]) > 20
    monkeypatch.setattr(page_updates, "PAGE_UPDATE_S", 0.0)  # every token, as before
    many = list(h.respond(services, None, "Describe a cat.", [], False, "", *values))
    assert len(many) > len(few) + 10


def test_only_a_turns_first_update_touches_the_message_box(services):
    """The first update clears the box (the message was sent); the later ones, the last of which
    Gradio sends again when the turn completes, leave it alone: text typed meanwhile stays."""
    import gradio as gr

    values = control_values(GREEDY.replace(max_tokens=24))
    updates = list(h.respond(services, None, "Describe a cat.", [], False, "", *values))
    assert len(updates) >= 3
    assert updates[0][2:] == ("", False)
    skip = gr.skip()
    for later in updates[1:]:
        assert later[2] == skip and later[3] == skip
