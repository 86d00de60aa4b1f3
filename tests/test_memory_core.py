"""Core memory blocks on real SQLite: limits, scopes, rendering, provenance, restarts."""

from __future__ import annotations

import threading

import pytest

from engine import Settings, build
from engine.errors import MemoryError_, NotFoundError
from engine.memory import Origin
from engine.memory.provenance import USER


@pytest.fixture
def services(tmp_path):
    s = build(Settings(data_dir=tmp_path / "data"), load_model=False)
    yield s
    s.close()


def words(text: str) -> int:
    """A stand-in token counter for rendering tests (pure logic)."""
    return len(text.split())


def test_a_new_database_has_persona_and_human(services):
    blocks = services.memory.core.blocks()
    assert [b.label for b in blocks] == ["persona", "human"]
    assert blocks[0].value and blocks[1].value == ""
    assert all(b.limit == 2000 for b in blocks)


def test_render_shows_each_block_with_its_fill_level(services):
    services.memory.set_block("human", "The user's name is Ana.")
    text = services.memory.core.render(None, max_tokens=500, count_tokens=words)
    assert "### human (23/2000 chars)\nThe user's name is Ana." in text
    assert "### persona (85/2000 chars)" in text


def test_an_edit_over_the_limit_is_refused_and_changes_nothing(services):
    core = services.memory.core
    core.create("todo", limit=20, value="buy milk", origin=USER)
    with pytest.raises(MemoryError_) as err:
        core.set("todo", "buy milk and bread and eggs", origin=USER)
    assert "at most 20 characters" in str(err.value) and "7 too many" in str(err.value)
    with pytest.raises(MemoryError_):
        core.append("todo", "and a very long list of other things", origin=USER)
    assert core.get("todo").value == "buy milk"
    assert [w.action for w in services.memory.log.list(target="block:todo")] == ["block_create"]


def test_append_and_replace(services):
    core = services.memory.core
    core.append("human", "Name: Ana.", origin=USER)
    core.append("human", "Has a  cat\ncalled Pickles.", origin=USER)
    assert core.get("human").value == "Name: Ana.\nHas a cat called Pickles."
    core.replace("human", "Pickles", "Mittens", origin=USER)
    assert core.get("human").value.endswith("called Mittens.")
    with pytest.raises(MemoryError_, match="does not contain"):
        core.replace("human", "Rex", "Max", origin=USER)
    with pytest.raises(MemoryError_, match="empty"):
        core.append("human", "   ", origin=USER)


def test_bad_names_and_missing_blocks_say_what_to_do(services):
    core = services.memory.core
    with pytest.raises(MemoryError_, match="a-z"):
        core.create("My Block!", origin=USER)
    with pytest.raises(MemoryError_, match="limit"):
        core.create("notes", limit=0, origin=USER)
    with pytest.raises(NotFoundError, match="persona, human"):
        core.set("nothing", "x", origin=USER)
    with pytest.raises(MemoryError_, match="built-in"):
        core.delete("human", origin=USER)
    core.create("notes", origin=USER)
    with pytest.raises(MemoryError_, match="already exists"):
        core.create("notes", origin=USER)
    core.delete("notes", origin=USER)
    assert [b.label for b in core.blocks()] == ["persona", "human"]


def test_a_conversation_block_overrides_the_global_one_there_only(services):
    core = services.memory.core
    chat = services.conversations.create(title="trip")
    other = services.conversations.create(title="work")
    core.set("human", "Global facts.", origin=USER)
    core.create("human", value="Planning a trip to Porto.", conversation_id=chat.id, origin=USER)
    core.create("trip", value="Flight on Friday.", conversation_id=chat.id, origin=USER)
    assert core.get("human", chat.id).value == "Planning a trip to Porto."
    assert core.get("human", other.id).value == "Global facts."
    assert "trip" in [b.label for b in core.blocks(chat.id)]
    assert "trip" not in [b.label for b in core.blocks(other.id)]
    assert "Flight on Friday." in core.render(chat.id, max_tokens=500, count_tokens=words)
    # a model write inside that conversation lands in the conversation's block
    model = Origin(kind="model", conversation_id=chat.id, message_id="m1")
    services.memory.apply("block_append", {"label": "human", "content": "Likes window seats."}, origin=model)
    assert core.get("human", chat.id).value.endswith("Likes window seats.")
    assert core.get("human").value == "Global facts."


def test_render_cuts_long_blocks_to_the_token_cap_but_keeps_the_stored_text(services):
    core = services.memory.core
    long_text = " ".join(f"fact{i}" for i in range(250))
    core.set("human", long_text, origin=USER)
    text = core.render(None, max_tokens=60, count_tokens=words)
    assert words(text) <= 60
    assert "fact249" in text, "the newest end of a block is kept"
    assert "shown in part" in text and "/2000 chars" in text
    assert core.get("human").value == long_text


def test_every_write_records_where_it_came_from(services):
    memory = services.memory
    chat = services.conversations.create(title="x")
    msg = services.conversations.add_message(chat.id, "user", "I'm Ana")
    memory.set_block("human", "Ana", origin=USER)
    model = Origin(kind="model", conversation_id=chat.id, message_id=msg.id)
    memory.apply("block_append", {"label": "human", "content": "Likes tea."}, origin=model)
    newest, oldest = memory.log.list(target="block:human")[:2]
    assert (oldest.origin, oldest.action, oldest.args["value"]) == ("user", "block_set", "Ana")
    assert (newest.origin, newest.conversation_id, newest.message_id) == ("model", chat.id, msg.id)
    assert newest.args == {"label": "human", "content": "Likes tea."}
    assert (
        memory.core.get("human").updated_by == f"model tool call in conversation {chat.id}, message {msg.id}"
    )


def test_concurrent_appends_never_lose_a_line(services):
    core = services.memory.core

    def add(n):
        for i in range(10):
            core.append("human", f"line {n}-{i}", origin=USER)

    threads = [threading.Thread(target=add, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(core.get("human").value.splitlines()) == 40


def test_blocks_survive_a_restart(tmp_path):
    settings = Settings(data_dir=tmp_path / "data")
    first = build(settings, load_model=False)
    first.memory.set_block("human", "Remember me.")
    first.memory.core.create("projects", limit=500, value="Hearth", origin=USER)
    first.close()
    second = build(settings, load_model=False)
    try:
        assert second.memory.core.get("human").value == "Remember me."
        assert second.memory.core.get("projects").limit == 500
        assert second.memory.log.list(target="block:projects")[0].action == "block_create"
    finally:
        second.close()
