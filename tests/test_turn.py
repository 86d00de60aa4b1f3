"""One turn, one type (issue 12) and retrieval off the critical path (issue 11), on real parts.

A turn reads its conversation once; memory, documents and images contribute through one
protocol (engine/turn.py) that imports nothing from engine.chat; a provider that fails is
named in the answer's status line while the chat still answers; memory's upkeep runs once
the answer is saved, whether or not the caller iterates past Done; one question is embedded
once, as a question, for memory and documents together.
"""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import GREEDY, run_turn
from serving import free_port

from app.handlers import status_title
from engine import Settings, build
from engine.memory.provenance import USER
from engine.rag.relevance import relevant
from engine.types import Done, Hit

ROOT = Path(__file__).resolve().parent.parent
LIGHTHOUSE = "The lighthouse of Vardø is kept by Ingrid Solberg, who repairs its lamp every spring."


def test_a_turn_reads_its_conversation_once(tmp_path, monkeypatch):
    services = build(Settings(data_dir=tmp_path / "data", n_ctx=2048, n_threads=1))
    try:
        done, _ = run_turn(services, "Hello! Tell me about lighthouses.")
        services.chat.wait_for_upkeep()
        reads: list[str] = []
        original = services.conversations.messages

        def counting(conversation_id: str, **kwargs):
            reads.append(conversation_id)
            return original(conversation_id, **kwargs)

        monkeypatch.setattr(services.conversations, "messages", counting)
        run_turn(services, "Which one is the tallest?", conversation_id=done.conversation_id)
        services.chat.wait_for_upkeep()  # memory's upkeep (index, remember, summarize) included
        assert reads == [done.conversation_id]
    finally:
        services.close()


def test_memory_upkeep_runs_when_the_caller_stops_at_done(tmp_path):
    services = build(Settings(data_dir=tmp_path / "data", n_ctx=2048, n_threads=1))
    try:
        events = services.chat.stream_turn(None, "Hello there, how are you today?", GREEDY)
        for event in events:
            if isinstance(event, Done):
                break
        events.close()  # never iterated past Done
        services.chat.wait_for_upkeep()
        assert services.memory.messages.count() == 1, "the user message was indexed by meaning"
    finally:
        services.close()


def test_failing_stores_are_named_in_the_status_line_and_the_chat_answers(tmp_path):
    data_dir = tmp_path / "data"
    notes = tmp_path / "notes.txt"
    notes.write_text(LIGHTHOUSE, encoding="utf-8")
    local = build(Settings(data_dir=data_dir), load_model=False)
    try:
        assert local.documents.ingest_paths([notes])[0].status == "added"
        local.memory.archival.insert("The user's sister Rita keeps bees near Vardø.", origin=USER)
    finally:
        local.close()
    # the same documents and memories, their vectors now on a Chroma server that is not there
    gone = f"http://127.0.0.1:{free_port()}"
    services = build(Settings(data_dir=data_dir, n_ctx=2048, n_threads=1, chroma_url=gone))
    try:
        done, text = run_turn(services, "Who keeps the lighthouse of Vardø?")
        assert text.strip() and done.message_id, "the chat still answered, and saved the answer"
        memory, documents = done.notes
        assert memory.startswith("memory unavailable: archival memory: ") and "Chroma" in memory
        assert documents.startswith("documents unavailable: ") and "Chroma" in documents
        title = status_title(ttft_s=0.1, tokens_per_s=None, used=None, n_ctx=None, notes=done.notes)
        assert "documents unavailable" in title and "memory unavailable" in title
    finally:
        services.close()


def test_one_question_is_embedded_once_as_a_question_for_memory_and_documents(tmp_path, monkeypatch):
    settings = Settings(
        data_dir=tmp_path / "data",
        n_ctx=2048,
        n_threads=1,
        embed_query_prefix="query: ",
        embed_passage_prefix="passage: ",
    )
    notes = tmp_path / "notes.txt"
    notes.write_text(LIGHTHOUSE, encoding="utf-8")
    services = build(settings)
    try:
        services.documents.ingest_paths([notes])
        services.memory.archival.insert("The user's sister Rita visits the lighthouse in May.", origin=USER)
        encoded: list[str] = []
        original = services.embedder._encode

        def recording(texts, batch_size):
            encoded.extend(texts)
            return original(texts, batch_size)

        monkeypatch.setattr(services.embedder, "_encode", recording)
        question = "Who keeps the lighthouse of Vardø?"
        done, _ = run_turn(services, question)
        services.chat.wait_for_upkeep()
        assert encoded.count(f"query: {question}") == 1, encoded
        assert question not in encoded, "a question is never embedded without its query prefix"
        assert f"passage: {question}" in encoded, "indexed for recall as a passage, after the answer"
        assert any(h["kind"] == "chunk" for h in services.conversations.message(done.message_id).sources)
    finally:
        services.close()


