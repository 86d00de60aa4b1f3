"""DocumentService on real parts: SQLite, Chroma in a temp dir, the bundled MiniLM, SQLite FTS5."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_rag_support import FACTS, make_encrypted_pdf, make_zip_bomb, open_services, tree, write_corpus

from engine.errors import ConfigError, NotFoundError
from engine.store import StoredConversation


@pytest.fixture(scope="module")
def docs_services(tmp_path_factory):
    yield from open_services(tmp_path_factory)


def chroma_ids(services, collection: str) -> set[str]:
    return set(services.documents.vector_index(collection).ids())


def sql_chunk_ids(services, document_id: str) -> set[str]:
    with services.database.read() as db:
        return {r[0] for r in db.execute("select id from rag_chunks where document_id = ?", [document_id])}


def conversation(collections: list[str]) -> StoredConversation:
    return StoredConversation(
        id="c", title="", system_prompt="", collections=collections, created_at="", updated_at=""
    )


def test_every_file_type_becomes_searchable_with_its_source_and_page(docs_services, tmp_path):
    s = docs_services
    files = write_corpus(tmp_path / "corpus")
    results = s.documents.ingest_paths(list(files.values()), collection="types")
    assert [r.status for r in results] == ["added"] * len(files), [r.message for r in results]
    by_name = {Path(r.path).name: r for r in results}
    assert "cp1252" in by_name["boulanger.txt"].message and "gb18030" in by_name["changcheng.txt"].message
    for key, path in files.items():
        hits = s.documents.search(FACTS[key], k=3, collections=["types"])
        assert hits and hits[0].source == path.name, (key, [(h.source, h.text[:40]) for h in hits])
        top = hits[0]
        assert top.kind == "chunk" and top.meta["collection"] == "types"
        assert s.documents.document_text(top.meta["document_id"])[top.start : top.end] == top.text
    pdf_hit = s.documents.search(FACTS["pdf"], k=1, collections=["types"])[0]
    assert pdf_hit.page == 2 and FACTS["pdf"] in pdf_hit.text
    html_text = " ".join(t for _, t, src in s.documents.all_chunks("types") if src == "glass.html")
    assert "INJECTED" not in html_text and FACTS["html"] in html_text


def test_keyword_only_identifier_is_found_by_hybrid_search(docs_services, tmp_path):
    s = docs_services
    folder = tmp_path / "parts"
    folder.mkdir()
    topics = ["valves", "gaskets", "pumps", "filters", "hoses", "clamps", "seals", "meters"]
    for i, topic in enumerate(topics):
        code = "QX7-ZR9-KLM44" if topic == "seals" else f"PART-{i}"
        (folder / f"{topic}.txt").write_text(
            f"Maintenance notes on {topic}. Replace worn {topic} promptly and log part {code} in the ledger.\n\n"
            f"Store spare {topic} in a dry cabinet away from sunlight.",
            encoding="utf-8",
        )
    assert all(r.status == "added" for r in s.documents.ingest_paths([folder], collection="parts"))
    keyword = s.documents.search("QX7-ZR9-KLM44", k=3, collections=["parts"], mode="bm25")
    hybrid = s.documents.search("QX7-ZR9-KLM44", k=3, collections=["parts"])
    assert keyword[0].source == "parts/seals.txt"
    assert hybrid[0].source == "parts/seals.txt" and "QX7-ZR9-KLM44" in hybrid[0].text
    assert hybrid[0].meta["bm25_score"] > 0


def test_unchanged_reingest_is_a_no_op_and_a_changed_file_replaces_its_chunks(docs_services, tmp_path):
    s = docs_services
    path = tmp_path / "policy.md"
    path.write_text("# Policy\n\nVisitors sign the red ledger at the gate.\n", encoding="utf-8")
    first = s.documents.ingest_paths([path], collection="policy")[0]
    generation = s.documents.store.generations(["policy"])["policy"]
    again = s.documents.ingest_paths([path], collection="policy")[0]
    assert again.status == "unchanged" and again.id == first.id
    assert s.documents.store.generations(["policy"])["policy"] == generation
    old_ids = sql_chunk_ids(s, first.id)
    assert old_ids <= chroma_ids(s, "policy")

    path.write_text("# Policy\n\nVisitors now scan a badge at the turnstile.\n", encoding="utf-8")
    changed = s.documents.ingest_paths([path], collection="policy")[0]
    assert changed.status == "replaced" and changed.id != first.id
    assert [d.id for d in s.documents.documents("policy")] == [changed.id]
    assert not old_ids & chroma_ids(s, "policy") and not sql_chunk_ids(s, first.id)
    assert s.documents.search("red ledger", k=5, collections=["policy"], mode="bm25") == []
    assert "turnstile" in s.documents.search("badge turnstile", k=1, collections=["policy"])[0].text


def test_delete_removes_the_document_from_sqlite_chroma_and_the_keyword_index(docs_services, tmp_path):
    s = docs_services
    path = tmp_path / "orchid.txt"
    path.write_text("Orchids of the genus Zygopetalum smell of hyacinth.", encoding="utf-8")
    doc_id = s.documents.ingest_paths([path], collection="gone")[0].id
    ids = sql_chunk_ids(s, doc_id)
    assert s.documents.search("Zygopetalum", k=1, collections=["gone"], mode="bm25")[0].id in ids
    s.documents.delete(doc_id)
    assert not sql_chunk_ids(s, doc_id) and s.documents.documents("gone") == []
    assert not ids & chroma_ids(s, "gone")
    assert s.documents.search("Zygopetalum", k=3, collections=["gone"], mode="bm25") == []
    generation = s.documents.store.generations(["gone"])
    assert s.documents.keywords.search("Zygopetalum", k=3, collections=generation) == []
    with pytest.raises(NotFoundError):
        s.documents.delete(doc_id)


def test_bad_inputs_get_a_message_each_and_the_rest_of_the_batch_is_ingested(docs_services, tmp_path):
    s = docs_services
    folder = tmp_path / "batch"
    folder.mkdir()
    bad = {
        "corrupt.pdf": b"%PDF-1.4\n1 0 obj <<<< broken",
        "locked.pdf": make_encrypted_pdf([["classified"]]),
        "empty.txt": b"",
        "noise.txt": bytes(range(256)) * 20,
        "scripts.html": b"<html><body>" + b"<script>steal()</script>" * 50 + b"</body></html>",
    }
    for name, data in bad.items():
        (folder / name).write_bytes(data)
    make_zip_bomb(folder / "bomb.docx")
    with (folder / "huge.txt").open("wb") as fh:
        fh.truncate(s.settings.max_upload_bytes + 1)  # sparse: over the limit without writing 50 MB
    (folder / "good.md").write_text("Kestrels hover over the motorway verge.", encoding="utf-8")
    odd = folder / "we!rd näme ☃ 'quote';$(x).txt"
    odd.write_text("Odd names still index fine: marmalade.", encoding="utf-8")
    evil = tmp_path / "upload.txt"
    evil.write_text("An upload that claims a path-traversal name: quince.", encoding="utf-8")
    before = tree(tmp_path)

    paths = sorted(folder.iterdir()) + [evil]
    names = [""] * (len(paths) - 1) + ["../../../outside/evil.txt"]
    results = s.documents.ingest_paths(paths, collection="batch", names=names)
    status = {Path(r.path).name: r for r in results}
    expected_errors = {
        "corrupt.pdf": "damaged",
        "locked.pdf": "password",
        "empty.txt": "empty",
        "noise.txt": "binary",
        "scripts.html": "no visible text",
        "bomb.docx": "zip bomb",
        "huge.txt": "limit",
    }
    for name, phrase in expected_errors.items():
        assert status[name].status == "error" and phrase in status[name].message, (name, status[name].message)
    assert status["good.md"].status == "added"
    assert status[odd.name].status == "added"
    assert status["evil.txt"].status == "added" and "shown as 'evil.txt'" in status["evil.txt"].message
    assert tree(tmp_path) == before  # nothing written beside the inputs
    assert not (s.settings.data_dir.parent / "outside").exists()
    names_in = sorted(d.name for d in s.documents.documents("batch"))
    assert names_in == sorted(["good.md", odd.name, "evil.txt"])
    total = sum(d.n_chunks for d in s.documents.documents("batch"))
    assert len(chroma_ids(s, "batch")) == total  # no half-indexed leftovers
    assert s.documents.search("quince", k=1, collections=["batch"])[0].source == "evil.txt"


def test_an_interrupted_ingest_never_shows_half_a_document(docs_services, tmp_path, monkeypatch):
    s = docs_services
    path = tmp_path / "crash.txt"
    path.write_text("The xylophone tuning procedure uses a strobe tuner.", encoding="utf-8")

    def crash(*args, **kwargs):
        raise KeyboardInterrupt  # the user pressed Ctrl-C between the vector and SQLite writes

    monkeypatch.setattr(s.documents.store, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        s.documents.ingest_paths([path], collection="crash")
    monkeypatch.undo()
    assert s.documents.documents("crash") == []
    assert s.documents.search("xylophone strobe tuner", k=3, collections=["crash"]) == []
    # vectors written before the crash were rolled back, and repair() finds nothing else to fix
    assert chroma_ids(s, "crash") == set()
    assert s.documents.ingest_paths([path], collection="crash")[0].status == "added"


def test_repair_embeds_missing_vectors_and_drops_leftovers(docs_services, tmp_path):
    s = docs_services
    path = tmp_path / "repair.txt"
    path.write_text("Lighthouse lenses were ground by hand in Paris.", encoding="utf-8")
    doc_id = s.documents.ingest_paths([path], collection="repair")[0].id
    ids = sorted(sql_chunk_ids(s, doc_id))
    index = s.documents.vector_index("repair")
    index.delete(ids=ids)  # as if the embedding model changed or Chroma lost them
    index.upsert(["orphan-000"], [[1.0] + [0.0] * 383], [{"collection": "repair", "document_id": "none"}])
    assert s.documents.search("lighthouse lenses", k=1, collections=["repair"], mode="dense") == []
    counts = s.documents.repair()
    assert counts["embedded"] >= len(ids) and counts["removed"] >= 1
    assert s.documents.search("lighthouse lenses", k=1, collections=["repair"], mode="dense")[0].id == ids[0]
    assert "orphan-000" not in chroma_ids(s, "repair")


def test_collections_scope_search_and_chat_retrieval(docs_services, tmp_path):
    s = docs_services
    (tmp_path / "a.txt").write_text("The alpine hut serves barley soup to hikers.", encoding="utf-8")
    (tmp_path / "b.txt").write_text("The harbour cafe serves barley soup to sailors.", encoding="utf-8")
    s.documents.ingest_paths([tmp_path / "a.txt"], collection="mountains")
    s.documents.ingest_paths([tmp_path / "b.txt"], collection="sea")
    assert {"mountains", "sea", "library"} <= set(s.documents.collections())
    only_sea = s.documents.search("barley soup", k=5, collections=["sea"])
    assert {h.meta["collection"] for h in only_sea} == {"sea"}
    chat_hits = s.documents.retrieve_for_chat("Who gets barley soup?", conversation(["mountains"]))
    assert chat_hits and {h.source for h in chat_hits} == {"a.txt"}
    everywhere = s.documents.retrieve_for_chat("Who gets barley soup?", conversation([]))
    assert {"a.txt", "b.txt"} <= {h.source for h in everywhere}
    assert s.documents.retrieve_for_chat("barley soup", conversation(["deleted-collection"])) == []
    assert s.documents.retrieve_for_chat("Tell me a joke about penguins.", conversation(["sea"])) == []
    with pytest.raises(NotFoundError):
        s.documents.search("soup", collections=["nope"])
    with pytest.raises(ConfigError):
        s.documents.search("   ")
    with pytest.raises(ConfigError):
        s.documents.create_collection("../etc")


def test_a_passage_stored_twice_is_returned_once(docs_services, tmp_path):
    s = docs_services
    notice = "Ferry tickets to the lighthouse island are sold at the kiosk on pier four."
    (tmp_path / "notice.txt").write_text(notice, encoding="utf-8")
    (tmp_path / "winter.txt").write_text(
        "In winter the lighthouse ferry runs twice a week.", encoding="utf-8"
    )
    s.documents.ingest_paths([tmp_path / "notice.txt", tmp_path / "winter.txt"], collection="ferry-a")
    s.documents.ingest_paths([tmp_path / "notice.txt"], collection="ferry-b")  # the same file, again
    question = "Where can I buy ferry tickets to the lighthouse?"
    hits = s.documents.search(question, k=2, collections=["ferry-a", "ferry-b"])
    assert [h.source for h in hits] == ["notice.txt", "winter.txt"]  # the copy gave its place away
    assert len(s.documents.search(question, k=2, collections=["ferry-b"])) == 1  # each copy is found


def test_a_folder_a_thousand_levels_deep_and_a_giant_word_are_ingested(docs_services, tmp_path):
    """Python 3.11's os.walk recursed: 1,000 nested folders raised RecursionError. A word the
    embedder's tokenizer counts as one token (a DNA sequence) made 120,000-character chunks."""
    top = deep = tmp_path / "deep"
    top.mkdir()
    for _ in range(1100):  # one at a time: mkdir(parents=True) recurses as well
        deep = deep / "d"
        deep.mkdir()
    (top / "top.txt").write_text("The top note mentions the saffron harvest.", encoding="utf-8")
    (deep / "bottom.txt").write_text("The bottom note mentions the cobalt mine.", encoding="utf-8")
    (top / "gene.fasta.txt").write_text(">GENE-62 isolated in Lisbon\n" + "ACGT" * 100_000, encoding="utf-8")
    try:
        results = docs_services.documents.ingest_paths([top], collection="deep")
    finally:  # pytest's own clean-up (shutil.rmtree) recurses too: take the tree down from below
        while deep != top:
            for f in deep.iterdir():
                f.unlink()
            deep.rmdir()
            deep = deep.parent
    assert sorted(r.status for r in results) == ["added"] * 3, [r.message for r in results]
    assert docs_services.documents.search("cobalt mine", k=1, collections=["deep"])[0].source.endswith(
        "bottom.txt"
    )
    sizes = [len(text) for _, text, source in docs_services.documents.all_chunks("deep") if "gene" in source]
    assert max(sizes) <= 200 * 30


