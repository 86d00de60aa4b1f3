"""Archival memory: rows in real SQLite, vectors in a real Chroma, the real MiniLM embedder."""

from __future__ import annotations

import dataclasses

import pytest

from engine import GenerationConfig, Settings, build
from engine.errors import MemoryError_, NotFoundError
from engine.memory.provenance import CLI, USER, Origin

FACTS = [
    "Ana's cat is called Pickles and is ginger.",
    "The user's favourite food is mushroom risotto.",
    "The user works as a nurse at the hospital in Porto.",
    "The wifi password at the cabin is on the fridge.",
]


@pytest.fixture(scope="module")
def services(tmp_path_factory):
    s = build(Settings(data_dir=tmp_path_factory.mktemp("archival")), load_model=False)
    for fact in FACTS:
        s.memory.archival.insert(fact, origin=USER)
    yield s
    s.close()


def test_search_by_meaning(services):
    found = services.memory.archival.search("what pet does Ana have?", k=2)
    assert found[0].text == FACTS[0]
    assert found[0].score > found[1].score
    assert services.memory.archival.search("where is my job?", k=1)[0].text == FACTS[2]
    assert services.memory.archival.search("what do I like to eat?", k=1)[0].text == FACTS[1]


def test_entries_are_indexed_and_record_their_origin(services):
    entry = services.memory.archival.insert("The user's sister is called Rita.", origin=CLI)
    assert entry.indexed and entry.origin == "cli"
    write = services.memory.log.list(target=f"archival:{entry.id}")[0]
    assert (write.action, write.origin, write.args["text"]) == ("archival_insert", "cli", entry.text)
    model = Origin(kind="model", conversation_id="c1", message_id="m1")
    result = services.memory.apply("archival_insert", {"text": "Rita lives in Faro."}, origin=model)
    saved = services.memory.archival.search("Where does Rita live?", k=1)[0]
    assert saved.text == "Rita lives in Faro." and saved.id[:8] in result
    assert (saved.origin, saved.conversation_id, saved.message_id) == ("model", "c1", "m1")


def test_delete_removes_the_row_and_its_vector(services):
    entry = services.memory.archival.insert("The spare key is under the blue pot.", origin=USER)
    assert services.memory.archival.search("where is the spare key?", k=1)[0].id == entry.id
    services.memory.archival.delete(entry.id, origin=USER)
    assert entry.id not in [e.id for e in services.memory.archival.search("where is the spare key?", k=10)]
    with pytest.raises(NotFoundError):
        services.memory.archival.get(entry.id)
    assert services.memory.log.list(target=f"archival:{entry.id}")[0].action == "archival_delete"


def test_a_vector_without_its_row_is_skipped_and_found_rows_come_whole(services):
    """Searches read ids and scores from Chroma and the rows from SQLite in one query: a
    vector whose row was deleted (Chroma unreachable at the time) is never a hit."""
    archival = services.memory.archival
    entry = archival.insert("The boat is moored at pier seven.", origin=CLI)
    question = "Where is the boat moored?"
    assert archival.search(question, k=1)[0].id == entry.id
    with services.database.tx() as db:
        db.execute("delete from memory_archival where id = ?", [entry.id])
    vector = services.embedder.embed_one(question)
    for found in (archival.search(question, k=10), archival.nearest(vector, k=10)):
        assert entry.id not in [e.id for e in found]
        assert [e.score for e in found] == sorted((e.score for e in found), reverse=True)
        assert found and all(dataclasses.replace(e, score=0.0) == archival.get(e.id) for e in found)
    # the bare query (ids and scores) ranks as the full one does
    bare, full = archival._col().query(vector, 3, metadata=False), archival._col().query(vector, 3)
    assert [(m.id, m.score) for m in bare] == [(m.id, m.score) for m in full]
    assert all(m.metadata == {} for m in bare) and all("created_at" in m.metadata for m in full)


def test_bad_entries_are_refused(services):
    with pytest.raises(MemoryError_, match="empty"):
        services.memory.archival.insert("   ", origin=USER)
    with pytest.raises(MemoryError_, match="at most 4000"):
        services.memory.archival.insert("x" * 4001, origin=USER)


def test_a_lost_index_is_rebuilt_from_sqlite(services):
    archival = services.memory.archival
    services.vectors.delete_collection(archival._collection_name())
    archival.close()
    assert archival.search("what pet does Ana have?", k=1)[0].text == FACTS[0]
    # the first search by meaning in the reopened (empty) collection indexes every row again
    [nearest] = archival.nearest(services.embedder.embed_one("what pet does Ana have?"), k=1)
    assert nearest.text == FACTS[0] and archival._col().count() == archival.count()
    assert archival.rebuild_index() == archival.count()


def test_without_a_usable_embedder_facts_are_kept_and_found_by_keywords(tmp_path):
    broken = build(
        Settings(data_dir=tmp_path / "data", embed_model=str(tmp_path / "no-such-model")), load_model=False
    )
    try:
        entry = broken.memory.archival.insert("Ana's cat is called Pickles.", origin=USER)
        assert not entry.indexed, "saved in SQLite even though the vector could not be written"
        found = broken.memory.archival.search("Pickles the cat", k=3)
        assert [e.id for e in found] == [entry.id]
    finally:
        broken.close()


def test_an_empty_archive_never_loads_the_embedder(tmp_path):
    empty = build(Settings(data_dir=tmp_path / "data"), load_model=False)
    try:
        assert empty.memory.archival.search("anything") == []
        assert empty.embedder._model is None
    finally:
        empty.close()


def test_a_question_is_embedded_ahead_of_the_search_that_needs_it(services):
    """``prefetch`` (started by the chat before it saves the message) leaves the question's
    vector in the embedder's cache, where the turn's search finds it."""
    question = "Which hospital does the user work at, again?"
    assert services.embedder.cached_query(question) is None
    services.memory.context.retriever.prefetch(question)
    cached = services.embedder.cached_query(question)
    assert cached is not None
    assert services.memory.archival.search(question, k=1)[0].text == FACTS[2]
    assert services.memory.queries.get(question) == cached


def test_a_chat_turn_starts_embedding_its_question_before_saving_it(tmp_path, monkeypatch):
    """The question's vector is made while the message is saved: the prefetch has started by
    the time the chat writes the message (a prefetch started later would time out here)."""
    import threading

    s = build(Settings(data_dir=tmp_path / "data", n_ctx=1024))
    try:
        s.memory.archival.insert(FACTS[0], origin=USER)
        started = threading.Event()
        asked: list[str] = []
        real = s.memory.context.retriever.prefetch

        def prefetch(query: str) -> None:
            asked.append(query)
            started.set()
            real(query)

        monkeypatch.setattr(s.memory.context.retriever, "prefetch", prefetch)
        seen_at_save: list[bool] = []
        save = s.conversations.add_message

        def add_message(conversation_id, role, content, **kwargs):
            if role == "user":
                seen_at_save.append(started.wait(10))
            return save(conversation_id, role, content, **kwargs)

        monkeypatch.setattr(s.conversations, "add_message", add_message)
        chat = s.chat.new_conversation()
        list(s.chat.stream_turn(chat.id, "What is my cat called?", GenerationConfig(max_tokens=2)))
        assert asked == ["What is my cat called?"] and seen_at_save == [True]
        assert s.embedder.cached_query("What is my cat called?") is not None
    finally:
        s.close()
