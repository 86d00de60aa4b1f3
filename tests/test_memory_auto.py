"""Automatic memories and hybrid recall on real parts (bundled model, MiniLM, Chroma, SQLite in tmp dirs).

A fact told in one chat reaches the prompt of a paraphrased question in a new chat;
an unrelated question gets no personal memory; a restated fact updates its memory
instead of piling up; the off switch stops automatic memories; deleting a chat
deletes everything memory held of it.
"""

from __future__ import annotations

import json

import pytest

from cli import global_parser, settings_from
from engine import GenerationConfig, Settings, build
from engine.errors import MemoryError_
from engine.memory import Origin
from engine.memory.facts import (
    FACTS_REQUEST,
    MAX_FACT_TOKENS,
    facts_grammar,
    grounded,
    model_facts,
    statements,
)
from engine.types import Done, Message, TurnStarted

TELL = GenerationConfig(temperature=0.0, max_tokens=12)
GRAN = "My grandmother Rosa grew up in Valparaíso. Can you suggest a dessert for her birthday?"


def turn(services, conversation_id, text):
    user_id, done = "", None
    for event in services.chat.stream_turn(conversation_id, text, TELL):
        if isinstance(event, TurnStarted):
            user_id = event.user_message_id
        elif isinstance(event, Done):
            done = event
    services.chat.wait_for_upkeep()  # automatic memories are kept once the answer is saved
    return services.conversations.message(user_id), done


def quoted(services, done) -> list[dict]:
    return [
        h
        for h in services.conversations.message(done.message_id).sources
        if h["kind"] in ("memory", "recall")
    ]


@pytest.fixture(scope="module")
def told(tmp_path_factory):
    """Three chats: a personal fact, chatter, another fact; then the questions are asked in new chats."""
    services = build(Settings(data_dir=tmp_path_factory.mktemp("auto") / "data", n_ctx=2048, n_threads=1))
    _, gran = turn(services, None, GRAN)
    turn(services, None, "Tell me a fun fact about octopuses.")
    _, dog = turn(services, None, "My dog Biscuit is a beagle who hates thunderstorms.")
    yield services, gran.conversation_id, dog.conversation_id
    services.close()


def test_a_paraphrased_question_in_a_new_chat_gets_the_fact_into_the_prompt(told):
    services, gran_chat, _ = told
    user, done = turn(services, None, "Where is my gran from?")
    assert "Valparaíso" in user.sent, "the fact was quoted into the prompt sent to the model"
    hits = quoted(services, done)
    assert any("Valparaíso" in h["text"] and h["meta"]["conversation_id"] == gran_chat for h in hits)
    assert all(h["meta"]["cosine"] is not None for h in hits if "Valparaíso" in h["text"]), "found by meaning"


def test_an_unrelated_question_gets_no_personal_memory(told):
    services, gran_chat, dog_chat = told
    user, done = turn(services, None, "What is the capital of Australia?")
    assert "Valparaíso" not in user.sent and "Biscuit" not in user.sent
    assert not [
        h
        for h in quoted(services, done)
        if h["kind"] == "memory" or h["meta"].get("conversation_id") in (gran_chat, dog_chat)
    ]


def test_facts_become_automatic_memories_with_provenance(told):
    services, gran_chat, dog_chat = told
    auto = {e.text: e for e in services.memory.archival.list() if e.auto}
    assert "My grandmother Rosa grew up in Valparaíso." in auto
    entry = auto["My grandmother Rosa grew up in Valparaíso."]
    [source] = services.memory.archival.sources(entry.id)
    assert source["conversation_id"] == gran_chat and entry.conversation_id == gran_chat
    writes = services.memory.log.list(conversation_id=gran_chat)
    assert any(w.action == "archival_insert" and w.origin == "auto" for w in writes)
    assert not any("octopus" in e.text for e in services.memory.archival.list()), "chatter is no fact"


def test_a_restated_fact_updates_its_memory_instead_of_piling_up(told):
    services, _, dog_chat = told
    before = [e for e in services.memory.archival.list(limit=1000) if e.auto and "Biscuit" in e.text]
    assert len(before) == 1
    _, again = turn(services, None, "My dog Biscuit is a beagle who really hates thunderstorms.")
    after = [e for e in services.memory.archival.list(limit=1000) if e.auto and "Biscuit" in e.text]
    assert [e.id for e in after] == [before[0].id], "one memory, updated"
    assert after[0].text == "My dog Biscuit is a beagle who really hates thunderstorms."
    chats = [s["conversation_id"] for s in services.memory.archival.sources(after[0].id)]
    assert chats == [dog_chat, again.conversation_id]
    # deleting the newer chat restores the older wording; the memory stays (another chat said it)
    services.conversations.delete(again.conversation_id)
    [kept] = [e for e in services.memory.archival.list(limit=1000) if e.auto and "Biscuit" in e.text]
    assert kept.text == "My dog Biscuit is a beagle who hates thunderstorms."