def test_a_strong_keyword_hit_survives_a_low_dense_score():
    query = "近端策略优化是哪一年提出的？"
    about = Hit(
        kind="chunk",
        id="a",
        text="近端策略优化（PPO）由 OpenAI 在 2017 年提出。",
        score=1.0,
        meta={"dense_score": 0.08, "bm25_score": 4.2},
    )
    stray = Hit(
        kind="chunk",
        id="b",
        text="优化器的学习率一般取 3e-4。",
        score=0.3,
        meta={"dense_score": 0.08, "bm25_score": 0.9},
    )
    assert relevant(about, query, 0.25)
    assert not relevant(stray, query, 0.25), "one shared word pair is not evidence"
    chance = Hit(
        kind="chunk", id="c", text="Tell the crew to check the tide.", score=1.0, meta={"bm25_score": 2.0}
    )
    assert not relevant(chance, "Tell me a joke about penguins.", 0.25), "one shared word is chance"


def test_the_turn_protocol_and_memory_have_no_import_cycle():
    def imports(path: Path) -> set[str]:
        found = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                found.add("." * node.level + node.module)
        return found

    assert ".chat" not in imports(ROOT / "engine" / "turn.py")
    memory = {p.stem: imports(p) for p in (ROOT / "engine" / "memory").glob("*.py")}
    assert not any("..chat" in deps for deps in memory.values()), "memory never imports engine.chat"
    graph = {
        m: {d[1:] for d in deps if d.startswith(".") and not d.startswith("..")} for m, deps in memory.items()
    }

    def reaches(start: str, node: str, seen: set[str]) -> bool:
        for dep in graph.get(node, ()):
            if dep == start or (dep not in seen and reaches(start, dep, seen | {dep})):
                return True
        return False

    assert [m for m in graph if m != "__init__" and reaches(m, m, {m})] == []


def test_retrieval_runs_on_kept_threads_not_new_ones_each_turn(tmp_path, monkeypatch):
    """Memory's prefetch and every provider's contribution run on the retrieval threads, which
    later turns reuse: no thread is started per turn (1-3 ms of planning on 2 cores)."""
    import threading

    services = build(Settings(data_dir=tmp_path / "data", n_ctx=2048, n_threads=1))
    try:
        services.memory.archival.insert("The user's boat is called Petrel.", origin=USER)
        seen: list[tuple[str, int]] = []
        contribute, prefetch = services.memory.contribute, services.memory.context.retriever.prefetch

        def recording(step, name):
            def run(*args):
                seen.append((name, threading.get_ident()))
                assert threading.current_thread().name.startswith("hearth-retrieve")
                return step(*args)

            return run

        monkeypatch.setattr(services.memory, "contribute", recording(contribute, "contribute"))
        monkeypatch.setattr(services.memory.context.retriever, "prefetch", recording(prefetch, "prefetch"))
        done, _ = run_turn(services, "What is my boat called?", GREEDY.replace(max_tokens=4))
        for question in ("And its colour?", "Where is it moored?"):
            services.chat.wait_for_upkeep()
            run_turn(services, question, GREEDY.replace(max_tokens=4), conversation_id=done.conversation_id)
        services.chat.wait_for_upkeep()
        names = [name for name, _ in seen]
        assert names.count("contribute") == 3 and names.count("prefetch") == 3
        used = {ident for _, ident in seen}
        alive = {t.ident for t in threading.enumerate() if t.name.startswith("hearth-retrieve")}
        # threads started per turn would be gone by now (and six of them)
        assert used <= alive and len(used) < len(seen)
    finally:
        services.close()