def test_query_rewriting_uses_the_model_and_falls_back_without_one(docs_services, tmp_path):
    from engine.rag import SearchOptions

    s = docs_services
    (tmp_path / "kiln.txt").write_text("A kiln fires clay pots at twelve hundred degrees.", encoding="utf-8")
    s.documents.ingest_paths([tmp_path / "kiln.txt"], collection="rewrite")
    asked = []

    def fake_model(system: str, user: str) -> str:  # pure-logic stand-in; the real model is in test_rag_e2e
        asked.append(system)
        return (
            "pottery oven temperature\nkiln firing heat" if "search queries" in system else "Kilns fire clay."
        )

    searcher = s.documents.searcher
    real = searcher.generate
    searcher.generate = fake_model
    try:
        hits = s.documents.search(
            "how hot do ovens for ceramics get",
            k=1,
            collections=["rewrite"],
            options=SearchOptions(multi_query=True, hyde=True),
        )
    finally:
        searcher.generate = real
    assert hits[0].source == "kiln.txt" and len(asked) == 2
    # with no model loaded, the options fall back to the plain question instead of failing
    plain = s.documents.search(
        "kiln", k=1, collections=["rewrite"], options=SearchOptions(multi_query=True, hyde=True)
    )
    assert plain[0].source == "kiln.txt"
