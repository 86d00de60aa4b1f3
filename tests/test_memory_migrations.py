"""The hearth.memory migrations: from an empty database and from older versions."""

from __future__ import annotations

from engine import Settings, build
from engine.memory import memory_migrations
from engine.store import Database, core_migrations

ALL = ["0001_memory_tables", "0002_default_blocks", "0003_automatic_memory", "0004_summary_branch"]


def applied(db) -> list[str]:
    return [m.name for m in memory_migrations.applied(db)]


def test_an_empty_database_gets_every_table_and_the_default_blocks(tmp_path):
    services = build(Settings(data_dir=tmp_path / "data"), load_model=False)
    try:
        db = services.database.db
        for table in (
            "memory_blocks",
            "memory_archival",
            "memory_summaries",
            "memory_writes",
            "memory_archival_fts",
            "memory_archival_sources",
            "memory_message_vectors",
            "memory_settings",
        ):
            assert db[table].exists(), table
        assert applied(db) == ALL
        assert [b.label for b in services.memory.core.blocks()] == ["persona", "human"]
    finally:
        services.close()


def test_a_database_from_before_memory_keeps_its_chats_and_they_become_recall(tmp_path):
    settings = Settings(data_dir=tmp_path / "data")
    old = Database(settings.db_path, [core_migrations])  # what an older Hearth created
    conversation = old.db["conversations"].insert(
        {
            "id": "c1",
            "title": "old chat",
            "system_prompt": "",
            "collections": "[]",
            "created_at": "2024-05-01T09:00:00",
            "updated_at": "2024-05-01T09:00:00",
        }
    )
    assert conversation
    old.db["messages"].insert(
        {
            "id": "m1",
            "conversation_id": "c1",
            "seq": 1,
            "role": "user",
            "content": "I grow tomatoes on my balcony.",
            "active": 1,
            "created_at": "2024-05-01T09:00:00",
        }
    )
    old.close()
    services = build(settings, load_model=False)
    try:
        found = services.memory.recall.search("tomatoes balcony")
        assert [r.message_id for r in found] == ["m1"]
        assert services.conversations.messages("c1")[0].content == "I grow tomatoes on my balcony."
        assert services.memory.core.get("human").value == ""
        assert services.memory.summaries.get("c1").through_seq == 0
    finally:
        services.close()


def test_a_database_with_only_the_first_memory_migration_is_upgraded_without_losing_edits(tmp_path):
    settings = Settings(data_dir=tmp_path / "data")
    old = Database(settings.db_path, [core_migrations])
    memory_migrations.apply(old.db, stop_before="0002_default_blocks")
    old.db["memory_blocks"].insert(
        {
            "id": "human",
            "label": "human",
            "conversation_id": "",
            "value": "Ana, nurse.",
            "char_limit": 500,
            "description": "",
            "created_at": "2024-01-01",
            "updated_at": "2024-01-01",
            "updated_by": "user edit",
        }
    )
    assert applied(old.db) == ["0001_memory_tables"]
    old.close()
    services = build(settings, load_model=False)
    try:
        assert applied(services.database.db) == ALL
        human = services.memory.core.get("human")
        assert (human.value, human.limit) == ("Ana, nurse.", 500), "the user's block is kept as it was"
        assert services.memory.core.get("persona").value, "the missing default block was added"
    finally:
        services.close()


def test_reopening_never_resets_memory(tmp_path):
    settings = Settings(data_dir=tmp_path / "data")
    first = build(settings, load_model=False)
    first.memory.set_block("persona", "")
    first.close()
    second = build(settings, load_model=False)
    try:
        assert second.memory.core.get("persona").value == ""
        assert applied(second.database.db) == ALL
    finally:
        second.close()
