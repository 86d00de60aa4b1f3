"""Ingest at the speed of the hardware: no text is embedded twice, and small files are searchable
before a big one in the same batch is done. Real SQLite, Chroma and MiniLM."""

from __future__ import annotations

import pytest
from test_rag_support import open_services

SECTIONS = [
    "## Safety\n\nUnplug the kiln before opening the lid; the elements stay hot for an hour.",
    "## Warranty\n\nThe warranty covers the elements for two years from the date of purchase.",
    "## Cleaning\n\nBrush kiln wash off the shelves with a soft brush, never with water.",
]


@pytest.fixture(scope="module")
def docs(tmp_path_factory):
    yield from open_services(tmp_path_factory)


def cached_rows(services) -> int:
    with services.database.read() as db:
        return db["rag_vector_cache"].count


def test_shared_sections_are_embedded_once_and_forgotten_with_their_document(docs, tmp_path):
    s = docs.documents
    first = tmp_path / "kiln-2023.md"
    first.write_text("# Kiln manual 2023\n\n" + "\n\n".join(SECTIONS), encoding="utf-8")
    second = tmp_path / "kiln-2024.md"
    second.write_text(
        "# Kiln manual 2023\n\n" + "\n\n".join(SECTIONS) + "\n\n## Firing\n\nCone 6 takes about nine hours.",
        encoding="utf-8",
    )
    a = s.ingest_paths([first], collection="kilns")[0]
    misses, hits = s.cached.misses, s.cached.hits
    b = s.ingest_paths([second], collection="kilns")[0]
    assert a.status == b.status == "added" and b.items == a.items + 1
    assert s.cached.misses - misses == 1  # only the new section reached the embedding model
    assert s.cached.hits - hits == a.items
    vectors = set(s.vector_index("kilns").ids())
    assert {chunk_id for chunk_id, _, _ in s.all_chunks("kilns")} <= vectors  # both have their own vectors
    hits = s.search("warranty on the elements", k=2, collections=["kilns"], mode="dense")
    assert len({h.text for h in hits}) == len(hits)  # the shared section is returned once, not twice

    before = cached_rows(docs)
    s.delete(a.id)
    assert cached_rows(docs) == before - a.items  # a deleted document leaves no vectors behind


def test_small_files_are_searchable_before_a_big_one_in_the_same_batch_is_read(docs, tmp_path):
    s = docs.documents
    big = tmp_path / "big.txt"
    big.write_text("\n\n".join(f"Paragraph {i} about the tide tables of the estuary." for i in range(1500)))
    small = tmp_path / "small.txt"
    small.write_text("The ferry to the island leaves at seven.", encoding="utf-8")
    seen = []

    def progress(done: int, total: int, name: str) -> None:
        if name == "small.txt":  # the moment the small file is reported done...
            listed = {d.name for d in s.documents("batch")}
            found = s.search("ferry to the island", k=1, collections=["batch"], mode="bm25")
            seen.append((listed, found[0].source if found else None))

    results = s.ingest_paths([big, small], collection="batch", progress=progress)
    assert [r.status for r in results] == ["added", "added"]  # results keep the order given
    assert seen == [({"small.txt"}, "small.txt")]  # ...it is searchable, and the big one not yet in
