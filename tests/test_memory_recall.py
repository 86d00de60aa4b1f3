"""Recall memory: every message of every conversation, by keywords and by date (real SQLite FTS5)."""

from __future__ import annotations

import pytest

from engine import Settings, build
from engine.errors import MemoryError_
from engine.memory.recall import keywords


@pytest.fixture
def services(tmp_path):
    s = build(Settings(data_dir=tmp_path / "data"), load_model=False)
    yield s
    s.close()


def dated(services, conversation_id, role, text, day):
    message = services.conversations.add_message(conversation_id, role, text)
    with services.database.tx() as db:
        db["messages"].update(message.id, {"created_at": f"{day}T10:00:00.000+00:00"})
    return message


def test_keywords_leave_out_common_words():
    assert keywords("What is my cat's name?") == ["cats", "name"]
    assert keywords("what did I tell you") == []


def test_search_finds_messages_across_conversations(services):
    pets = services.conversations.create(title="pets")
    trips = services.conversations.create(title="trips")
    a = services.conversations.add_message(pets.id, "user", "My cat's name is Pickles.")
    services.conversations.add_message(pets.id, "assistant", "What a lovely name.")
    b = services.conversations.add_message(
        trips.id, "user", "Pickles will stay with a neighbour while we travel."
    )
    found = services.memory.recall.search("What is my cat called, Pickles?")
    assert {r.message_id for r in found} >= {a.id, b.id}
    assert found[0].conversation_title in ("pets", "trips")
    only_pets = services.memory.recall.search("Pickles", conversation_id=pets.id)
    assert [r.message_id for r in only_pets] == [a.id]


def test_search_by_date(services):
    chat = services.conversations.create(title="diary")
    jan = dated(services, chat.id, "user", "Started learning the piano.", "2025-01-15")
    feb = dated(services, chat.id, "user", "Played the piano for my sister.", "2025-02-03")
    dated(services, chat.id, "user", "Bought a bicycle.", "2025-03-01")
    recall = services.memory.recall
    assert [r.message_id for r in recall.search("piano", start="2025-02-01")] == [feb.id]
    assert [r.message_id for r in recall.search("piano", end="2025-01-31")] == [jan.id]
    in_feb = recall.by_date("2025-02-01", "2025-02-28")
    assert [r.message_id for r in in_feb] == [feb.id]
    assert [r.message_id for r in recall.by_date("2025-02-03", "2025-02-03")] == [feb.id], (
        "end day is inclusive"
    )
    with pytest.raises(MemoryError_, match="2025-01-31"):
        recall.search("piano", start="last tuesday")
    with pytest.raises(MemoryError_, match="after the end date"):
        recall.search("piano", start="2025-03-01", end="2025-01-01")


def test_replaced_messages_stay_searchable(services):
    chat = services.conversations.create(title="x")
    old = services.conversations.add_message(chat.id, "user", "My favourite colour is teal.")
    services.conversations.deactivate([old.id])
    assert [r.message_id for r in services.memory.recall.search("teal colour")] == [old.id]
    assert services.memory.recall.search("teal colour", include_inactive=False) == []


def test_window_messages_can_be_left_out(services):
    chat = services.conversations.create(title="x")
    early = services.conversations.add_message(chat.id, "user", "The code word is zebra.")
    services.conversations.add_message(chat.id, "user", "Zebra again, recently.")
    found = services.memory.recall.search("zebra", exclude_after=(chat.id, early.seq))
    assert [r.message_id for r in found] == [early.id]


def test_an_empty_database_finds_nothing_and_does_not_fail(services):
    assert services.memory.recall.search("anything at all") == []
    assert services.memory.recall.search("") == []
    assert services.memory.search("anything") == []
    assert services.memory.recall.count() == 0