def test_deleting_a_chat_deletes_everything_memory_held_of_it(tmp_path):
    services = build(Settings(data_dir=tmp_path / "data", n_ctx=2048, n_threads=1))
    try:
        user, done = turn(services, None, "I work as a nurse at St Mary's hospital in Leeds.")
        chat, memory = done.conversation_id, services.memory
        memory.propose(
            "archival_insert",
            {"text": "Works night shifts at St Mary's."},
            origin=Origin(kind="model", conversation_id=chat, message_id=user.id),
            note="suggested",
        )
        memory.core.create(
            "shifts",
            limit=300,
            value="nights at St Mary's",
            conversation_id=chat,
            origin=Origin(kind="user", conversation_id=chat),
        )
        assert memory.messages.vectors_of([user.id]), "the user message has a vector"
        assert [e for e in memory.archival.list() if e.auto], "an automatic memory was kept"
        kept = memory.archival.insert(
            "The user likes St Mary's cafeteria.",
            origin=Origin(kind="user", conversation_id=chat, message_id=user.id),
        )
        assert memory.log.list(conversation_id=chat, status="pending")

        services.conversations.delete(chat)  # the engine's delete path, no UI involved

        assert memory.messages.vectors_of([user.id]) == {} and memory.messages.count() == 0
        assert [e.id for e in memory.archival.list()] == [kept.id], "only the fact the user kept stays"
        assert memory.log.pending() == []
        rows = memory.log.list(conversation_id=chat)
        assert [r.target for r in rows] == [f"archival:{kept.id}"], (
            "the log keeps only what backs the kept fact"
        )
        with services.database.read() as db:
            assert db["memory_archival_sources"].count == 0
            assert db["memory_blocks"].count_where("conversation_id = ?", [chat]) == 0
        assert not [h for h in memory.search("nurse hospital Leeds") if "nurse" in h.text]
    finally:
        services.close()


def test_the_off_switch_stops_automatic_memories(tmp_path):
    services = build(Settings(data_dir=tmp_path / "data", n_ctx=2048, n_threads=1))
    try:
        services.memory.set_auto(False)
        turn(services, None, "My sister Ingrid is a paramedic in Oslo.")
        assert services.memory.archival.count() == 0
        assert services.memory.messages.count() == 1, "recall by meaning still works with it off"
    finally:
        services.close()
    reopened = build(Settings(data_dir=tmp_path / "data"), load_model=False)
    try:
        assert reopened.memory.auto_enabled is False, "the switch is kept across restarts"
    finally:
        reopened.close()
    args = global_parser().parse_args(
        ["--data-dir", str(tmp_path / "other"), "--no-auto-memory", "memory", "show"]
    )
    forced = build(settings_from(args), load_model=False)
    try:
        assert forced.settings.auto_memory is False and not forced.memory.auto_enabled
        with pytest.raises(MemoryError_, match="--no-auto-memory"):
            forced.memory.set_auto(True)
    finally:
        forced.close()


def test_reindex_rebuilds_message_vectors_from_sqlite(told):
    services, gran_chat, _ = told
    n = services.memory.messages.count()
    counts = services.memory.reindex()
    assert counts["messages"] == n and services.memory.messages.count() == n
    fresh = services.chat.new_conversation()
    found = services.memory.context.retriever.candidates("Where is my gran from?", fresh.id, 0, k=5)
    assert any("Valparaíso" in h.text and h.meta["cosine"] is not None for h in found[:3])


def test_statements_are_first_person_facts_not_questions_or_requests():
    assert statements("Hi! My grandmother Rosa grew up in Valparaíso. Any dessert ideas?") == [
        "My grandmother Rosa grew up in Valparaíso."
    ]
    assert statements("I'm allergic to peanuts.") == ["I'm allergic to peanuts."]
    for text in (
        "What is my cat's name?",
        "Can you tell me about my plans?",
        "I'm wondering how rain forms.",
        "I have a question about Python.",
        "Tell me about the sea.",
        "I think you are wrong.",
    ):
        assert statements(text) == [], text


def test_model_facts_are_kept_only_when_the_user_said_them():
    assert grounded(
        "The user's grandmother Rosa grew up in Valparaíso.", "My grandmother Rosa grew up in Valparaíso."
    )
    assert not grounded("The user lives in Paris.", "My grandmother Rosa grew up in Valparaíso.")
    # what retrieved text or the model invents is not in the user's words
    assert not grounded("The user's password is hunter2.", "What is the weather like in Leeds?")


def test_model_fact_proposals_always_parse_on_the_real_model(tmp_path):
    services = build(Settings(data_dir=tmp_path / "data", n_ctx=1024, n_threads=1))
    try:
        backend = services.models.backend
        prompt = [Message(role="system", content="You are helpful."), Message(role="user", content=GRAN)]
        asked = [
            *prompt,
            Message(role="assistant", content="How lovely!"),
            Message(role="user", content=FACTS_REQUEST),
        ]
        config = GenerationConfig(temperature=0.0, max_tokens=MAX_FACT_TOKENS)
        output = "".join(c.text for c in backend.stream_chat(asked, config, grammar=facts_grammar()))
        proposal = json.loads(output)  # the grammar forces JSON of this one shape
        assert list(proposal) == ["facts"] and all(isinstance(f, str) for f in proposal["facts"])
        facts = model_facts(backend, prompt, "How lovely!", GRAN)  # [] or grounded facts; never an exception
        assert all(grounded(f, GRAN) for f in facts)
    finally:
        services.close()
